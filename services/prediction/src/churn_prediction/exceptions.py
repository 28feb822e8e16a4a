"""Domain errors of the prediction service; each carries its HTTP status."""

from __future__ import annotations

from typing import Any

from churn_shared.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    ServiceUnavailableError,
    UnprocessableError,
)


class CustomerNotFoundError(NotFoundError):
    type_slug = "customer-not-found"


class MalformedBodyError(BadRequestError):
    type_slug = "malformed-json"


class InvalidPredictionInputError(UnprocessableError):
    """A body of the wrong shape, an unknown feature or a non-numeric value."""


class BatchTooLargeError(PayloadTooLargeError):
    type_slug = "batch-too-large"


class ModelNotLoadedError(ServiceUnavailableError):
    type_slug = "model-not-loaded"


class CustomersUnavailableError(ServiceUnavailableError):
    type_slug = "customers-unavailable"


class ModelSchemaMismatchError(UnprocessableError):
    """A model whose features do not match what serving provides; it is not served."""

    type_slug = "model-schema-mismatch"


class ModelVersionNotFoundError(NotFoundError):
    type_slug = "model-version-not-found"


class ServedModelNotFoundError(NotFoundError):
    """An inference protocol names a model this replica does not serve to the tenant."""

    type_slug = "model-not-found"


class TrainingJobNotFoundError(NotFoundError):
    type_slug = "training-job-not-found"


class NothingToRollBackError(ConflictError):
    type_slug = "nothing-to-roll-back"


class ModelNotEvaluableError(UnprocessableError):
    type_slug = "model-not-evaluable"


class TrainingSetError(RuntimeError):
    """The customers service could not give a usable training set (fails the job)."""


class TrainingSetRefusedError(TrainingSetError):
    """The customers service refused the request for a training set as the caller's mistake
    (400/422: no events yet, a horizon that ends after the latest event …); the message is its
    ``detail``, and ``extra`` the other members of its problem (``latest_event_at``)."""

    def __init__(self, detail: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.extra = extra or {}


class CutoffNotUsableError(UnprocessableError):
    """A cutoff and horizon the tenant's event history cannot give a labelled set for."""

    type_slug = "cutoff-not-usable"


class PredictionJobNotFoundError(NotFoundError):
    type_slug = "prediction-job-not-found"


class PredictionJobNotDoneError(ConflictError):
    """The job's result is asked for before the job succeeded."""

    type_slug = "prediction-job-not-done"


class JobFileTooLargeError(PayloadTooLargeError):
    type_slug = "job-file-too-large"


class UnsupportedJobFileError(ProblemError):
    status, title, type_slug = 415, "Unsupported Media Type", "unsupported-job-file"


class InvalidJobFileError(UnprocessableError):
    type_slug = "invalid-job-file"


class CustomerFilterRefusedError(UnprocessableError):
    """A prediction job's customer filter that the customers service refuses (or that selects
    more customers than a job may score)."""

    type_slug = "invalid-customer-filter"
