"""The merged OpenAPI document as `churn openapi` builds it from the apps: what generated clients
learn from it (statuses, operation ids, summaries, the rules the server enforces)."""

from __future__ import annotations

from typing import Any

import pytest

from churn_cli.spec import build_openapi

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi()


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/customers"),
        ("post", "/v1/events"),
        ("post", "/v1/models/rollback"),
        ("post", "/v1/alerts/{alert_id}/acknowledge"),
        ("post", "/v1/alerts/{alert_id}/assign"),
        ("post", "/v1/alerts/{alert_id}/snooze"),
        ("post", "/v1/alerts/{alert_id}/resolve"),
        ("post", "/v1/alerts/{alert_id}/reopen"),
        ("post", "/v1/deliveries/{delivery_id}/retry"),
        ("post", "/v1/auth/register"),
        ("post", "/v1/cohorts"),
        ("patch", "/v1/cohorts/{cohort_id}"),
    ],
)
def test_operations_that_can_conflict_declare_409(
    document: dict[str, Any], method: str, path: str
) -> None:
    conflict = _operation(document, method, path)["responses"]["409"]
    schema = conflict["content"]["application/problem+json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Problem"}


def test_every_operation_has_a_unique_id_a_summary_and_its_errors(
    document: dict[str, Any],
) -> None:
    ids: list[str] = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            assert operation.get("summary"), (method, path)
            ids.append(operation["operationId"])
            errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
            assert errors, (method, path)
    assert len(ids) == len(set(ids))


def test_rules_the_server_enforces_are_declared(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # Exactly one way to name what is scored (null counts as not given, as on the server).
    assert schemas["PredictionCreate"]["oneOf"] == [
        {"required": ["customer_id"], "properties": {"customer_id": {"type": "string"}}},
        {"required": ["features"], "properties": {"features": {"type": "object"}}},
    ]
    mlflow = _operation(document, "post", "/invocations")["requestBody"]["content"]
    one_format = mlflow["application/json"]["schema"]["oneOf"]
    assert [f["required"] for f in one_format] == [
        ["dataframe_split"],
        ["dataframe_records"],
        ["instances"],
        ["inputs"],
    ]
    # The horizons point-in-time sets are built for, as an enum.
    for name in ("EvaluationCreate", "TrainingCreate"):
        horizon = schemas[name]["properties"]["horizon_days"]
        assert horizon["enum"] == [30, 60, 90, 180], name
    # Password rules: the length in the schema, the rest in words.
    password = schemas["RegistrationCreate"]["properties"]["password"]
    assert password["minLength"] == 10
    assert "common passwords" in password["description"]
    # A channel's destination is a URL.
    url = schemas["AlertChannelCreate"]["properties"]["url"]["anyOf"][0]
    assert url["format"] == "uri"
    # Batch bounds and non-empty id lists.
    assert schemas["AlertIds"]["properties"]["alert_ids"]["minItems"] == 1
