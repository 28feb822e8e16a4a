"""``CustomerAttributesChangedV1``: what the customers service tells the others when it writes
customers' attributes (an import batch, a create or an update through the API).

The events go into the outbox in the caller's transaction, one per customer, in one bulk
insert. Each carries the customer's whole attribute set after the write. Text longer than
:data:`MAX_EVENT_TEXT_CHARS` travels as ``null`` (no model reads free text; a row of
1,000 columns then stays far below the broker's 1 MiB message limit).

When a tenant's champion moves, every customer's attributes are sent again
(:func:`request_attribute_rescan`, then :func:`resend_attributes_page` page by page): the
prediction service scores attribute events with a champion that reads imported attributes, so
the customers imported before that champion (its own training file, first of all) are scored
by it too, not only those imported after. Attributes are the whole set, so a re-sent event says
no more than the last one did; a champion of the event features ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.models import outbox
from churn_customers.repository import AttributeRescanRepository, CustomerRepository
from churn_shared.contracts import CustomerAttributesChangedV1
from churn_shared.kafka import Envelope, enqueue

PRODUCER = "churn-customers"
#: Longest text attribute value an event carries (longer ones are sent as ``null``).
MAX_EVENT_TEXT_CHARS = 256


def _event_value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_EVENT_TEXT_CHARS:
        return None
    return value


def _changed(
    tenant_id: str,
    customer_id: str,
    values: Mapping[str, Any],
    changed_at: datetime,
    import_id: str | None,
) -> Envelope:
    return Envelope.wrap(
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
            _changed(tenant_id, customer_id, values, changed_at, import_id)
            for customer_id, values in attributes.items()
        ],
    )


async def request_attribute_rescan(
    session: AsyncSession, tenant_id: str, model_version: str | None, now: datetime
) -> None:
    """Have every customer of the tenant's attributes sent again, from the first customer on
    (a rescan under way starts over), in the caller's transaction."""
    await AttributeRescanRepository(session).request(tenant_id, model_version, now)


@dataclass(frozen=True, slots=True)
class RescanPage:
    tenant_id: str
    #: Customers whose attributes were enqueued (those without attributes are passed over).
    sent: int
    #: The tenant's last page: its rescan is over.
    last: bool


async def resend_attributes_page(session: AsyncSession, page_size: int) -> RescanPage | None:
    """One page of the oldest rescan no other transaction is working on: up to ``page_size``
    customers after the last one sent, locked in id order, their attributes enqueued (each
    with the customer's last write time as ``changed_at``). ``None`` when no rescan is
    waiting. The caller's transaction commits the events with the rescan's progress."""
    rescans = AttributeRescanRepository(session)
    rescan = await rescans.lock_next()
    if rescan is None:
        return None
    page = await CustomerRepository(session).lock_attributes_page(
        rescan.tenant_id, rescan.after_customer_id, page_size
    )
    envelopes = [
        _changed(rescan.tenant_id, customer_id, values, updated_at, None)
        for customer_id, values, updated_at in page
        if values
    ]
    await enqueue(session, outbox, CustomerAttributesChangedV1.topic, envelopes)
    last = len(page) < page_size
    if last:
        await rescans.finish(rescan.tenant_id)
    else:
        await rescans.advance(rescan.tenant_id, page[-1][0])
    return RescanPage(rescan.tenant_id, len(envelopes), last)
