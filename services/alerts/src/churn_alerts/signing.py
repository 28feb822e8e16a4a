"""Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com).

Every webhook carries

* ``webhook-id``: the delivery's id, one per (alert, channel) and the same on every retry and
  replay, so a receiver that has seen it already drops the repeat (delivery is at least once);
* ``webhook-timestamp``: seconds since the epoch when this attempt was signed;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``f"{id}.{timestamp}.{body}"`` keyed
  with the channel's secret ``whsec_<base64 key>`` (the base64-decoded part after ``whsec_``).

Any Standard Webhooks library verifies it, e.g. Python's ``standardwebhooks``:
``Webhook(secret).verify(body, headers)``.

``X-Churn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}.{body}">`` (keyed with the
whole secret string) is still sent beside it, because receivers written before the Standard
Webhooks headers verify that one; new receivers should use ``webhook-signature``. It will be
dropped in a later major version. ``X-Churn-Delivery`` repeats ``webhook-id`` under this
service's older name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Churn-Signature"
EVENT_HEADER = "X-Churn-Event"
DELIVERY_HEADER = "X-Churn-Delivery"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
_SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in base64, as Standard Webhooks secrets are written."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    # Secrets made before the Standard Webhooks headers are ``whsec_`` + 64 hex digits, which
    # is valid base64 too: their key is what any Standard Webhooks library decodes it to.
    try:
        return base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("the channel secret is not whsec_<base64>") from exc


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value."""
    message = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        WEBHOOK_ID_HEADER: message_id,
        WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
        WEBHOOK_SIGNATURE_HEADER: standard_signature(secret, message_id, timestamp, body),
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature_header(
    secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300
) -> bool:
    """Check an ``X-Churn-Signature`` header as a receiver would."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))
