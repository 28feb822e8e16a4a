"""Opaque cursors for keyset pagination (``limit``, ``cursor`` → ``next_cursor``)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from churn_shared.errors import BadRequestError


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequestError("The cursor is not valid.") from exc
    if not isinstance(values, list) or len(values) != size:
        raise BadRequestError("The cursor is not valid.")
    return values
