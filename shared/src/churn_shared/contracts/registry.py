"""Which contract an envelope carries: by its ``event_type``, and which contracts a topic carries.

Every event contract is listed here once; consumers look payload classes up instead of spelling
event-type strings (see :class:`churn_shared.kafka.TransactionalHandler`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from churn_shared.contracts.base import EventContract
from churn_shared.contracts.customers import CustomerAttributesChangedV1, CustomerDeletedV1
from churn_shared.contracts.events import (
    AlertChannelDisabledV1,
    ChurnAlertRaisedV1,
    ChurnAlertUpdatedV1,
    ChurnScoreComputedV1,
    CustomerEventReceivedV1,
    CustomerFeaturesUpdatedV1,
)
from churn_shared.contracts.jobs import CustomerImportProgressV1, PredictionJobProgressV1
from churn_shared.contracts.models import ModelPromotedV1, TrainingProgressV1

#: Every event contract, once.
EVENT_CONTRACTS: tuple[type[EventContract], ...] = (
    CustomerEventReceivedV1,
    CustomerFeaturesUpdatedV1,
    ChurnScoreComputedV1,
    ChurnAlertRaisedV1,
    ChurnAlertUpdatedV1,
    AlertChannelDisabledV1,
    ModelPromotedV1,
    TrainingProgressV1,
    PredictionJobProgressV1,
    CustomerDeletedV1,
    CustomerImportProgressV1,
    CustomerAttributesChangedV1,
)


def _by_event_type(
    contracts: tuple[type[EventContract], ...],
) -> Mapping[str, type[EventContract]]:
    table: dict[str, type[EventContract]] = {}
    for contract in contracts:
        if contract.event_type in table:
            raise ValueError(
                f"{contract.__name__} and {table[contract.event_type].__name__} "
                f"share the event type {contract.event_type!r}"
            )
        table[contract.event_type] = contract
    return MappingProxyType(table)


def _by_topic(
    contracts: tuple[type[EventContract], ...],
) -> Mapping[str, tuple[type[EventContract], ...]]:
    table: dict[str, tuple[type[EventContract], ...]] = {}
    for contract in contracts:
        table[contract.topic] = (*table.get(contract.topic, ()), contract)
    return MappingProxyType(table)


#: ``event_type`` → its contract.
CONTRACTS_BY_EVENT_TYPE = _by_event_type(EVENT_CONTRACTS)
#: topic → the contracts it carries.
CONTRACTS_BY_TOPIC = _by_topic(EVENT_CONTRACTS)


def contract_for(event_type: str) -> type[EventContract] | None:
    """The contract of an envelope's ``event_type``, or ``None`` when it is not one of ours."""
    return CONTRACTS_BY_EVENT_TYPE.get(event_type)


def contracts_on(topic: str) -> tuple[type[EventContract], ...]:
    """The contracts ``topic`` carries (empty for a topic that is not ours)."""
    return CONTRACTS_BY_TOPIC.get(topic, ())
