"""Scoring a job's input file in chunks: the job worker process.

``python -m churn_prediction.batch_jobs.files`` reads commands from stdin, one per line (see
:func:`serve`), and carries them out in turn. Scoring a job reads its spec, its pickled model
and its input (``input.csv`` or ``input.parquet``), ``chunk_rows`` rows at a time, into
``result.parquet`` and ``errors.csv`` (bad rows, by line); ``result.csv`` is made from the
Parquet result when it is first asked for (formatting a million floats as text takes seconds
that a Parquet user should not wait for). It reports progress as one JSON line per chunk on
stdout (``{"rows_total", "rows_scored", "rows_failed"}``) and ends every job with a line that
has ``"done": true`` or ``"error": "..."`` (a file it cannot score). The process stays up
between jobs, so its imports (LightGBM, scikit-learn, fastparquet: seconds) are paid once;
``python -m churn_prediction.batch_jobs.files <job directory>`` scores one job and exits.
fastparquet is imported here only, so the API process never loads it.

A filter job (``POST /v1/predictions/jobs`` with a customer filter) reaches this process as a
CSV that the API process wrote from the customers service's pages (``customer_id``, the model's
features and :data:`UNSCORABLE_COLUMN`): its ``line`` is the customer's rank in the selection
(1 = the first customer by id), customers that cannot be scored are reported with their reason,
and the error report names the customer of each line.

Memory stays bounded: the CSV is parsed ``chunk_rows`` rows at a time by pandas' C parser, the
Parquet file one row group at a time, and the outputs are appended chunk by chunk.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import fastparquet
import numpy as np
import numpy.typing as npt
import pandas as pd

from churn_prediction.batch_jobs.schemas import (
    CUSTOMER_ID,
    ERRORS,
    INPUTS,
    MODEL,
    RESULTS,
    UNSCORABLE_COLUMN,
    JobSpec,
)
from churn_prediction.scoring.scorer import (
    DriverRow,
    FeatureColumns,
    InvalidFeatureValueError,
    Scorer,
    risk_level_array,
)

#: pandas' C parser says so for a row with more fields than the header.
_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


class JobFileError(ValueError):
    """The file cannot be scored at all (not CSV/Parquet, too many rows, no feature column)."""


@dataclass(slots=True)
class Counts:
    rows_total: int | None
    rows_scored: int = 0
    rows_failed: int = 0
    errors_written: int = 0
    truncated: bool = False
    skipped_lines: list[int] = field(default_factory=list)


def csv_lines(first_row: int, n: int, skipped: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Physical line numbers (header = 1) of the ``n`` parsed rows from ``first_row`` (0-based,
    counting parsed rows only), given the sorted lines the parser skipped (bad rows)."""
    ranks = np.arange(first_row, first_row + n, dtype=np.int64)
    if len(skipped) == 0:
        return ranks + 2
    # Parsed row k lies after skipped line S[i] iff S[i] - i - 2 <= k (lines before S[i] that
    # were parsed); so its line is k + 2 + that count.
    before = skipped - np.arange(len(skipped), dtype=np.int64) - 2
    return ranks + 2 + np.searchsorted(before, ranks, side="right")


def _numeric(values: pd.Series) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_] | None]:
    """A column as float64 (missing → NaN) and a mask of the values that are not numbers
    (``None`` when every value is)."""
    if values.dtype.kind in "fiub":
        return values.to_numpy(dtype=np.float64, na_value=np.nan), None
    coerced = pd.to_numeric(values, errors="coerce")
    bad = coerced.isna().to_numpy() & values.notna().to_numpy()
    floats = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    return floats, (bad if bad.any() else None)


class ChunkScorer:
    """Scores chunks with one model and appends results and the error report."""

    def __init__(
        self, model: Scorer[Any], spec: JobSpec, directory: Path, id_column: str | None
    ) -> None:
        self.model = model
        self.spec = spec
        self.directory = directory
        self.id_column = id_column
        self.started = False
        #: A filter job's error report names the customer of each line.
        self.by_customer = spec.source == "customers"
        self.customer_of: dict[int, str] = {}
        self.errors_file: TextIO = (directory / ERRORS).open("w", newline="")
        self.errors = csv.writer(self.errors_file)
        self.errors.writerow(
            ["line", CUSTOMER_ID, "column", "value", "error"]
            if self.by_customer
            else ["line", "column", "value", "error"]
        )

    def error(self, counts: Counts, line: int, column: str, value: Any, message: str) -> None:
        if counts.errors_written >= self.spec.max_error_rows:
            counts.truncated = True
            return
        text = "" if value is None or value != value else str(value)[:200]
        if self.by_customer:
            self.errors.writerow([line, self.customer_of.get(line, ""), column, text, message])
        else:
            self.errors.writerow([line, column, text, message])
        counts.errors_written += 1

    def score(self, frame: pd.DataFrame, lines: npt.NDArray[np.int64], counts: Counts) -> None:
        n = len(frame)
        good = np.ones(n, dtype=bool)
        if self.by_customer:
            self.customer_of = dict(
                zip(lines.tolist(), frame[CUSTOMER_ID].astype(str).tolist(), strict=True)
            )
            if UNSCORABLE_COLUMN in frame.columns:
                reasons = frame[UNSCORABLE_COLUMN]
                for i in np.flatnonzero(reasons.notna().to_numpy()):
                    self.error(counts, int(lines[i]), "", None, str(reasons.iat[i]))
                    good[i] = False
        columns: list[Any] = []
        for name in self.model.feature_names:
            if name not in frame.columns:
                columns.append(None)
                continue
            raw = frame[name]
            if self.model.numeric_only:
                values, bad = _numeric(raw)
                if bad is not None:
                    bad &= good  # an unscorable customer is reported once
                    for i in np.flatnonzero(bad):
                        self.error(counts, int(lines[i]), name, raw.iat[i], "not a number")
                    good &= ~bad
                columns.append(values)
            else:
                columns.append([None if v != v else v for v in raw.tolist()])
        scored, probabilities, drivers = self._predict(columns, np.flatnonzero(good), lines, counts)
        counts.rows_failed += n - len(scored)
        counts.rows_scored += len(scored)
        out: dict[str, Any] = {"line": lines[scored]}
        if self.id_column:
            out[self.id_column] = frame[self.id_column].to_numpy(dtype=object)[scored]
        out["churn_probability"] = probabilities
        out["risk_level"] = risk_level_array(
            probabilities, self.spec.low_risk_below, self.spec.high_risk_from
        ).astype(object)
        out.update(self._driver_columns(drivers, len(scored)))
        self._write(pd.DataFrame(out))

    def _driver_columns(
        self, drivers: list[list[DriverRow]] | None, n: int
    ) -> dict[str, npt.NDArray[Any]]:
        """``driver_k`` (the feature) and ``driver_k_contribution`` for k = 1 … ``spec.drivers``;
        empty (None, NaN) where a row has fewer drivers."""
        columns: dict[str, npt.NDArray[Any]] = {}
        for k in range(self.spec.drivers):
            names = np.full(n, None, dtype=object)
            contributions = np.full(n, np.nan)
            for i, row in enumerate(drivers or ()):
                if k < len(row):
                    names[i] = row[k]["feature"]
                    contributions[i] = row[k]["contribution"]
            columns[f"driver_{k + 1}"] = names
            columns[f"driver_{k + 1}_contribution"] = contributions
        return columns

    def _write(self, result: pd.DataFrame) -> None:
        first = not self.started
        if first or len(result):
            fastparquet.write(
                str(self.directory / RESULTS["parquet"]),
                result,
                append=not first,
                write_index=False,
                compression="SNAPPY",
                object_encoding="utf8",
            )
        self.started = True

    def _predict(
        self,
        columns: list[Any],
        keep: npt.NDArray[np.intp],
        lines: npt.NDArray[np.int64],
        counts: Counts,
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], list[list[DriverRow]] | None]:
        """The rows scored (indices into the chunk), their probabilities and, when the job asks
        for them, their top drivers."""
        if len(keep) == 0:
            return keep, np.empty(0), None
        if self.model.numeric_only:
            picked = [None if c is None else c[keep] for c in columns]
            matrix = self.model.parse(FeatureColumns(len(keep), picked))
            return (keep, *self._scores(matrix))
        picked_lists = [None if c is None else [c[i] for i in keep] for c in columns]
        try:
            parsed = self.model.parse(FeatureColumns(len(keep), picked_lists))
        except InvalidFeatureValueError:
            # Find the bad rows one by one (only a chunk with a bad value pays this).
            good: list[int] = []
            for i in keep.tolist():
                row = [None if c is None else [c[i]] for c in columns]
                try:
                    self.model.parse(FeatureColumns(1, row))
                except InvalidFeatureValueError as exc:
                    self.error(counts, int(lines[i]), "", None, str(exc))
                else:
                    good.append(i)
            keep = np.asarray(good, dtype=np.intp)
            if len(keep) == 0:
                return keep, np.empty(0), None
            picked_lists = [None if c is None else [c[i] for i in keep] for c in columns]
            parsed = self.model.parse(FeatureColumns(len(keep), picked_lists))
        return (keep, *self._scores(parsed))

    def _scores(self, parsed: Any) -> tuple[npt.NDArray[np.float64], list[list[DriverRow]] | None]:
        if not self.spec.drivers:
            return self.model.predict(parsed), None
        explained = self.model.explain(parsed, self.spec.drivers)
        return explained.probabilities, explained.drivers

    def close(self) -> None:
        if not self.started:
            # Nothing read: empty results with their header all the same.
            empty: dict[str, Any] = {"line": np.empty(0, np.int64)}
            if self.id_column:
                empty[self.id_column] = np.empty(0, object)
            empty["churn_probability"] = np.empty(0)
            empty["risk_level"] = np.empty(0, object)
            empty.update(self._driver_columns(None, 0))
            self._write(pd.DataFrame(empty))
        self.errors_file.close()


def _wanted(model: Scorer[Any], names: list[str], spec: JobSpec) -> tuple[list[str], str | None]:
    """The columns to read (the model's features the file has, and its id column) and the id
    column when the file has it."""
    features = [name for name in model.feature_names if name in names]
    if not features:
        raise JobFileError(
            "The file has none of the model's features "
            f"({', '.join(model.feature_names)}); its columns are {', '.join(names[:50])}."
        )
    id_column = spec.id_column if spec.id_column and spec.id_column in names else None
    return features + ([id_column] if id_column else []), id_column


def _report(out: TextIO, counts: Counts, **extra: Any) -> None:
    line = {
        "rows_total": counts.rows_total,
        "rows_scored": counts.rows_scored,
        "rows_failed": counts.rows_failed,
        **extra,
    }
    out.write(json.dumps(line) + "\n")
    out.flush()


@dataclass(slots=True)
class Run:
    """One run of a job: what the readers share."""

    directory: Path
    model: Scorer[Any]
    spec: JobSpec
    counts: Counts
    out: TextIO
    scorer: ChunkScorer | None = None

    def open_scorer(self, id_column: str | None) -> ChunkScorer:
        self.scorer = ChunkScorer(self.model, self.spec, self.directory, id_column)
        return self.scorer


def _csv_chunks(
    path: Path, wanted: list[str], id_column: str | None, chunk_rows: int, counts: Counts
) -> Iterator[pd.DataFrame]:
    """The file's chunks; rows with more fields than the header are skipped and recorded."""
    # Every column is parsed (with ``usecols`` pandas lets a row with extra fields through);
    # only the wanted ones are kept.
    text_columns = [name for name in (id_column, UNSCORABLE_COLUMN) if name in wanted]
    reader = pd.read_csv(
        path,
        dtype=dict.fromkeys(text_columns, str) or None,
        chunksize=chunk_rows,
        on_bad_lines="warn",
        skip_blank_lines=False,
        encoding="utf-8-sig",
        engine="c",
    )
    with reader:
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    chunk = next(reader)
                except StopIteration:
                    chunk = None
            for warning in caught:
                for match in _SKIPPED.finditer(str(warning.message)):
                    counts.skipped_lines.append(int(match.group(1)))
            if chunk is None:
                return
            yield chunk[wanted]


def score_csv(run: Run) -> None:
    path = run.directory / INPUTS["csv"]
    counts = run.counts
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        header = next(csv.reader(io.StringIO(first.decode("utf-8-sig"))), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise JobFileError(f"The CSV header cannot be read: {exc}") from exc
    if not header:
        raise JobFileError("The CSV file has no header line.")
    wanted, id_column = _wanted(run.model, header, run.spec)
    by_customer = run.spec.source == "customers"
    if by_customer and UNSCORABLE_COLUMN in header:
        wanted.append(UNSCORABLE_COLUMN)
    scorer = run.open_scorer(id_column)
    parsed = 0
    reported = 0
    try:
        for chunk in _csv_chunks(path, wanted, id_column, run.spec.chunk_rows, counts):
            skipped = np.asarray(sorted(counts.skipped_lines), np.int64)
            for line in skipped[reported:]:
                counts.rows_failed += 1
                scorer.error(counts, int(line), "", None, "more fields than the header has")
            reported = len(skipped)
            lines = csv_lines(parsed, len(chunk), skipped)
            if by_customer:
                lines -= 1  # the customer's rank: no header line to count
            parsed += len(chunk)
            scorer.score(chunk, lines, counts)
            if counts.rows_scored + counts.rows_failed > run.spec.max_rows:
                raise JobFileError(f"The file has more than {run.spec.max_rows} rows.")
            _report(run.out, counts)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, JobFileError):
            raise
        raise JobFileError(f"The CSV file cannot be parsed: {exc}") from exc


def score_parquet(run: Run) -> None:
    counts = run.counts
    try:
        parquet = fastparquet.ParquetFile(str(run.directory / INPUTS["parquet"]))
    except Exception as exc:  # fastparquet raises several kinds for a damaged file
        raise JobFileError(f"The file is not a readable Parquet file: {exc}") from exc
    counts.rows_total = int(parquet.count())
    if counts.rows_total > run.spec.max_rows:
        raise JobFileError(
            f"The file has {counts.rows_total} rows; at most {run.spec.max_rows} are scored "
            "per job."
        )
    _report(run.out, counts)
    wanted, id_column = _wanted(run.model, list(parquet.columns), run.spec)
    scorer = run.open_scorer(id_column)
    done = 0
    step = run.spec.chunk_rows
    try:
        for group in parquet.iter_row_groups(columns=wanted):
            for start in range(0, len(group), step):
                chunk = group.iloc[start : start + step]
                lines = np.arange(done + 1, done + 1 + len(chunk), dtype=np.int64)
                done += len(chunk)
                scorer.score(chunk, lines, counts)
                _report(run.out, counts)
    except (ValueError, TypeError, OSError) as exc:
        raise JobFileError(f"The Parquet file cannot be read: {exc}") from exc


def run(directory: Path, out: TextIO) -> int:
    """Score the job in ``directory``; 0 when done, 2 when the file cannot be scored."""
    spec = JobSpec.read(directory)
    with (directory / MODEL).open("rb") as handle:
        model: Scorer[Any] = pickle.load(handle)  # noqa: S301 - written by this service
    job = Run(directory, model, spec, Counts(rows_total=spec.rows_hint), out)
    try:
        if spec.input_format == "csv":
            score_csv(job)
        else:
            score_parquet(job)
    except JobFileError as exc:
        _report(out, job.counts, error=str(exc))
        return 2
    finally:
        if job.scorer is not None:
            job.scorer.close()
    counts = job.counts
    counts.rows_total = counts.rows_scored + counts.rows_failed
    _report(out, counts, done=True, errors_truncated=counts.truncated)
    return 0


def write_csv(directory: Path, out: TextIO) -> None:
    """The job's Parquet result as CSV (``result.csv``), one row group at a time; written to a
    temporary name and renamed, so a reader never sees half a file."""
    target = directory / RESULTS["csv"]
    if not target.exists():
        partial = directory / f"{RESULTS['csv']}.{uuid.uuid4().hex}.partial"
        result = fastparquet.ParquetFile(str(directory / RESULTS["parquet"]))
        header = True
        with partial.open("w", newline="") as handle:
            for group in result.iter_row_groups():
                group.to_csv(handle, header=header, index=False, lineterminator="\n")
                header = False
            if header:  # no row group at all
                handle.write(",".join(result.columns) + "\n")
        partial.replace(target)
    out.write(json.dumps({"done": True}) + "\n")
    out.flush()


def serve(commands: TextIO, out: TextIO) -> None:
    """Carry out the commands read from ``commands`` (one JSON object per line) one after
    another, until it closes: ``{"score": "<job directory>"}`` or ``{"csv": "<job
    directory>"}`` (the result as CSV, made on the first request for it)."""
    for line in commands:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            if "csv" in command:
                write_csv(Path(command["csv"]), out)
            else:
                run(Path(command["score"]), out)
        except Exception as exc:  # one broken job must not end the worker
            _report(out, Counts(rows_total=None), error=f"The job could not be done: {exc!r}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(run(Path(sys.argv[1]), sys.stdout))
    serve(sys.stdin, sys.stdout)
