"""Every operation by every role, through the gateway: allowed (2xx) or 403.

The table below is the permission matrix (docs/permissions.md) as data. ``test_table_covers``
fails when the platform grows an operation without a row here. Rows marked ``loose`` cannot be
made to succeed cheaply (they would train a model, need a training job…): for an allowed role
they only assert that the role check passed (not 401/403, not 5xx); denied roles still get 403.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security._helpers import (
    PASSWORD,
    ROLES,
    Account,
    add_user,
    create_api_key,
    create_channel,
    create_customer,
    login,
    login_event,
    raise_alert,
    register,
    unique,
)

pytestmark = pytest.mark.e2e

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
Prepared = tuple[str, Any, dict[str, str] | None]
Prepare = Callable[["Ctx", Account], Awaitable[Prepared]]


@dataclass
class Ctx:
    client: httpx.AsyncClient
    owner: Account
    accounts: dict[str, Account]
    customer_id: str
    alert_id: str


@dataclass(frozen=True)
class Row:
    operation_id: str
    method: str
    path: str
    #: Lowest role allowed; ``None``: public (every role, and nobody, may call it).
    min_role: str | None
    body: Any = None
    prepare: Prepare | None = None
    loose: bool = False
    #: An inference protocol's path: errors take the protocol's JSON form, not problem+json.
    protocol: bool = False


def fixed(path: str, body: Any = None) -> Prepare:
    async def prepare(ctx: Ctx, actor: Account) -> Prepared:
        return path.format(customer=ctx.customer_id, alert=ctx.alert_id), body, None

    return prepare


async def _new_customer(ctx: Ctx, actor: Account) -> Prepared:
    return f"/v1/customers/{await create_customer(ctx.client, ctx.owner)}", None, None


async def _patch_customer(ctx: Ctx, actor: Account) -> Prepared:
    path = f"/v1/customers/{await create_customer(ctx.client, ctx.owner)}"
    return path, {"attributes": {"tier": "gold"}}, None


async def _create_customer(ctx: Ctx, actor: Account) -> Prepared:
    return "/v1/customers", {"customer_id": unique("created"), "attributes": {}}, None


async def _new_cohort_body(ctx: Ctx, actor: Account) -> Prepared:
    return "/v1/cohorts", {"name": unique("cohort"), "filter": {"risk_level": ["high"]}}, None


def _cohort_path(suffix: str) -> Prepare:
    """A new cohort of the owner's, then its path (``suffix`` appended)."""

    async def prepare(ctx: Ctx, actor: Account) -> Prepared:
        created = await ctx.client.post(
            "/v1/cohorts",
            headers=ctx.owner.headers,
            json={"name": unique("cohort"), "filter": {"min_probability": 0.5}},
        )
        assert created.status_code == 201, created.text
        return f"/v1/cohorts/{created.json()['id']}{suffix}", None, None

    return prepare


async def _events(ctx: Ctx, actor: Account) -> Prepared:
    return "/v1/events", {"events": [login_event(unique("evc"))]}, None


async def _channel(ctx: Ctx, actor: Account) -> Prepared:
    return f"/v1/alert-channels/{await create_channel(ctx.client, ctx.owner)}", None, None


def _channel_action(action: str) -> Prepare:
    async def prepare(ctx: Ctx, actor: Account) -> Prepared:
        channel = await create_channel(ctx.client, ctx.owner)
        return f"/v1/alert-channels/{channel}/{action}", None, None

    return prepare


async def _new_channel(ctx: Ctx, actor: Account) -> Prepared:
    return "/v1/alert-channels", {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}, None


async def _rules(ctx: Ctx, actor: Account) -> Prepared:
    current = await ctx.client.get("/v1/alert-rules", headers=ctx.owner.headers)
    body = {k: v for k, v in current.json().items() if k != "updated_at"}
    return "/v1/alert-rules", body, None


def _working(action: str, body: Any = None, *, first: str = "reopen") -> Prepare:
    """The shared alert, first put (by the owner) where ``action`` is allowed: reopened, or
    resolved for ``reopen``; a 409 there only means it already was."""

    async def prepare(ctx: Ctx, actor: Account) -> Prepared:
        setup = {"outcome": "false_alarm"} if first == "resolve" else None
        response = await ctx.client.post(
            f"/v1/alerts/{ctx.alert_id}/{first}", headers=ctx.owner.headers, json=setup
        )
        assert response.status_code in (200, 409), response.text
        value = body(ctx) if callable(body) else body
        return action.format(alert=ctx.alert_id), value, None

    return prepare


def _snooze_body(ctx: Ctx) -> dict[str, str]:
    return {"until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}


async def _register(ctx: Ctx, actor: Account) -> Prepared:
    body = {"tenant_name": "matrix", "email": f"{unique('reg')}@example.com", "password": PASSWORD}
    return "/v1/auth/register", body, {}


async def _login(ctx: Ctx, actor: Account) -> Prepared:
    return "/v1/auth/login", {"email": actor.email, "password": PASSWORD}, {}


async def _refresh(ctx: Ctx, actor: Account) -> Prepared:
    tokens = await login(ctx.client, actor.email)
    return "/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}, {}


async def _logout(ctx: Ctx, actor: Account) -> Prepared:
    tokens = await login(ctx.client, actor.email)
    return "/v1/auth/logout", {"refresh_token": tokens["refresh_token"]}, {}


async def _update_me(ctx: Ctx, actor: Account) -> Prepared:
    body = {"email": f"{unique('me')}@example.com", "current_password": PASSWORD}
    return "/v1/users/me", body, None


async def _change_password(ctx: Ctx, actor: Account) -> Prepared:
    # A fresh account of the same role, so the shared accounts keep their password.
    own = await register(ctx.client, "pw") if actor.role == "owner" else None
    fresh = own or await add_user(ctx.client, ctx.owner, actor.role)
    body = {"old_password": PASSWORD, "new_password": PASSWORD + " changed"}
    return "/v1/users/me/password", body, fresh.headers


async def _create_user(ctx: Ctx, actor: Account) -> Prepared:
    body = {"email": f"{unique('new')}@example.com", "password": PASSWORD, "role": "viewer"}
    return "/v1/users", body, None


async def _update_user(ctx: Ctx, actor: Account) -> Prepared:
    target = await add_user(ctx.client, ctx.owner, "viewer")
    return f"/v1/users/{target.user_id}", {"role": "analyst"}, None


async def _create_key(ctx: Ctx, actor: Account) -> Prepared:
    return "/v1/api-keys", {"name": unique("key"), "scopes": ["read"]}, None


async def _revoke_key(ctx: Ctx, actor: Account) -> Prepared:
    key = await create_api_key(ctx.client, ctx.owner, ["read"])
    return f"/v1/api-keys/{key['id']}", None, None


V, AN, AD, OW = "viewer", "analyst", "admin", "owner"
OIP_BODY = {
    "inputs": [{"name": "days_since_last_order", "datatype": "FP64", "shape": [1], "data": [3]}]
}

#: The permission matrix. Order matters only for the key rotation, which runs last.
TABLE: list[Row] = [
    # auth: public
    Row("auth_register", "POST", "/v1/auth/register", None, prepare=_register),
    Row("auth_login", "POST", "/v1/auth/login", None, prepare=_login),
    Row("auth_refresh", "POST", "/v1/auth/refresh", None, prepare=_refresh),
    Row("auth_logout", "POST", "/v1/auth/logout", None, prepare=_logout),
    Row("auth_jwks", "GET", "/v1/auth/.well-known/jwks.json", None),
    # users
    Row("users_me", "GET", "/v1/users/me", V),
    Row("users_update_me", "PATCH", "/v1/users/me", V, prepare=_update_me),
    Row("users_change_password", "POST", "/v1/users/me/password", V, prepare=_change_password),
    Row("users_create", "POST", "/v1/users", AD, prepare=_create_user),
    Row("users_list", "GET", "/v1/users", AD),
    Row("users_update", "PATCH", "/v1/users/{user_id}", AD, prepare=_update_user),
    # API keys
    Row("api_keys_create", "POST", "/v1/api-keys", AD, prepare=_create_key),
    Row("api_keys_list", "GET", "/v1/api-keys", AD),
    Row("api_keys_revoke", "DELETE", "/v1/api-keys/{key_id}", AD, prepare=_revoke_key),
    # customers
    Row("events_ingest", "POST", "/v1/events", AN, prepare=_events),
    Row("customers_list", "GET", "/v1/customers", V),
    Row("customers_create", "POST", "/v1/customers", AN, prepare=_create_customer),
    Row(
        "customers_get",
        "GET",
        "/v1/customers/{customer_id}",
        V,
        prepare=fixed("/v1/customers/{customer}"),
    ),
    Row("customers_update", "PATCH", "/v1/customers/{customer_id}", AN, prepare=_patch_customer),
    Row("customers_delete", "DELETE", "/v1/customers/{customer_id}", AD, prepare=_new_customer),
    Row(
        "customers_features",
        "GET",
        "/v1/customers/{customer_id}/features",
        V,
        prepare=fixed("/v1/customers/{customer}/features"),
    ),
    Row("customers_export", "GET", "/v1/customers/export", AN),
    Row("cohorts_create", "POST", "/v1/cohorts", AN, prepare=_new_cohort_body),
    Row("cohorts_list", "GET", "/v1/cohorts", V),
    Row("cohorts_get", "GET", "/v1/cohorts/{cohort_id}", V, prepare=_cohort_path("")),
    Row("cohorts_stats", "GET", "/v1/cohorts/{cohort_id}/stats", V, prepare=_cohort_path("/stats")),
    Row("cohorts_retention", "GET", "/v1/cohorts/retention", V),
    Row(
        "cohorts_update",
        "PATCH",
        "/v1/cohorts/{cohort_id}",
        AN,
        body={"filter": {"risk_level": ["high"]}},
        prepare=_cohort_path(""),
    ),
    Row("cohorts_delete", "DELETE", "/v1/cohorts/{cohort_id}", AN, prepare=_cohort_path("")),
    # the gateway's composed dashboard (customers' and alerts' parts)
    Row("dashboard_summary", "GET", "/v1/dashboard/summary", V),
    Row("dashboard_trend", "GET", "/v1/dashboard/trend", V),
    Row(
        "customers_bulk",
        "POST",
        "/v1/customers/bulk",
        AN,
        body={"action": "tag", "tag": "matrix", "customer_ids": ["nobody"]},
    ),
    Row(
        "customers_scores",
        "GET",
        "/v1/customers/{customer_id}/scores",
        V,
        prepare=fixed("/v1/customers/{customer}/scores"),
    ),
    Row("customers_import", "POST", "/v1/customers/import", AN, loose=True),
    Row(
        "customers_import_get",
        "GET",
        "/v1/customers/imports/{import_id}",
        V,
        prepare=fixed("/v1/customers/imports/no-such-import"),
        loose=True,
    ),
    Row(
        "customers_import_errors",
        "GET",
        "/v1/customers/imports/{import_id}/errors",
        V,
        prepare=fixed("/v1/customers/imports/no-such-import/errors"),
        loose=True,
    ),
    Row("training_sets_customers", "GET", "/v1/training-sets/customers", V, loose=True),
    Row("training_sets_events", "GET", "/v1/training-sets/events", V, loose=True),
    # prediction
    Row("predictions_create", "POST", "/v1/predictions", AN, body={"features": {}}),
    Row("predictions_create_batch", "POST", "/v1/predictions/batch", AN, body={"rows": [{}]}),
    # A JSON body is not a file (415) once the role check passed.
    Row("prediction_jobs_create", "POST", "/v1/predictions/jobs", AN, body={}, loose=True),
    Row(
        "prediction_jobs_get",
        "GET",
        "/v1/predictions/jobs/{job_id}",
        AN,
        prepare=fixed("/v1/predictions/jobs/no-such-job"),
        loose=True,
    ),
    Row(
        "prediction_jobs_result",
        "GET",
        "/v1/predictions/jobs/{job_id}/result",
        AN,
        prepare=fixed("/v1/predictions/jobs/no-such-job/result"),
        loose=True,
    ),
    Row(
        "prediction_jobs_errors",
        "GET",
        "/v1/predictions/jobs/{job_id}/errors",
        AN,
        prepare=fixed("/v1/predictions/jobs/no-such-job/errors"),
        loose=True,
    ),
    Row("models_list", "GET", "/v1/models", V),
    Row("models_get_current", "GET", "/v1/models/current", V),
    Row(
        "models_get",
        "GET",
        "/v1/models/{version}",
        V,
        prepare=fixed("/v1/models/default-1"),
        loose=True,
    ),
    Row(
        "models_get_card",
        "GET",
        "/v1/models/{version}/card",
        V,
        prepare=fixed("/v1/models/default-1/card"),
        loose=True,
    ),
    Row(
        "models_get_job",
        "GET",
        "/v1/models/jobs/{job_id}",
        V,
        prepare=fixed("/v1/models/jobs/no-such-job"),
        loose=True,
    ),
    Row("models_shadow_report", "GET", "/v1/models/shadow", V, loose=True),
    # Invalid bodies on purpose: the role check runs before validation, and nothing is trained.
    Row("models_train", "POST", "/v1/models/train", AN, body={"invalid": True}, loose=True),
    Row(
        "models_evaluate",
        "POST",
        "/v1/models/{version}/evaluate",
        AN,
        prepare=fixed("/v1/models/no-such-model/evaluate", {"invalid": True}),
        loose=True,
    ),
    Row(
        "models_promote",
        "POST",
        "/v1/models/{version}/promote",
        AD,
        prepare=fixed("/v1/models/no-such-model/promote", {"invalid": True}),
        loose=True,
    ),
    Row("models_rollback", "POST", "/v1/models/rollback", AD, body={"invalid": True}, loose=True),
    # inference protocols (Open Inference Protocol V2, MLflow scoring)
    Row("inference_v2_live", "GET", "/v2/health/live", None, protocol=True),
    Row("inference_v2_ready", "GET", "/v2/health/ready", None, protocol=True),
    Row("inference_v2_server_metadata", "GET", "/v2", V, protocol=True),
    Row(
        "inference_v2_model_metadata",
        "GET",
        "/v2/models/{model_name}",
        V,
        prepare=fixed("/v2/models/churn"),
        protocol=True,
    ),
    Row(
        "inference_v2_model_version_metadata",
        "GET",
        "/v2/models/{model_name}/versions/{model_version}",
        V,
        prepare=fixed("/v2/models/churn/versions/default-1"),
        protocol=True,
    ),
    Row(
        "inference_v2_model_ready",
        "GET",
        "/v2/models/{model_name}/ready",
        V,
        prepare=fixed("/v2/models/churn/ready"),
        protocol=True,
    ),
    Row(
        "inference_v2_model_version_ready",
        "GET",
        "/v2/models/{model_name}/versions/{model_version}/ready",
        V,
        prepare=fixed("/v2/models/churn/versions/default-1/ready"),
        protocol=True,
    ),
    Row(
        "inference_v2_infer",
        "POST",
        "/v2/models/{model_name}/infer",
        AN,
        prepare=fixed("/v2/models/churn/infer", OIP_BODY),
        protocol=True,
    ),
    Row(
        "inference_v2_infer_version",
        "POST",
        "/v2/models/{model_name}/versions/{model_version}/infer",
        AN,
        prepare=fixed("/v2/models/churn/versions/default-1/infer", OIP_BODY),
        protocol=True,
    ),
    Row("inference_mlflow_ping", "GET", "/ping", None, protocol=True),
    Row("inference_mlflow_health", "GET", "/health", None, protocol=True),
    Row("inference_mlflow_version", "GET", "/version", V, protocol=True),
    Row(
        "inference_mlflow_invocations",
        "POST",
        "/invocations",
        AN,
        body={"dataframe_records": [{"days_since_last_order": 3}]},
        protocol=True,
    ),
    Row("recommendation_rules_get", "GET", "/v1/recommendation-rules", V, loose=True),
    Row(
        "recommendation_rules_put",
        "PUT",
        "/v1/recommendation-rules",
        AD,
        body={"invalid": True},
        loose=True,
    ),
    # alerts
    Row("alerts_list", "GET", "/v1/alerts", V),
    Row("alerts_get", "GET", "/v1/alerts/{alert_id}", V, prepare=fixed("/v1/alerts/{alert}")),
    Row("alerts_outcomes", "GET", "/v1/alerts/outcomes", V),
    Row(
        "alerts_history",
        "GET",
        "/v1/alerts/{alert_id}/history",
        V,
        prepare=fixed("/v1/alerts/{alert}/history"),
    ),
    Row(
        "alerts_deliveries",
        "GET",
        "/v1/alerts/{alert_id}/deliveries",
        V,
        prepare=fixed("/v1/alerts/{alert}/deliveries"),
    ),
    Row(
        "alerts_acknowledge",
        "POST",
        "/v1/alerts/{alert_id}/acknowledge",
        AN,
        prepare=_working("/v1/alerts/{alert}/acknowledge"),
    ),
    Row(
        "alerts_assign",
        "POST",
        "/v1/alerts/{alert_id}/assign",
        AN,
        prepare=_working("/v1/alerts/{alert}/assign", {"user_id": "me"}),
    ),
    Row(
        "alerts_snooze",
        "POST",
        "/v1/alerts/{alert_id}/snooze",
        AN,
        prepare=_working("/v1/alerts/{alert}/snooze", _snooze_body),
    ),
    Row(
        "alerts_resolve",
        "POST",
        "/v1/alerts/{alert_id}/resolve",
        AN,
        prepare=_working("/v1/alerts/{alert}/resolve", {"outcome": "retained"}),
    ),
    Row(
        "alerts_reopen",
        "POST",
        "/v1/alerts/{alert_id}/reopen",
        AN,
        prepare=_working("/v1/alerts/{alert}/reopen", first="resolve"),
    ),
    Row(
        "alerts_bulk_acknowledge",
        "POST",
        "/v1/alerts/bulk/acknowledge",
        AN,
        prepare=_working("/v1/alerts/bulk/acknowledge", lambda ctx: {"alert_ids": [ctx.alert_id]}),
    ),
    Row(
        "alerts_bulk_assign",
        "POST",
        "/v1/alerts/bulk/assign",
        AN,
        prepare=_working(
            "/v1/alerts/bulk/assign", lambda ctx: {"alert_ids": [ctx.alert_id], "user_id": "me"}
        ),
    ),
    Row(
        "alerts_bulk_resolve",
        "POST",
        "/v1/alerts/bulk/resolve",
        AN,
        prepare=_working(
            "/v1/alerts/bulk/resolve",
            lambda ctx: {"alert_ids": [ctx.alert_id], "outcome": "churned"},
        ),
    ),
    Row("alert_rules_get", "GET", "/v1/alert-rules", V),
    Row("alert_rules_update", "PUT", "/v1/alert-rules", AD, prepare=_rules),
    Row("alert_channels_list", "GET", "/v1/alert-channels", V),
    Row("alert_channels_create", "POST", "/v1/alert-channels", AD, prepare=_new_channel),
    Row("alert_channels_delete", "DELETE", "/v1/alert-channels/{channel_id}", AD, prepare=_channel),
    Row(
        "alert_channels_test",
        "POST",
        "/v1/alert-channels/{channel_id}/test",
        AD,
        prepare=_channel_action("test"),
    ),
    Row(
        "alert_channels_enable",
        "POST",
        "/v1/alert-channels/{channel_id}/enable",
        AD,
        prepare=_channel_action("enable"),
    ),
    Row("deliveries_list", "GET", "/v1/deliveries", V),
    # No dead delivery to replay here: a missing one answers 404 once the role check passed.
    Row(
        "deliveries_retry",
        "POST",
        "/v1/deliveries/{delivery_id}/retry",
        AD,
        prepare=fixed("/v1/deliveries/no-such-delivery/retry"),
        loose=True,
    ),
    # last: rotating the signing key (sessions survive it; see test_sessions)
    Row("auth_rotate_keys", "POST", "/v1/auth/keys/rotate", OW),
]

CELLS = [(row, role) for row in TABLE for role in ROLES]


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "patch", "delete"}
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


def _table_operations() -> set[tuple[str, str]]:
    return {(row.method, row.path) for row in TABLE}


def test_table_covers_the_committed_openapi():
    missing = _operations(json.loads(OPENAPI.read_text())) - _table_operations()
    assert not missing, f"operations without a row in the role matrix: {sorted(missing)}"


def test_operation_ids_match_the_committed_openapi():
    document = json.loads(OPENAPI.read_text())
    ids = {
        (method.upper(), path): op.get("operationId")
        for path, item in document["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    }
    for row in TABLE:
        if (row.method, row.path) in ids:
            assert ids[(row.method, row.path)] == row.operation_id, row


@pytest.fixture(scope="module")
async def ctx(stack: Any) -> AsyncIterator[Ctx]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        owner = await register(client, "matrix")
        accounts = {"owner": owner}
        for role in ("admin", "analyst", "viewer"):
            accounts[role] = await add_user(client, owner, role)
        customer_id = await create_customer(client, owner)
        alert = await raise_alert(client, owner)
        yield Ctx(client, owner, accounts, customer_id, str(alert["id"]))


@pytest.fixture(scope="module")
async def live_operations(stack: Any) -> set[tuple[str, str]]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    return _operations(response.json())


async def test_table_covers_the_running_platform(live_operations):
    missing = live_operations - _table_operations()
    assert not missing, f"operations without a row in the role matrix: {sorted(missing)}"


@pytest.mark.parametrize(
    ("row", "role"), CELLS, ids=[f"{row.operation_id}-{role}" for row, role in CELLS]
)
async def test_role_matrix(ctx, live_operations, row, role):
    assert (row.method, row.path) in live_operations, "a row for an operation nobody serves"
    actor = ctx.accounts[role]
    path, body, headers = row.path, row.body, None
    if row.prepare is not None:
        path, prepared_body, headers = await row.prepare(ctx, actor)
        body = prepared_body if prepared_body is not None else body
    if headers is None:
        headers = actor.headers
    response = await ctx.client.request(
        row.method, path, headers=headers, json=body if row.method != "GET" else None
    )
    allowed = row.min_role is None or ROLES.index(role) >= ROLES.index(row.min_role)
    if not allowed:
        assert response.status_code == 403, (row.operation_id, role, response.text)
        if row.protocol:
            assert response.headers["content-type"].startswith("application/json")
            assert {"error"} <= set(response.json()) or {"error_code"} <= set(response.json())
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
    elif row.loose:
        assert response.status_code not in (401, 403), (row.operation_id, role, response.text)
        assert response.status_code < 500, (row.operation_id, role, response.text)
    else:
        assert 200 <= response.status_code < 300, (row.operation_id, role, response.text)
