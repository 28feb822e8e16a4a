"""Registry versions into memory: parsing an artifact by its kind and checking its feature schema.

Two artifact kinds are served:

* ``lightgbm_booster``: a LightGBM model string over ``FEATURE_NAMES`` (the global default),
  served by :class:`~churn_prediction.scoring.scorer.BoosterScorer`.
* ``pipeline``: a :class:`~churn_prediction.training.model.TrainedModel` (calibrated logistic
  regression or LightGBM), stored as base64 text of ``TrainedModel.to_bytes()``, served by
  :class:`~churn_prediction.scoring.scorer.PipelineScorer`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from churn_prediction.exceptions import ModelSchemaMismatchError
from churn_prediction.models import ModelVersion
from churn_prediction.scoring.scorer import BoosterScorer, PipelineScorer, Scorer
from churn_prediction.scoring.serving import ServingModel
from churn_prediction.training.model import TrainedModel
from churn_shared.contracts import ONLINE_FEATURE_SETS

BOOSTER = "lightgbm_booster"
PIPELINE = "pipeline"


def encode_artifact(trained: TrainedModel) -> str:
    """Artifact text of a pipeline model (never bind bytes to MySQL)."""
    return base64.b64encode(trained.to_bytes()).decode("ascii")


def _booster(row: ModelVersion, num_threads: int) -> Scorer[Any]:
    model = BoosterScorer.from_string(row.artifact, None, num_threads=num_threads)
    if list(model.feature_names) != list(row.features):
        raise ModelSchemaMismatchError(
            f"Model {row.version}: the booster reads {list(model.feature_names)} but the "
            f"registry records {list(row.features)}."
        )
    _require_online(row.version, list(model.feature_names), "a LightGBM booster")
    return model


def _pipeline(row: ModelVersion, num_threads: int) -> Scorer[Any]:
    try:
        trained = TrainedModel.from_bytes(base64.b64decode(row.artifact))
    except (ValueError, TypeError) as exc:
        raise ModelSchemaMismatchError(
            f"Model {row.version}: the artifact cannot be loaded ({exc})."
        ) from exc
    if row.feature_schema is not None and trained.feature_schema != row.feature_schema:
        raise ModelSchemaMismatchError(
            f"Model {row.version}: the artifact's feature schema differs from the registered one."
        )
    if list(trained.feature_names) != list(row.features):
        raise ModelSchemaMismatchError(
            f"Model {row.version}: the artifact reads {trained.feature_names} but the "
            f"registry records {list(row.features)}."
        )
    model = PipelineScorer(trained)
    source = row.training_source
    if source is not None and source.get("source") == "events":
        _require_online(row.version, trained.feature_names, "an events-trained model")
        if not model.numeric_only:
            raise ModelSchemaMismatchError(
                f"Model {row.version}: an events-trained model must be all numeric."
            )
    return model


#: How each artifact kind becomes a scorer.
_LOADERS: dict[str, Callable[[ModelVersion, int], Scorer[Any]]] = {
    BOOSTER: _booster,
    PIPELINE: _pipeline,
}


def load_version(row: ModelVersion, *, num_threads: int = 1) -> ServingModel:
    """Parse the artifact and check its feature schema (``ModelSchemaMismatchError``)."""
    kind = row.kind or BOOSTER
    loader = _LOADERS.get(kind)
    if loader is None:
        raise ModelSchemaMismatchError(f"Model {row.version}: unknown kind {kind!r}.")
    return ServingModel(
        version=row.version,
        tenant_id=row.tenant_id,
        model=loader(row, num_threads),
        metrics=dict(row.metrics),
        created_at=row.created_at,
        kind=kind,
        training_source=dict(row.training_source) if row.training_source else None,
    )


def _require_online(version: str, names: Sequence[str], what: str) -> None:
    """``names`` must be one of the online feature sets (any profile contract version: a model
    keeps the list it was trained on)."""
    if tuple(names) in ONLINE_FEATURE_SETS.values():
        return
    latest = ONLINE_FEATURE_SETS[max(ONLINE_FEATURE_SETS)]
    missing = [n for n in latest if n not in names]
    extra = [n for n in names if n not in latest]
    raise ModelSchemaMismatchError(
        f"Model {version} is {what} and must read exactly the online features of one profile "
        f"version ({sorted(ONLINE_FEATURE_SETS)}; the latest reads {list(latest)}) in order; "
        f"missing {missing}, unexpected {extra}."
    )
