"""``churn sample-data``, and the argument checks ``churn train`` makes before its ML imports."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from churn_cli.main import app
from churn_cli.sample_data import COLUMNS, write_sample

runner = CliRunner()


def test_sample_data_is_labelled_reproducible_and_plausible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    churned = write_sample(first, rows=500, seed=3)
    write_sample(second, rows=500, seed=3)
    assert first.read_bytes() == second.read_bytes()
    rows = list(csv.DictReader(first.open()))
    assert len(rows) == 500
    assert tuple(rows[0]) == COLUMNS
    assert {r["churned"] for r in rows} == {"yes", "no"}
    assert 0.1 < churned / 500 < 0.4
    assert len({r["customer_id"] for r in rows}) == 500


def test_sample_data_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "customers.csv"
    result = runner.invoke(app, ["sample-data", "--out", str(out), "--rows", "100"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 101


def test_train_refuses_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--file", str(tmp_path / "no.csv"), "--label", "x"])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_train_names_the_columns_when_the_label_is_wrong(tmp_path: Path) -> None:
    out = tmp_path / "customers.csv"
    write_sample(out, rows=60)
    result = runner.invoke(app, ["train", "--file", str(out), "--label", "Churn"])
    assert result.exit_code == 2
    assert "no label column 'Churn'" in result.output
    assert "churned" in result.output


def test_argument_errors_come_before_the_ml_imports(tmp_path: Path) -> None:
    """A wrong argument is reported without importing pandas, scikit-learn or LightGBM."""
    code = (
        "import sys\n"
        "from churn_cli.main import app\n"
        "try:\n"
        f"    app(['train', '--file', {str(tmp_path / 'no.csv')!r}, '--label', 'x'])\n"
        "except SystemExit as exc:\n"
        "    heavy = sorted(m for m in ('pandas', 'sklearn', 'lightgbm') if m in sys.modules)\n"
        "    print('exit', exc.code, 'heavy', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert "exit 2 heavy []" in result.stdout, result.stdout + result.stderr
