"""The one consumer handler: parse → claim the processed ids → one transaction → one service
call → wake whoever waits for the commit.

Every service consumes the same way (Cosmic Python's thin entrypoint): a
:class:`TransactionalHandler` keeps the deliveries that carry its contract, parses their
payloads into it, and applies the batch in one unit of work. Services supply only ``apply``,
the single service call, so no consumer spells an event-type string or claims ids its own way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_shared.contracts import EventContract, contract_for
from churn_shared.db import unit_of_work
from churn_shared.kafka.consumer import Delivery, Rejection
from churn_shared.kafka.envelope import Envelope
from churn_shared.kafka.outbox import claim_event_ids
from churn_shared.logging import get_logger

_log = get_logger(__name__)

ContractT = TypeVar("ContractT", bound=EventContract)
ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class Received(Generic[ContractT]):
    """One consumed event: its envelope, its payload parsed into the contract, and the request
    id it carried (so what it causes is logged and published under the same id)."""

    envelope: Envelope
    payload: ContractT
    request_id: str | None
    delivery: Delivery

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenant_id

    @property
    def event_id(self) -> str:
        return self.envelope.event_id


#: The service call of a batch: the batch's session and its new events, in delivery order.
Apply = Callable[[AsyncSession, list[Received[ContractT]]], Awaitable[ResultT]]
#: What a batch's events must not be applied, and why (checked before the transaction).
Screen = Callable[[list[Received[ContractT]]], Awaitable[list[Rejection]]]


class TransactionalHandler(Generic[ContractT, ResultT]):
    """A :class:`~churn_shared.kafka.BatchConsumer` handler for one event contract.

    Per batch: keep the deliveries whose ``event_type`` is ``contract``'s (others are left
    alone: another handler's, or, when the registry does not know it, logged; the consumer
    dead-letters event types its topics do not carry before they get here), parse each
    payload (an invalid one raises, so the consumer isolates and dead-letters it), then in
    one transaction claim the event ids in ``processed_events`` under ``name`` and call
    ``apply`` once with the events not seen before (each id once, even when it repeats inside
    the batch). After the commit
    ``on_committed`` gets what ``apply`` returned, typically to wake the outbox relay.

    ``processed_events=None`` claims nothing, for batches that are idempotent by themselves:
    a broadcast every replica must apply (a model reload), or events deduplicated by their own
    ids. A batch with nothing new does not call ``apply`` and wakes no one.

    ``screen``, when given, sees the parsed events first and returns those that must not be
    applied with the reason (an unknown tenant, say); they are left out of the transaction and
    returned to the consumer, which dead-letters them. It may raise
    :class:`~churn_shared.kafka.RetryLaterError` when it cannot tell yet.
    """

    def __init__(
        self,
        *,
        name: str,
        contract: type[ContractT],
        session_factory: async_sessionmaker[AsyncSession],
        processed_events: sa.Table | None,
        apply: Apply[ContractT, ResultT],
        on_committed: Callable[[ResultT], object] | None = None,
        screen: Screen[ContractT] | None = None,
    ) -> None:
        self.name = name
        self.contract = contract
        self._factory = session_factory
        self._processed = processed_events
        self._apply = apply
        self._on_committed = on_committed
        self._screen = screen
        #: Events applied (duplicates not counted).
        self.applied = 0

    def parse(self, deliveries: Sequence[Delivery]) -> list[Received[ContractT]]:
        """The deliveries that carry this handler's contract, parsed into it."""
        parsed: list[Received[ContractT]] = []
        for delivery in deliveries:
            envelope = delivery.envelope
            if envelope.event_type != self.contract.event_type:
                if contract_for(envelope.event_type) is None:
                    _log.warning(
                        "unknown_event_type",
                        handler=self.name,
                        event_type=envelope.event_type,
                        event_id=envelope.event_id,
                    )
                continue
            payload = self.contract.model_validate(envelope.payload)
            parsed.append(Received(envelope, payload, delivery.request_id, delivery))
        return parsed

    async def __call__(self, deliveries: Sequence[Delivery]) -> list[Rejection]:
        received = self.parse(deliveries)
        if not received:
            return []
        rejected: list[Rejection] = []
        if self._screen is not None:
            rejected = await self._screen(received)
            if rejected:
                refused = {id(r.delivery) for r in rejected}
                received = [r for r in received if id(r.delivery) not in refused]
        if not received:
            return rejected
        async with unit_of_work(self._factory) as session:
            fresh = await self._claim(session, received)
            if not fresh:
                return rejected
            result = await self._apply(session, fresh)
        self.applied += len(fresh)
        _log.info(
            "events_applied",
            handler=self.name,
            events=len(fresh),
            duplicates=len(received) - len(fresh),
        )
        if self._on_committed is not None:
            self._on_committed(result)
        return rejected

    async def _claim(
        self, session: AsyncSession, received: list[Received[ContractT]]
    ) -> list[Received[ContractT]]:
        if self._processed is None:
            return received
        fresh = await claim_event_ids(
            session, self._processed, self.name, [r.event_id for r in received]
        )
        first: list[Received[ContractT]] = []
        for r in received:
            if r.event_id in fresh:
                fresh.discard(r.event_id)  # a copy later in the same batch is a duplicate
                first.append(r)
        return first
