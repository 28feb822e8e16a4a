"""Versioned cross-service contracts: topic names, the event envelope's payloads (each naming its
event type and topic, all listed in one registry), feature names, and the HTTP shapes one
service reads from another (feature profiles, training sets).

A breaking change is a new class and a new topic version, never an edit of an existing one.
"""

from churn_shared.contracts.base import Contract, EventContract
from churn_shared.contracts.customers import (
    CustomerAttributesChangedV1,
    CustomerDeletedV1,
    CustomerTopics,
)
from churn_shared.contracts.events import (
    CUSTOMER_EVENT_TYPES,
    FEATURE_NAMES,
    HISTORY_FEATURE_NAMES,
    ONLINE_FEATURE_SETS,
    PROFILE_FEATURE_NAMES,
    AlertAction,
    AlertChannelDisabledV1,
    AlertOutcome,
    AlertStatus,
    ChurnAlertRaisedV1,
    ChurnAlertUpdatedV1,
    ChurnScoreComputedV1,
    CustomerEventReceivedV1,
    CustomerFeaturesUpdatedV1,
    Driver,
    Topics,
)
from churn_shared.contracts.http import (
    CustomerFeaturesRead,
    CustomerTrainingSet,
    EventTrainingSet,
)
from churn_shared.contracts.jobs import (
    CustomerImportProgressV1,
    JobTopics,
    PredictionJobProgressV1,
)
from churn_shared.contracts.models import ModelPromotedV1, ModelTopics, TrainingProgressV1
from churn_shared.contracts.registry import (
    CONTRACTS_BY_EVENT_TYPE,
    CONTRACTS_BY_TOPIC,
    EVENT_CONTRACTS,
    contract_for,
    contracts_on,
)

__all__ = [
    "CONTRACTS_BY_EVENT_TYPE",
    "CONTRACTS_BY_TOPIC",
    "CUSTOMER_EVENT_TYPES",
    "EVENT_CONTRACTS",
    "FEATURE_NAMES",
    "HISTORY_FEATURE_NAMES",
    "ONLINE_FEATURE_SETS",
    "PROFILE_FEATURE_NAMES",
    "AlertAction",
    "AlertChannelDisabledV1",
    "AlertOutcome",
    "AlertStatus",
    "ChurnAlertRaisedV1",
    "ChurnAlertUpdatedV1",
    "ChurnScoreComputedV1",
    "Contract",
    "CustomerAttributesChangedV1",
    "CustomerDeletedV1",
    "CustomerEventReceivedV1",
    "CustomerFeaturesRead",
    "CustomerFeaturesUpdatedV1",
    "CustomerImportProgressV1",
    "CustomerTopics",
    "CustomerTrainingSet",
    "Driver",
    "EventContract",
    "EventTrainingSet",
    "JobTopics",
    "ModelPromotedV1",
    "ModelTopics",
    "PredictionJobProgressV1",
    "Topics",
    "TrainingProgressV1",
    "contract_for",
    "contracts_on",
]
