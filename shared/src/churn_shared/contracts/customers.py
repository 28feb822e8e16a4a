"""Contracts of a customer's lifecycle across services: their attributes changing, their
deletion.

New topic, new class; nothing in :mod:`churn_shared.contracts.events` changes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AwareDatetime, Field

from churn_shared.contracts.base import EventContract


class CustomerTopics:
    """Topics of customer lifecycle events. Keyed by customer id."""

    #: ``CustomerDeletedV1``: a customer was deleted in the customers service.
    CUSTOMER_DELETED = "customer.deleted.v1"
    #: ``CustomerAttributesChangedV1``: a customer's imported attributes were written.
    CUSTOMER_ATTRIBUTES = "customer.attributes.v1"


class CustomerAttributesChangedV1(EventContract):
    """A customer's attributes (what an import or the API stores about them, as JSON values)
    were written: ``attributes`` is the whole set after the change, not a difference, so the
    latest event alone says what the customer looks like. Published through the customers
    service's outbox in the writing transaction (one per customer of an import batch); the
    prediction service scores the customer with the tenant's champion when that model reads
    imported attributes."""

    event_type: ClassVar[str] = "CustomerAttributesChangedV1"
    topic: ClassVar[str] = CustomerTopics.CUSTOMER_ATTRIBUTES

    customer_id: str = Field(min_length=1, max_length=64)
    attributes: dict[str, Any]
    #: The customer import that wrote them; ``None`` for a change through the API.
    import_id: str | None = Field(default=None, max_length=36)
    changed_at: AwareDatetime


class CustomerDeletedV1(EventContract):
    """A tenant deleted a customer (with their events and profile): every service drops what
    it keeps about them (scores, alerts). Published through the customers service's outbox in
    the deleting transaction; acting on it twice is harmless."""

    event_type: ClassVar[str] = "CustomerDeletedV1"
    topic: ClassVar[str] = CustomerTopics.CUSTOMER_DELETED

    customer_id: str = Field(min_length=1, max_length=64)
    deleted_at: AwareDatetime
