"""The gateway's merged OpenAPI document, built offline from the services' own apps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("openapi/openapi.json")


def build_openapi() -> dict[str, Any]:
    """Create every service's app and the gateway's (no lifespan, no I/O) and merge their
    documents."""
    from churn_alerts.main import create_app as alerts_app
    from churn_auth.main import create_app as auth_app
    from churn_customers.main import create_app as customers_app
    from churn_gateway.main import create_app as gateway_app
    from churn_gateway.openapi import GATEWAY_PART, merge_openapi
    from churn_prediction.main import create_app as prediction_app

    docs = {
        "auth": auth_app().openapi(),
        "customers": customers_app().openapi(),
        "prediction": prediction_app().openapi(),
        "alerts": alerts_app().openapi(),
        # The gateway's own operations (the composed dashboard).
        GATEWAY_PART: gateway_app().openapi(),
    }
    return merge_openapi(docs, title="Churn early-warning platform", version="0.1.0")


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
