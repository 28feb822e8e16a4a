"""Contracts of a customer's lifecycle across services: their deletion.

New topic, new class; nothing in :mod:`churn_shared.contracts.events` changes.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from churn_shared.contracts.base import EventContract


class CustomerTopics:
    """Topics of customer lifecycle events. Keyed by customer id."""

    #: ``CustomerDeletedV1``: a customer was deleted in the customers service.
    CUSTOMER_DELETED = "customer.deleted.v1"


class CustomerDeletedV1(EventContract):
    """A tenant deleted a customer (with their events and profile): every service drops what
    it keeps about them (scores, alerts). Published through the customers service's outbox in
    the deleting transaction; acting on it twice is harmless."""

    event_type: ClassVar[str] = "CustomerDeletedV1"
    topic: ClassVar[str] = CustomerTopics.CUSTOMER_DELETED

    customer_id: str = Field(min_length=1, max_length=64)
    deleted_at: AwareDatetime
