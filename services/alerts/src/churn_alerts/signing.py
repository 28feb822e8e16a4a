"""Webhook signatures: ``X-Churn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The HMAC key is the channel's secret; the signed message is ``f"{t}.{body}"``. Receivers should
recompute it, compare in constant time and refuse old timestamps.

Every delivery also carries ``webhook-id`` (as in Standard Webhooks), the delivery's id, the
same on every retry of it: a receiver that has seen an id already can drop the repeat.
``X-Churn-Delivery`` carries the same id under this service's older name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Churn-Signature"
EVENT_HEADER = "X-Churn-Event"
DELIVERY_HEADER = "X-Churn-Delivery"
WEBHOOK_ID_HEADER = "webhook-id"


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature_header(
    secret: str, header: str, body: bytes, *, now: int, tolerance_seconds: int = 300
) -> bool:
    """Check a signature header as a receiver would."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))
