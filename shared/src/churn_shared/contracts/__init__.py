"""Versioned cross-service contracts: topic names, the event envelope's payloads, feature names.

A breaking change is a new class and a new topic version, never an edit of an existing one.
"""

from churn_shared.contracts.events import (
    CUSTOMER_EVENT_TYPES,
    FEATURE_NAMES,
    ChurnAlertRaisedV1,
    ChurnScoreComputedV1,
    CustomerEventReceivedV1,
    CustomerFeaturesUpdatedV1,
    Driver,
    Topics,
)
from churn_shared.contracts.models import ModelPromotedV1, ModelTopics, TrainingProgressV1

__all__ = [
    "CUSTOMER_EVENT_TYPES",
    "FEATURE_NAMES",
    "ChurnAlertRaisedV1",
    "ChurnScoreComputedV1",
    "CustomerEventReceivedV1",
    "CustomerFeaturesUpdatedV1",
    "Driver",
    "ModelPromotedV1",
    "ModelTopics",
    "Topics",
    "TrainingProgressV1",
]
