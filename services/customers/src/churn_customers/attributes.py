"""``CustomerAttributesChangedV1``: what the customers service tells the others when it writes
customers' attributes (an import batch, a create or an update through the API).

The events go into the outbox in the caller's transaction, one per customer, in one bulk
insert. Each carries the customer's whole attribute set after the write. Text longer than
:data:`MAX_EVENT_TEXT_CHARS` travels as ``null`` (no model reads free text; a row of
1,000 columns then stays far below the broker's 1 MiB message limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.models import outbox
from churn_shared.contracts import CustomerAttributesChangedV1
from churn_shared.kafka import Envelope, enqueue

PRODUCER = "churn-customers"
#: Longest text attribute value an event carries (longer ones are sent as ``null``).
MAX_EVENT_TEXT_CHARS = 256


def _event_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_EVENT_TEXT_CHARS:
        return None
    return value


async def publish_attributes_changed(
    session: AsyncSession,
    tenant_id: str,
    attributes: Mapping[str, Mapping[str, Any]],
    changed_at: datetime,
    *,
    import_id: str | None = None,
) -> int:
    """Enqueue one ``CustomerAttributesChangedV1`` per customer of ``attributes`` (customer id
    → the attributes now stored) in the caller's transaction; how many."""
    return await enqueue(
        session,
        outbox,
        CustomerAttributesChangedV1.topic,
        [
            Envelope.wrap(
                tenant_id=tenant_id,
                producer=PRODUCER,
                key=customer_id,
                occurred_at=changed_at,
                payload=CustomerAttributesChangedV1(
                    customer_id=customer_id,
                    attributes={k: _event_value(v) for k, v in values.items()},
                    import_id=import_id,
                    changed_at=changed_at,
                ),
            )
            for customer_id, values in attributes.items()
        ],
    )
