"""Strict field types for what clients send: request bodies and consumed event contracts.

Pydantic's lax mode turns ``0`` into 1970-01-01, ``false`` into ``0`` and ``"5"`` into ``5``, so
a client's mistake is stored instead of refused. These types take a value only in its own JSON
type: booleans only as ``true``/``false``, integers only as integers, numbers as integers or
floats (never booleans or strings), and dates, times and timestamps only as ISO 8601 strings
(or, from Python callers, the matching objects; a string of digits, which pydantic reads as
seconds since 1970, is refused too, so query parameters are as strict). Their JSON schemas
are the usual ones, so the published documents do not change.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Strict

#: ``true`` or ``false``; no ``0``/``1`` or ``"yes"``.
StrictBool = Annotated[bool, Strict()]
#: An integer; no booleans, strings or floats (not even ``5.0``).
StrictInt = Annotated[int, Strict()]
#: A number (an integer is widened); no booleans or strings.
StrictFloat = Annotated[float, Strict()]


def _integer_only(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, not {type(value).__name__}")
    return value


#: Metadata for an integer type pydantic cannot make strict itself, e.g. an integer ``Literal``
#: (an enum in the schema): ``Annotated[Literal[30, 60], IntegerOnly]``.
IntegerOnly = BeforeValidator(_integer_only)


#: A string pydantic would read as seconds since 1970 (``"0"``, ``"1717236000.5"``).
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_string(kind: type, description: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, kind) or (isinstance(value, str) and not _NUMBER.fullmatch(value)):
            return value
        shown = "a number" if isinstance(value, str) else type(value).__name__
        raise ValueError(f"must be {description}, not {shown}")

    return BeforeValidator(check)


#: A timestamp with a time zone, as an ISO 8601 string (``2026-11-01T10:00:00Z``).
Timestamp = Annotated[
    AwareDatetime, _iso_string(datetime, "an ISO 8601 date-time string with a time zone")
]
#: A calendar date as an ISO 8601 string (``2026-11-01``).
DateString = Annotated[date, _iso_string(date, "an ISO 8601 date string (YYYY-MM-DD)")]
#: A time of day as an ISO 8601 string (``22:00``).
TimeString = Annotated[time, _iso_string(time, "an ISO 8601 time string (HH:MM)")]
