"""The trained pipeline model: a fitted candidate, its calibrator, its schema and its report."""

from __future__ import annotations

import io
import math
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn_prediction.training.calibration import Calibrator
from churn_prediction.training.candidates import Candidate, ModelName
from churn_prediction.training.features import FeatureSchema

FloatArray = npt.NDArray[np.float64]

FORMAT_VERSION = 1
_ARTIFACT_KIND = "churn-prediction-model"


@dataclass
class TrainedModel:
    """A fitted, calibrated churn model with its schema and cross-validated report.

    ``metrics`` holds the out-of-fold figures (see
    :func:`~churn_prediction.training.procedure.train`). Scoring input is any frame holding the
    schema's columns (extra columns are ignored).
    """

    model_name: ModelName
    schema: FeatureSchema
    metrics: dict[str, Any]
    _candidate: Candidate
    _calibrator: Calibrator

    @property
    def feature_schema(self) -> dict[str, Any]:
        return self.schema.as_dict()

    @property
    def feature_names(self) -> list[str]:
        return self.schema.names

    def validate_schema(self, df: pd.DataFrame) -> None:
        """Raise ``ValueError`` listing the required columns that ``df`` lacks."""
        self.schema.validate(df)

    def raw_margin(self, df: pd.DataFrame) -> FloatArray:
        """The uncalibrated model output in log-odds (what contributions add up to)."""
        return self._candidate.margin(self.schema.canonical(df))

    def predict_proba(self, df: pd.DataFrame) -> FloatArray:
        """Calibrated churn probability per row."""
        return self._calibrator(self.raw_margin(df))

    def calibrate(self, margin: FloatArray) -> FloatArray:
        """Probabilities from raw margins (log-odds), through the fitted calibrator."""
        return self._calibrator(margin)

    def canonical_margin(self, canonical: pd.DataFrame) -> FloatArray:
        """:meth:`raw_margin` of a frame already canonical (as :meth:`FeatureSchema.canonical`
        returns it: schema order, numbers as float64, categories as text); skips that step."""
        return self._candidate.margin(canonical)

    def canonical_contributions(self, canonical: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """:meth:`contributions` of a frame already canonical (see :meth:`canonical_margin`)."""
        return self._candidate.contributions(canonical)

    def contributions(self, df: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Exact per-feature contributions (rows x features, schema order) and the bias per row;
        ``contrib.sum(axis=1) + bias`` equals :meth:`raw_margin`."""
        return self._candidate.contributions(self.schema.canonical(df))

    def explain(self, df: pd.DataFrame, top_k: int = 3) -> list[list[dict[str, Any]]]:
        """Top ``top_k`` drivers per row by absolute contribution.

        Each driver: ``{feature, value, contribution, direction}`` where ``value`` is the input
        value (float, text or ``None``), ``contribution`` is in log-odds of the raw model and
        ``direction`` is ``"increases_risk"`` or ``"decreases_risk"``.
        """
        canonical = self.schema.canonical(df)
        contrib, _ = self._candidate.contributions(canonical)
        names = self.schema.names
        k = max(0, min(top_k, len(names)))
        if k == 0:
            return [[] for _ in range(len(canonical))]
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        columns = [canonical[n].tolist() for n in names]
        out: list[list[dict[str, Any]]] = []
        for i in range(len(canonical)):
            drivers: list[dict[str, Any]] = []
            for j in order[i].tolist():
                c = float(contrib[i, j])
                drivers.append(
                    {
                        "feature": names[j],
                        "value": _json_value(columns[j][i]),
                        "contribution": c,
                        "direction": "increases_risk" if c >= 0 else "decreases_risk",
                    }
                )
            out.append(drivers)
        return out

    def to_bytes(self) -> bytes:
        """Serialise with pickle under a format header.

        Only load artifacts this platform wrote (trusted storage): unpickling runs code.
        """
        buffer = io.BytesIO()
        pickle.dump(
            {"kind": _ARTIFACT_KIND, "format_version": FORMAT_VERSION, "model": self},
            buffer,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedModel:
        """Load what :meth:`to_bytes` wrote (trusted artifacts only: this unpickles)."""
        payload = _ArtifactUnpickler(io.BytesIO(data)).load()
        if not isinstance(payload, dict) or payload.get("kind") != _ARTIFACT_KIND:
            raise ValueError("not a churn model artifact")
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported model artifact format {version!r} (expected {FORMAT_VERSION})"
            )
        model = payload["model"]
        if not isinstance(model, cls) or not model.schema.features:
            raise ValueError("model artifact has no feature schema")
        return model


#: Classes of artifacts written before the training package was split (all in the module
#: ``churn_prediction.training``, later briefly ``churn_prediction.training.procedure``), by name.
_LEGACY_MODULES = frozenset({"churn_prediction.training", "churn_prediction.training.procedure"})
_LEGACY_CLASSES = {
    "TrainedModel": ("churn_prediction.training.model", "TrainedModel"),
    "FeatureSchema": ("churn_prediction.training.features", "FeatureSchema"),
    "FeatureSpec": ("churn_prediction.training.features", "FeatureSpec"),
    "_Candidate": ("churn_prediction.training.candidates", "Candidate"),
    "_LogisticCandidate": ("churn_prediction.training.candidates", "LogisticCandidate"),
    "_LightGBMCandidate": ("churn_prediction.training.candidates", "LightGBMCandidate"),
    "_Calibrator": ("churn_prediction.training.calibration", "Calibrator"),
}


class _ArtifactUnpickler(pickle.Unpickler):
    """Unpickles artifacts (trusted: they come from our own registry), resolving the classes of
    artifacts written before the training package was split to where they live now."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _LEGACY_MODULES and name in _LEGACY_CLASSES:
            module, name = _LEGACY_CLASSES[name]
        return super().find_class(module, name)


def _json_value(value: object) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, int | np.integer):
        return float(value)
    return str(value)
