"""Every event contract names its wire type and topic; one registry maps both to contracts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from churn_shared.contracts import (
    EVENT_CONTRACTS,
    AlertChannelDisabledV1,
    ChurnAlertRaisedV1,
    ChurnAlertUpdatedV1,
    ChurnScoreComputedV1,
    CustomerAttributesChangedV1,
    CustomerDeletedV1,
    CustomerEventReceivedV1,
    CustomerFeaturesUpdatedV1,
    CustomerImportProgressV1,
    EventContract,
    ModelPromotedV1,
    ModelTopics,
    PredictionJobProgressV1,
    Topics,
    TrainingProgressV1,
    contract_for,
    contracts_on,
)
from churn_shared.kafka import Envelope

NOW = datetime(2025, 1, 2, tzinfo=UTC)

#: The wire format producers outside the repository depend on: it never changes.
WIRE = {
    CustomerEventReceivedV1: ("CustomerEventReceivedV1", "customer.events.v1"),
    CustomerFeaturesUpdatedV1: ("CustomerFeaturesUpdatedV1", "customer.features.v1"),
    ChurnScoreComputedV1: ("ChurnScoreComputedV1", "churn.scores.v1"),
    ChurnAlertRaisedV1: ("ChurnAlertRaisedV1", "churn.alerts.v1"),
    ChurnAlertUpdatedV1: ("ChurnAlertUpdatedV1", "churn.alerts.v1"),
    AlertChannelDisabledV1: ("AlertChannelDisabledV1", "churn.alerts.v1"),
    ModelPromotedV1: ("ModelPromotedV1", "model.events.v1"),
    TrainingProgressV1: ("TrainingProgressV1", "model.training.v1"),
    PredictionJobProgressV1: ("PredictionJobProgressV1", "prediction.jobs.v1"),
    CustomerDeletedV1: ("CustomerDeletedV1", "customer.deleted.v1"),
    CustomerImportProgressV1: ("CustomerImportProgressV1", "customer.imports.v1"),
    CustomerAttributesChangedV1: ("CustomerAttributesChangedV1", "customer.attributes.v1"),
}


def _score() -> ChurnScoreComputedV1:
    return ChurnScoreComputedV1(
        customer_id="c1",
        churn_probability=0.5,
        risk_level="medium",
        model_version="m1",
        scored_at=NOW,
    )


@pytest.mark.parametrize("contract", list(WIRE))
def test_each_contract_keeps_its_wire_event_type_and_topic(contract):
    assert (contract.event_type, contract.topic) == WIRE[contract]


def test_the_registry_lists_every_event_contract_once():
    assert sorted(c.__name__ for c in EVENT_CONTRACTS) == sorted(c.__name__ for c in WIRE)


@pytest.mark.parametrize("contract", list(WIRE))
def test_the_registry_finds_a_contract_by_its_event_type_and_by_its_topic(contract):
    assert contract_for(contract.event_type) is contract
    assert contract in contracts_on(contract.topic)


def test_every_topic_of_the_platform_carries_contracts():
    for topic in (*_topics(Topics), *_topics(ModelTopics)):
        assert contracts_on(topic), topic


def test_unknown_event_types_and_topics_have_no_contract():
    assert contract_for("SomethingElseV1") is None
    assert contracts_on("nobody.listens.v1") == ()


def test_event_types_are_class_level_not_payload_fields():
    body = _score().model_dump(mode="json")
    assert "event_type" not in body
    assert "topic" not in body


def test_wrap_derives_the_event_type_from_the_contract():
    envelope = Envelope.wrap(tenant_id="t1", producer="p", payload=_score(), key="c1")
    assert envelope.event_type == "ChurnScoreComputedV1"
    assert ChurnScoreComputedV1.model_validate(envelope.payload) == _score()


def test_wrap_refuses_an_event_type_that_contradicts_the_contract():
    with pytest.raises(ValueError, match="ChurnScoreComputedV1"):
        Envelope.wrap(
            event_type="ChurnAlertRaisedV1", tenant_id="t1", producer="p", payload=_score()
        )


def test_wrap_needs_an_event_type_for_a_payload_that_is_not_a_contract():
    class Ping(BaseModel):
        n: int

    with pytest.raises(TypeError):
        Envelope.wrap(tenant_id="t1", producer="p", payload=Ping(n=1))
    assert (
        Envelope.wrap(event_type="Ping", tenant_id="t1", producer="p", payload=Ping(n=1)).event_type
        == "Ping"
    )


def test_a_contract_subclass_must_name_its_event_type():
    assert issubclass(ChurnScoreComputedV1, EventContract)
    assert not hasattr(EventContract, "event_type")


def _topics(holder: type) -> list[str]:
    return [v for k, v in vars(holder).items() if k.isupper() and isinstance(v, str)]
