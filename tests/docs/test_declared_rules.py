"""The rules the services enforce on request bodies are declared in the merged OpenAPI
document, so generated clients know them, and the declaration agrees with the server.

For each rule a table of bodies is checked twice: against the schema the gateway publishes
(JSON Schema 2020-12, as OpenAPI 3.1 means it) and against the service's own request model.
Both must accept and refuse the same bodies; a schema looser than the server leaves clients
guessing, a stricter one would refuse what the server takes.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, ValidationError

from churn_alerts.schemas import AlertChannelCreate
from churn_auth.schemas import ProfileUpdate
from churn_cli.spec import build_openapi
from churn_prediction.scoring.schemas import PredictionCreate
from churn_prediction.training_jobs.schemas import TrainingCreate


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi()


def _declared(document: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    # ``#/components/schemas/X`` stays resolvable: the components travel with the schema.
    schema = {**document["components"]["schemas"][name], "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def _server_accepts(model: type[BaseModel], body: dict[str, Any]) -> bool:
    """What the service's request model says of the JSON body (the URL policy and the
    common-passwords list come later, in the service)."""
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


CASES: dict[str, tuple[type[BaseModel], list[tuple[dict[str, Any], bool]]]] = {
    "TrainingCreate": (
        TrainingCreate,
        [
            ({"source": "events", "cutoff": "2011-06-01"}, True),
            ({"source": "events", "cutoffs": ["2011-03-01", "2011-06-01"]}, True),
            ({"source": "events", "cutoff": "2011-06-01", "cutoffs": None}, True),
            ({"source": "events", "cutoff": None, "cutoffs": ["2011-06-01"]}, True),
            ({"source": "events", "cutoff": "2011-06-01", "horizon_days": 30}, True),
            ({"source": "customers", "label": "Churn"}, True),
            ({"source": "customers", "label": "Churn", "features": ["tenure"]}, True),
            ({"source": "customers", "label": "Churn", "cutoff": None}, True),
            ({"source": "events"}, False),
            ({"source": "events", "cutoff": None, "cutoffs": None}, False),
            ({"source": "events", "cutoff": "2011-06-01", "cutoffs": ["2011-06-01"]}, False),
            ({"source": "events", "cutoff": "2011-06-01", "label": "Churn"}, False),
            ({"source": "events", "cutoff": "2011-06-01", "features": ["x"]}, False),
            ({"source": "events", "cutoff": "2011-06-01", "horizon_days": 45}, False),
            ({"source": "customers"}, False),
            ({"source": "customers", "label": None}, False),
            ({"source": "customers", "label": "Churn", "cutoff": "2011-06-01"}, False),
            ({"source": "customers", "label": "Churn", "cutoffs": ["2011-06-01"]}, False),
        ],
    ),
    "PredictionCreate": (
        PredictionCreate,
        [
            ({"customer_id": "c-42"}, True),
            ({"features": {"total_orders": 3}}, True),
            ({"customer_id": "c-42", "features": None}, True),
            ({"customer_id": None, "features": {}}, True),
            ({}, False),
            ({"customer_id": None, "features": None}, False),
            ({"customer_id": "c-42", "features": {}}, False),
        ],
    ),
    "ProfileUpdate": (
        ProfileUpdate,
        [
            ({}, True),
            ({"email": None}, True),
            ({"email": "new@example.com", "current_password": "secret"}, True),
            ({"current_password": "secret"}, True),
            ({"email": "new@example.com"}, False),
            ({"email": "new@example.com", "current_password": None}, False),
            ({"email": "new@example.com", "current_password": ""}, False),
        ],
    ),
    "AlertChannelCreate": (
        AlertChannelCreate,
        [
            ({"url": "https://hooks.example.com/churn"}, True),
            ({"kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}, True),
            ({"kind": "email", "recipients": ["team@example.com"]}, True),
            ({"kind": "email", "recipients": ["team@example.com"], "url": None}, True),
            ({"kind": "webhook", "url": "https://h.example.com/x", "recipients": None}, True),
            ({}, False),
            ({"kind": "webhook"}, False),
            ({"kind": "discord", "url": None}, False),
            ({"kind": "email"}, False),
            ({"kind": "email", "url": "https://h.example.com/x"}, False),
            (
                {"kind": "email", "recipients": ["a@example.com"], "url": "https://h.example.com"},
                False,
            ),
            ({"url": "https://h.example.com/x", "recipients": ["a@example.com"]}, False),
        ],
    ),
}


@pytest.mark.parametrize(
    ("name", "body", "valid"),
    [(name, body, valid) for name, (_, cases) in CASES.items() for body, valid in cases],
)
def test_the_published_schema_and_the_server_agree(
    document: dict[str, Any], name: str, body: dict[str, Any], valid: bool
) -> None:
    model = CASES[name][0]
    assert _server_accepts(model, body) is valid, "the table is wrong about the server"
    assert _declared(document, name).is_valid(body) is valid, (
        f"{name} as published {'refuses' if valid else 'accepts'} {body}"
    )


def test_the_training_set_horizon_is_an_enum(document: dict[str, Any]) -> None:
    parameters = document["paths"]["/v1/training-sets/events"]["get"]["parameters"]
    horizon = next(p for p in parameters if p["name"] == "horizon_days")
    assert horizon["schema"]["enum"] == [30, 60, 90, 180]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("RegistrationCreate", "password"),
        ("UserCreate", "password"),
        ("PasswordChange", "new_password"),
    ],
)
def test_password_rules_are_declared(document: dict[str, Any], name: str, field: str) -> None:
    declared = document["components"]["schemas"][name]["properties"][field]
    assert declared["minLength"] == 10
    assert "common passwords" in declared["description"]


def test_a_channel_url_is_declared_a_uri(document: dict[str, Any]) -> None:
    url = document["components"]["schemas"]["AlertChannelCreate"]["properties"]["url"]
    assert {"type": "string", "format": "uri"}.items() <= url["anyOf"][0].items()


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        operation["operationId"]: (path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    }


def test_created_resources_link_to_what_can_be_done_with_them(document: dict[str, Any]) -> None:
    """Every link names an operation that exists, fills a path parameter that operation has,
    from a field the response declares; the lifecycles schemathesis follows are all there."""
    operations = _operations(document)
    followed: set[tuple[str, str]] = set()
    for source, (_, operation) in operations.items():
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                target_path, _ = operations[link["operationId"]]
                ((parameter, expression),) = link["parameters"].items()
                assert "{" + parameter + "}" in target_path
                field = expression.removeprefix("$response.body#/")
                ref = response["content"]["application/json"]["schema"]["$ref"]
                declared = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
                assert field in declared["required"], (source, field)
                followed.add((source, link["operationId"]))
    assert {
        ("customers_create", "customers_get"),
        ("customers_create", "customers_delete"),
        ("cohorts_create", "cohorts_update"),
        ("cohorts_create", "cohorts_delete"),
        ("alert_channels_create", "alert_channels_delete"),
        ("api_keys_create", "api_keys_revoke"),
    } <= followed
