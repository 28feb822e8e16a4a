"""Calibration: a monotone map from a model's raw margin (log-odds) to a probability."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CalibrationMethod = Literal["sigmoid", "isotonic", "none"]


class Calibrator:
    """Monotone map from a raw margin (log-odds) to a probability."""

    def __init__(self, method: CalibrationMethod) -> None:
        self.method: CalibrationMethod = method
        self._model: Any = None

    def fit(self, margin: FloatArray, y: IntArray) -> Calibrator:
        if self.method == "sigmoid":
            self._model = LogisticRegression(C=1e6, max_iter=1000, solver="newton-cholesky").fit(
                margin[:, None], y
            )
        elif self.method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self._model = iso.fit(margin, y)
        return self

    def __call__(self, margin: FloatArray) -> FloatArray:
        if self.method == "sigmoid":
            return np.asarray(self._model.predict_proba(margin[:, None])[:, 1], np.float64)
        if self.method == "isotonic":
            return np.asarray(self._model.predict(margin), dtype=np.float64)
        return sigmoid(margin)

    def describe(self) -> dict[str, Any]:
        if self.method == "sigmoid":
            return {
                "method": "sigmoid",
                "slope": float(self._model.coef_[0][0]),
                "intercept": float(self._model.intercept_[0]),
            }
        return {"method": self.method}


def sigmoid(margin: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)


def oof_calibrated(
    margin: FloatArray, y: IntArray, fold_of: IntArray, method: CalibrationMethod
) -> FloatArray:
    """Calibrated out-of-fold probabilities: each fold's calibrator is fit on the other folds'
    out-of-fold margins, so no row is calibrated with its own label."""
    out = np.empty(len(margin), dtype=np.float64)
    for f in np.unique(fold_of).tolist():
        test = fold_of == f
        train_mask = ~test
        if method == "none" or len(np.unique(y[train_mask])) < 2:
            out[test] = sigmoid(margin[test])
            continue
        calibrator = Calibrator(method).fit(margin[train_mask], y[train_mask])
        out[test] = calibrator(margin[test])
    return out
