"""Registry versions in memory: loading (with the feature-schema check) and the serving set.

Two artifact kinds are served:

* ``lightgbm_booster``: a LightGBM model string over ``FEATURE_NAMES`` (the global default).
* ``pipeline``: a :class:`churn_prediction.training.procedure.TrainedModel` (calibrated logistic
  regression or LightGBM), stored as base64 text of ``TrainedModel.to_bytes()``.

A model trained on point-in-time event sets reads exactly ``FEATURE_NAMES`` (all numeric), so it
can score the online stream (``customer.features.v1``). A model trained on imported customer
attributes (a labelled snapshot) has its own schema: it serves ``POST /v1/predictions`` and the
batch endpoint only; the online stream keeps the global default (or the tenant's events model
when that is the champion).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from churn_prediction.exceptions import ModelNotLoadedError, ModelSchemaMismatchError
from churn_prediction.models import ModelVersion
from churn_prediction.scoring.scorer import ChurnModel, FloatArray
from churn_prediction.training.procedure import TrainedModel
from churn_shared.contracts import FEATURE_NAMES, Driver

BOOSTER = "lightgbm_booster"
PIPELINE = "pipeline"
CHAMPION = "champion"
CHALLENGER = "challenger"


def encode_artifact(trained: TrainedModel) -> str:
    """Artifact text of a pipeline model (never bind bytes to MySQL)."""
    return base64.b64encode(trained.to_bytes()).decode("ascii")


class PipelineScorer:
    """A :class:`TrainedModel` behind the same calls as :class:`ChurnModel`.

    Matrix calls (``matrix_from_mappings``, ``predict_proba``, ``explain``) need an all-numeric
    schema; frame calls (``predict_frame``, ``explain_frame``) take any schema.
    """

    def __init__(self, trained: TrainedModel) -> None:
        self.trained = trained
        self.feature_names: tuple[str, ...] = tuple(trained.feature_names)
        self.numeric_only = not trained.schema.categorical

    def matrix_from_mappings(self, rows: Sequence[Mapping[str, Any]]) -> FloatArray:
        matrix = np.full((len(rows), len(self.feature_names)), np.nan, dtype=np.float64)
        for j, name in enumerate(self.feature_names):
            matrix[:, j] = [np.nan if (v := row.get(name)) is None else float(v) for row in rows]
        return matrix

    def _frame(self, matrix: FloatArray) -> pd.DataFrame:
        return pd.DataFrame(matrix, columns=list(self.feature_names))

    def predict_proba(self, matrix: FloatArray) -> FloatArray:
        if not self.numeric_only:
            return self.trained.predict_proba(self._frame(matrix))
        # A float matrix in schema order already is the canonical frame of an all-numeric schema.
        trained = self.trained
        return trained._calibrator(trained._candidate.margin(self._frame(matrix)))

    def explain(self, matrix: FloatArray, top_k: int = 3) -> list[list[Driver]]:
        return self.predict_with_drivers(matrix, top_k)[1]

    def predict_with_drivers(
        self, matrix: FloatArray, top_k: int = 3
    ) -> tuple[FloatArray, list[list[Driver]]]:
        """One contributions pass gives both: the margin is their sum plus the bias (exact)."""
        if not self.numeric_only:
            frame = self._frame(matrix)
            explained = [
                [Driver.model_validate(d) for d in row]
                for row in self.trained.explain(frame, top_k)
            ]
            return self.trained.predict_proba(frame), explained
        trained = self.trained
        contrib, bias = trained._candidate.contributions(self._frame(matrix))
        probabilities = trained._calibrator(contrib.sum(axis=1) + bias)
        k = max(0, min(top_k, len(self.feature_names)))
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        names = self.feature_names
        drivers: list[list[Driver]] = []
        for i in range(matrix.shape[0]):
            row: list[Driver] = []
            for j in order[i].tolist():
                c = float(contrib[i, j])
                value = float(matrix[i, j])
                row.append(
                    Driver(
                        feature=names[j],
                        value=None if math.isnan(value) else value,
                        contribution=c,
                        direction="increases_risk" if c >= 0 else "decreases_risk",
                    )
                )
            drivers.append(row)
        return probabilities, drivers

    def predict_frame(
        self, frame: pd.DataFrame, top_k: int | None
    ) -> tuple[FloatArray, list[list[dict[str, Any]]] | None]:
        """Probabilities (and drivers as dicts, values may be text) for any schema."""
        probabilities = self.trained.predict_proba(frame)
        drivers = self.trained.explain(frame, top_k) if top_k else None
        return probabilities, drivers


Scorer = ChurnModel | PipelineScorer


@dataclass(frozen=True, slots=True)
class ServingModel:
    """A registry version loaded into memory, ready to score."""

    version: str
    tenant_id: str | None
    model: Scorer
    metrics: dict[str, Any]
    created_at: datetime
    kind: str = BOOSTER
    training_source: dict[str, Any] | None = None

    @property
    def online(self) -> bool:
        """Reads exactly the online feature vector (can score ``customer.features.v1``)."""
        return tuple(self.model.feature_names) == FEATURE_NAMES and (
            not isinstance(self.model, PipelineScorer) or self.model.numeric_only
        )

    @classmethod
    def from_row(cls, row: ModelVersion, *, num_threads: int = 1) -> ServingModel:
        """Parse the artifact and check its feature schema (``ModelSchemaMismatchError``)."""
        kind = row.kind or BOOSTER
        source = dict(row.training_source) if row.training_source else None
        model: Scorer
        if kind == BOOSTER:
            model = ChurnModel.from_string(row.artifact, None, num_threads=num_threads)
            if list(model.feature_names) != list(row.features):
                raise ModelSchemaMismatchError(
                    f"Model {row.version}: the booster reads {list(model.feature_names)} but the "
                    f"registry records {list(row.features)}."
                )
            _require_online(row.version, list(model.feature_names), "a LightGBM booster")
        elif kind == PIPELINE:
            try:
                trained = TrainedModel.from_bytes(base64.b64decode(row.artifact))
            except (ValueError, TypeError) as exc:
                raise ModelSchemaMismatchError(
                    f"Model {row.version}: the artifact cannot be loaded ({exc})."
                ) from exc
            if row.feature_schema is not None and trained.feature_schema != row.feature_schema:
                raise ModelSchemaMismatchError(
                    f"Model {row.version}: the artifact's feature schema differs from the "
                    "registered one."
                )
            if list(trained.feature_names) != list(row.features):
                raise ModelSchemaMismatchError(
                    f"Model {row.version}: the artifact reads {trained.feature_names} but the "
                    f"registry records {list(row.features)}."
                )
            model = PipelineScorer(trained)
            if source is not None and source.get("source") == "events":
                _require_online(row.version, trained.feature_names, "an events-trained model")
                if not model.numeric_only:
                    raise ModelSchemaMismatchError(
                        f"Model {row.version}: an events-trained model must be all numeric."
                    )
        else:
            raise ModelSchemaMismatchError(f"Model {row.version}: unknown kind {kind!r}.")
        return cls(
            version=row.version,
            tenant_id=row.tenant_id,
            model=model,
            metrics=dict(row.metrics),
            created_at=row.created_at,
            kind=kind,
            training_source=source,
        )


def _require_online(version: str, names: Sequence[str], what: str) -> None:
    if list(names) != list(FEATURE_NAMES):
        missing = [n for n in FEATURE_NAMES if n not in names]
        extra = [n for n in names if n not in FEATURE_NAMES]
        raise ModelSchemaMismatchError(
            f"Model {version} is {what} and must read exactly the online features "
            f"{list(FEATURE_NAMES)} in order; missing {missing}, unexpected {extra}."
        )


@dataclass(slots=True)
class ServingModels:
    """What every replica serves: the global default, each tenant's champion, and each tenant's
    challenger (kept for shadow scoring when it reads the online features)."""

    default: ServingModel | None = None
    by_tenant: dict[str, ServingModel] = field(default_factory=dict)
    challengers: dict[str, ServingModel] = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        return self.default is not None

    def put(self, serving: ServingModel, alias: str = CHAMPION) -> None:
        if serving.tenant_id is None:
            if alias == CHAMPION:
                self.default = serving
        elif alias == CHAMPION:
            self.by_tenant[serving.tenant_id] = serving
        else:
            self.challengers[serving.tenant_id] = serving

    def replace_tenant(
        self, tenant_id: str, champion: ServingModel | None, challenger: ServingModel | None
    ) -> None:
        """Swap a tenant's models in one step (dict assignments; no await in between)."""
        if champion is None:
            self.by_tenant.pop(tenant_id, None)
        else:
            self.by_tenant[tenant_id] = champion
        if challenger is None:
            self.challengers.pop(tenant_id, None)
        else:
            self.challengers[tenant_id] = challenger

    def for_tenant(self, tenant_id: str) -> ServingModel:
        """The tenant's own champion, or the global default when it has none (HTTP scoring)."""
        serving = self.by_tenant.get(tenant_id) or self.default
        if serving is None:
            raise ModelNotLoadedError("No model is loaded yet.")
        return serving

    def online_for_tenant(self, tenant_id: str) -> ServingModel:
        """The model scoring the tenant's online stream: its champion when that reads the online
        features, else the global default."""
        serving = self.by_tenant.get(tenant_id)
        if serving is not None and serving.online:
            return serving
        if self.default is None:
            raise ModelNotLoadedError("No model is loaded yet.")
        return self.default

    def shadow_for_tenant(self, tenant_id: str, champion_version: str) -> ServingModel | None:
        challenger = self.challengers.get(tenant_id)
        if challenger is None or not challenger.online or challenger.version == champion_version:
            return None
        return challenger
