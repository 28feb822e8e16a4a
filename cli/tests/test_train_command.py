import json

import numpy as np
from typer.testing import CliRunner

from churn_cli.main import app


def _labelled_csv(path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["monthly", "yearly", "two-year"], n)
    charges = rng.normal(70, 20, n).round(2)
    logit = 1.5 - 0.06 * tenure + np.where(plan == "monthly", 1.2, -0.8)
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    lines = ["customerID,tenure,plan,charges,Churn"]
    for i in range(n):
        blank = "" if i % 50 == 0 else str(charges[i])
        lines.append(f"c{i},{tenure[i]},{plan[i]},{blank},{'Yes' if churn[i] else 'No'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_prints_cross_validated_json(tmp_path):
    csv = _labelled_csv(tmp_path / "customers.csv")
    result = CliRunner().invoke(
        app, ["train", "--file", str(csv), "--label", "Churn", "--id", "customerID", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n_rows"] == 600
    assert report["model"] in ("logistic_regression", "lightgbm")
    assert 0.7 < report["roc_auc"] <= 1.0
    assert 0 < report["positive_rate"] < 1
    assert report["brier"] <= report["brier_uncalibrated"]
    assert {"pr_auc", "brier"} <= report.keys()


def test_train_with_unknown_label_fails_clearly(tmp_path):
    csv = _labelled_csv(tmp_path / "customers.csv", n=50)
    result = CliRunner().invoke(app, ["train", "--file", str(csv), "--label", "Nope", "--json"])
    assert result.exit_code == 2
    assert "Nope" in result.output
