"""``churn train --file PATH --label COLUMN [--id COLUMN] --json``: the same training pipeline
the prediction service uses, run locally on a labelled file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from churn_prediction.training.procedure import train_labelled

__all__ = ["read_table", "train_file"]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optionally gzip-compressed) or, when openpyxl is installed, an .xlsx file.

    Values are read as text where pandas cannot infer numbers; the training code parses them.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".xlsx", ".xlsm"):
        try:
            return pd.read_excel(path)
        except ImportError as exc:
            raise ValueError("reading .xlsx needs openpyxl; export the sheet as CSV") from exc
    return pd.read_csv(path, low_memory=False)


def train_file(
    path: Path,
    label: str,
    id_column: str | None = None,
    *,
    seed: int = 42,
    threshold: float = 0.7,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Train on a labelled file and return the cross-validated report as a JSON-able dict.

    Keys: ``roc_auc``, ``pr_auc``, ``brier`` (calibrated), ``brier_uncalibrated``, ``model``,
    ``calibration``, ``n_rows``, ``positive_rate``, ``candidates``, ``at_threshold``,
    ``calibration_table``, ``feature_importance``, ``excluded_columns``, ``cv``, ``seed``,
    ``duration_seconds``, ``file``, ``label``. Raises ``ValueError`` with a readable message on
    a bad label or id column.
    """
    frame = read_table(path)
    trained = train_labelled(
        frame, label, id_column=id_column, seed=seed, threshold=threshold, progress=progress
    )
    m = trained.metrics
    keys = (
        "model",
        "roc_auc",
        "pr_auc",
        "brier",
        "brier_uncalibrated",
        "calibration",
        "n_rows",
        "positive_rate",
        "candidates",
        "at_threshold",
        "calibration_table",
        "feature_importance",
        "excluded_columns",
        "cv",
        "seed",
        "duration_seconds",
    )
    report: dict[str, Any] = {key: m[key] for key in keys}
    report["file"] = str(path)
    report["label"] = label
    return report
