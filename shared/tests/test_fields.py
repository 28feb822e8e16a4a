"""Strict input types: a value is taken only in its own JSON type, from JSON and from Python."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from churn_shared.contracts import CustomerEventReceivedV1
from churn_shared.fields import (
    DateString,
    StrictBool,
    StrictFloat,
    StrictInt,
    Timestamp,
    TimeString,
)
from churn_shared.kafka import Envelope, EnvelopeError

CASES: list[tuple[Any, list[Any], list[Any]]] = [
    # type, accepted, refused
    (StrictBool, [True, False], [0, 1, "true", "false", None]),
    (StrictInt, [0, 7, -3], [False, True, 7.0, "7", None]),
    (StrictFloat, [0, 0.5, 3], [False, True, "0.5", None]),
    (
        Timestamp,
        ["2026-11-01T10:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)],
        [0, 1.5e9, True, "0", "0.5", "1717236000", " -1e3 "],
    ),
    (DateString, ["2026-11-01", date(2026, 1, 1)], [0, 20261101, False, "20261101", "0.5"]),
    (TimeString, ["22:00", time(22, 0)], [79200, 0, True]),
]


@pytest.mark.parametrize(("kind", "accepted", "refused"), CASES)
def test_values_only_in_their_own_type(kind: Any, accepted: list[Any], refused: list[Any]) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(kind)
    for value in accepted:
        adapter.validate_python(value)
        adapter.validate_json(orjson.dumps(value))  # what a consumer reads from the wire
    for value in refused:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
        with pytest.raises(ValidationError):
            adapter.validate_json(orjson.dumps(value))


def test_timestamps_still_need_a_time_zone() -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Timestamp).validate_python("2026-11-01T10:00:00")


def test_schemas_stay_the_usual_ones() -> None:
    assert TypeAdapter(Timestamp).json_schema() == {"format": "date-time", "type": "string"}
    assert TypeAdapter(DateString).json_schema() == {"format": "date", "type": "string"}
    assert TypeAdapter(StrictInt).json_schema() == {"type": "integer"}


def test_an_event_with_a_number_for_occurred_at_is_not_a_valid_envelope() -> None:
    payload = {"event_id": "e-1", "customer_id": "c-1", "type": "login", "occurred_at": 0}
    with pytest.raises(ValidationError):
        CustomerEventReceivedV1.model_validate(payload)
    envelope = {
        "event_type": "CustomerEventReceivedV1",
        "tenant_id": "t",
        "producer": "p",
        "occurred_at": 0,
        "payload": {**payload, "occurred_at": "2026-11-01T10:00:00Z"},
    }
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(orjson.dumps(envelope))
    ok = Envelope.from_bytes(orjson.dumps({**envelope, "occurred_at": "2026-11-01T10:00:00Z"}))
    assert ok.occurred_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
