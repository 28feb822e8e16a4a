"""Bulk actions on customers (``POST /v1/customers/bulk``) and customer deletion.

Deleting a customer removes their events, feature profile, score history and tags in the
caller's transaction and puts one ``CustomerDeletedV1`` per customer in the outbox, so the
prediction and alerts services drop their scores and alerts once it commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.cohorts import resolve_segment
from churn_customers.models import outbox
from churn_customers.repository import BulkRepository, CustomerRepository
from churn_customers.schemas import MAX_BULK_CUSTOMERS, BulkActionIn, BulkActionResult
from churn_shared.contracts import CustomerDeletedV1, CustomerTopics
from churn_shared.db import utcnow
from churn_shared.errors import ForbiddenError, UnprocessableError
from churn_shared.kafka import Envelope, enqueue
from churn_shared.security import Principal

PRODUCER = "churn-customers"
#: The role a deletion needs (tagging needs the analyst role, checked by the route).
DELETE_ROLE = "admin"


async def delete_customers(
    session: AsyncSession, tenant_id: str, customer_ids: Sequence[str]
) -> list[str]:
    """Delete those of these customers that exist (locked first, in id order, as every writer
    locks them) with everything kept about them, and enqueue their ``CustomerDeletedV1``;
    the ids deleted."""
    alive = await CustomerRepository(session).lock_existing(tenant_id, sorted(set(customer_ids)))
    if not alive:
        return []
    await BulkRepository(session).delete_customers(tenant_id, alive)
    now = utcnow()
    await enqueue(
        session,
        outbox,
        CustomerTopics.CUSTOMER_DELETED,
        [
            Envelope.wrap(
                tenant_id=tenant_id,
                producer=PRODUCER,
                key=cid,
                occurred_at=now,
                payload=CustomerDeletedV1(customer_id=cid, deleted_at=now),
            )
            for cid in alive
        ],
    )
    return alive


class BulkService:
    """One bulk action of one tenant, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._bulk = BulkRepository(session)

    async def apply(self, principal: Principal, body: BulkActionIn) -> BulkActionResult:
        """Select the customers (existing ids of the list, or the filter's matches; more than
        :data:`MAX_BULK_CUSTOMERS` is 422), then tag, untag or delete them — or, for a dry run,
        only count them. Deleting needs the admin role (403)."""
        if body.action == "delete" and not principal.has_role(DELETE_ROLE):
            raise ForbiddenError(f"Deleting customers needs the {DELETE_ROLE} role or higher.")
        tenant_id = principal.tenant_id
        if body.filter is not None:
            await resolve_segment(self._session, tenant_id, body.filter)
            ids = await self._bulk.matching_ids(tenant_id, body.filter, MAX_BULK_CUSTOMERS + 1)
            if len(ids) > MAX_BULK_CUSTOMERS:
                raise UnprocessableError(
                    f"The filter matches more than {MAX_BULK_CUSTOMERS} customers; a bulk action "
                    "touches at most that many. Narrow the filter and repeat."
                )
        else:
            ids = await self._bulk.existing_ids(tenant_id, body.customer_ids or [])
        result = BulkActionResult(
            action=body.action, dry_run=body.dry_run, matched=len(ids), changed=0
        )
        if body.dry_run or not ids:
            return result
        if body.action == "delete":
            result.changed = len(await delete_customers(self._session, tenant_id, ids))
            return result
        assert body.tag is not None  # checked by the schema
        tagged = await self._bulk.tagged(tenant_id, ids, body.tag)
        if body.action == "tag":
            await self._bulk.add_tag(tenant_id, ids, body.tag, utcnow())
            result.changed = len(ids) - len(tagged)
        else:
            await self._bulk.remove_tag(tenant_id, ids, body.tag)
            result.changed = len(tagged)
        return result
