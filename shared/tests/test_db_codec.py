"""JSON columns go through orjson and read back what ``json`` would have; UTC times are stored
as the same naive UTC whatever zone object they carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from churn_shared.db import UTCDateTime, create_engine, json_dumps, json_loads


@pytest.fixture
def service_name() -> str:
    return "customers"


def test_json_codec_reads_back_what_the_standard_library_does():
    value = {"a": [1, 2.5, None, True], "b": {"nested": "é ✓"}, 3: "int key", "f": 1e16}
    assert json_loads(json_dumps(value)) == json.loads(json.dumps(value))
    # A row the standard library once wrote with a NaN still reads.
    nan = json_loads(json.dumps({"x": float("nan")}))
    assert nan["x"] != nan["x"]


async def test_json_and_utc_columns_round_trip_through_the_engine(empty_database_url):
    metadata = sa.MetaData()
    table = sa.Table(
        "codec_check",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    engine = create_engine(empty_database_url)
    doc = {"days": [20_000, 20_001], "sums": [0.5, 1, 2.25], "when": "2026-01-01T00:00:00+00:00"}
    utc = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    elsewhere = utc.astimezone(timezone(timedelta(hours=5)))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                sa.insert(table),
                [{"id": 1, "doc": doc, "at": utc}, {"id": 2, "doc": [], "at": elsewhere}],
            )
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(table).order_by(table.c.id))).all()
        assert [(r.doc, r.at) for r in rows] == [(doc, utc), ([], utc)]
        assert rows[0].at.tzinfo is UTC
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
        await engine.dispose()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 0, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
        datetime(2026, 3, 1, 5, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ],
)
def test_sqlite_stores_utc_times_as_the_text_sqlalchemy_writes(moment):
    """The one-step SQLite bind writes what the generic path (naive UTC, then SQLite's own
    ``DATETIME`` format) writes, so rows stored before and after it compare and sort alike."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    reference = sqlite.DATETIME().bind_processor(dialect)
    naive_utc = moment.astimezone(UTC).replace(tzinfo=None)
    assert ours(moment) == reference(naive_utc)
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(naive_utc)
