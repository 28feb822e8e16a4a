"""Domain errors of the customers service; each carries its HTTP status."""

from __future__ import annotations

from churn_shared.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    UnprocessableError,
)


class CustomerNotFoundError(NotFoundError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"Customer {customer_id!r} was not found.")


class CustomerAlreadyExistsError(ConflictError):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"Customer {customer_id!r} already exists.")


class EventBatchTooLargeError(PayloadTooLargeError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"A batch holds at most {limit} events; this one has {size}.")


class ConcurrentIngestError(ConflictError):
    def __init__(self) -> None:
        super().__init__(
            "Another request stored some of these events or customers at the same time; retry."
        )


class ImportNotFoundError(NotFoundError):
    def __init__(self, import_id: str) -> None:
        super().__init__(f"Import {import_id!r} was not found.")


class ImportKeyInFlightError(ConflictError):
    def __init__(self) -> None:
        super().__init__(
            "An upload with this Idempotency-Key is being stored at this moment; retry the "
            "request to get the import it created."
        )


class ImportTooLargeError(PayloadTooLargeError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"A customer file holds at most {limit} bytes.")


class UnsupportedMediaTypeError(ProblemError):
    status, title, type_slug = 415, "Unsupported Media Type", "unsupported-media-type"


class TrainingSetError(UnprocessableError):
    """The training set asked for cannot be built (no label, unknown outcome, no rows)."""
