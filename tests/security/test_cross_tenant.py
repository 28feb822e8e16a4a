"""Tenant isolation through the gateway: tenant B's owner, holding tenant A's ids, gets 404 on
every endpoint (never 403, never A's data), never sees A's rows in a list, and never receives
A's live-feed messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from testkit import wait_for
from tests.security._helpers import (
    LiveFeed,
    add_user,
    create_api_key,
    create_channel,
    create_customer,
    raise_alert,
    register,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def world(stack: Any) -> AsyncIterator[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        a = await register(client, "tenant-a")
        b = await register(client, "tenant-b")
        a_feed, b_feed = LiveFeed(), LiveFeed()
        await a_feed.connect(stack.gateway_url, a.access_token)
        await b_feed.connect(stack.gateway_url, b.access_token)
        try:
            customer_id = await create_customer(client, a)
            channel_id = await create_channel(client, a)
            alert = await raise_alert(client, a)
            user = await add_user(client, a, "analyst")
            key = await create_api_key(client, a, ["read", "predictions", "events:write"])
            import_id, job_id, model_version = await _train_a_model(client, a)
            cohort = await client.post(
                "/v1/cohorts",
                headers=a.headers,
                json={"name": "A's at-risk", "filter": {"risk_level": ["high"]}},
            )
            assert cohort.status_code == 201, cohort.text
            scoring = await client.post(
                "/v1/predictions/jobs", headers=a.headers, json={"customers": {}}
            )
            assert scoring.status_code == 202, scoring.text
            # A's live feed saw its alert: the feed works, so B's silence below means something.
            await wait_for(
                lambda: any(event == "churn_alert" for event, _ in a_feed.received), timeout=30
            )
            yield {
                "client": client,
                "a": a,
                "b": b,
                "a_feed": a_feed,
                "b_feed": b_feed,
                "ids": {
                    "customer_id": customer_id,
                    "risky_customer_id": alert["customer_id"],
                    "channel_id": channel_id,
                    "alert_id": str(alert["id"]),
                    "user_id": user.user_id,
                    "user_email": user.email,
                    "api_key_id": str(key["id"]),
                    "tenant_id": a.tenant_id,
                    "import_id": import_id,
                    "job_id": job_id,
                    "model_version": model_version,
                    "cohort_id": cohort.json()["id"],
                    "prediction_job_id": scoring.json()["job_id"],
                },
                "a_user": user,
                "a_key": key,
            }
        finally:
            await a_feed.close()
            await b_feed.close()


def _labelled_csv(rows: int = 160) -> bytes:
    lines = ["customer_id,tenure,plan,Churn"]
    for i in range(rows):
        plan = ("monthly", "yearly")[i % 2]
        churned = "Yes" if (i % 2 == 0 and i % 5 < 3) or i % 7 == 0 else "No"
        lines.append(f"imp-{i},{i % 60},{plan},{churned}")
    return ("\n".join(lines) + "\n").encode()


async def _poll(client: httpx.AsyncClient, url: str, tenant: Any) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(url, headers=tenant.headers)).json()
        return body if body.get("status") in ("succeeded", "failed") else None

    result: dict[str, Any] = await wait_for(done, timeout=120, interval=0.3)
    return result


async def _train_a_model(client: httpx.AsyncClient, tenant: Any) -> tuple[str, str, str]:
    """Tenant A imports a small labelled file and trains on it: an import, a job, a version."""
    imported = await client.post(
        "/v1/customers/import",
        headers=tenant.headers,
        files={"file": ("a.csv", _labelled_csv(), "text/csv")},
    )
    assert imported.status_code == 202, imported.text
    import_id = imported.json()["import_id"]
    assert (await _poll(client, f"/v1/customers/imports/{import_id}", tenant))["status"] == (
        "succeeded"
    )
    started = await client.post(
        "/v1/models/train", headers=tenant.headers, json={"source": "customers", "label": "Churn"}
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    job = await _poll(client, f"/v1/models/jobs/{job_id}", tenant)
    assert job["status"] == "succeeded", job
    return import_id, job_id, job["model_version"]


#: (method, path template, JSON body) — every endpoint that takes an id of A's.
FOREIGN_ID_REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/customers/{customer_id}", None),
    ("PATCH", "/v1/customers/{customer_id}", {"attributes": {"stolen": True}}),
    ("DELETE", "/v1/customers/{customer_id}", None),
    ("GET", "/v1/customers/{customer_id}/features", None),
    ("GET", "/v1/customers/{customer_id}/scores", None),
    ("GET", "/v1/cohorts/{cohort_id}", None),
    ("GET", "/v1/cohorts/{cohort_id}/stats", None),
    ("PATCH", "/v1/cohorts/{cohort_id}", {"name": "stolen"}),
    ("DELETE", "/v1/cohorts/{cohort_id}", None),
    ("GET", "/v1/customers?segment={cohort_id}", None),
    ("GET", "/v1/customers/export?segment={cohort_id}", None),
    ("GET", "/v1/cohorts/retention?segment={cohort_id}", None),
    ("GET", "/v1/customers/{risky_customer_id}", None),
    ("GET", "/v1/alerts/{alert_id}", None),
    ("GET", "/v1/alerts/{alert_id}/history", None),
    ("GET", "/v1/alerts/{alert_id}/deliveries", None),
    ("POST", "/v1/alerts/{alert_id}/acknowledge", None),
    ("POST", "/v1/alerts/{alert_id}/assign", {"user_id": "me"}),
    ("POST", "/v1/alerts/{alert_id}/assign", {"user_id": "{user_id}"}),
    ("POST", "/v1/alerts/{alert_id}/snooze", {"until": "2099-01-01T00:00:00Z"}),
    ("POST", "/v1/alerts/{alert_id}/resolve", {"outcome": "churned"}),
    ("POST", "/v1/alerts/{alert_id}/reopen", None),
    ("DELETE", "/v1/alert-channels/{channel_id}", None),
    ("POST", "/v1/alert-channels/{channel_id}/test", None),
    ("POST", "/v1/alert-channels/{channel_id}/enable", None),
    ("PATCH", "/v1/users/{user_id}", {"role": "viewer"}),
    ("PATCH", "/v1/users/{user_id}", {"active": False}),
    ("DELETE", "/v1/api-keys/{api_key_id}", None),
    ("POST", "/v1/predictions", {"customer_id": "{customer_id}"}),
    ("POST", "/v1/predictions", {"customer_id": "{risky_customer_id}"}),
    ("GET", "/v1/customers/imports/{import_id}", None),
    ("GET", "/v1/customers/imports/{import_id}/errors", None),
    ("GET", "/v1/models/jobs/{job_id}", None),
    ("GET", "/v1/predictions/jobs/{prediction_job_id}", None),
    ("GET", "/v1/predictions/jobs/{prediction_job_id}/result", None),
    ("GET", "/v1/predictions/jobs/{prediction_job_id}/errors", None),
    ("GET", "/v1/models/{model_version}", None),
    ("GET", "/v1/models/{model_version}/card", None),
    ("POST", "/v1/models/{model_version}/promote", {"alias": "champion"}),
    ("POST", "/v1/models/{model_version}/evaluate", {"cutoff": "2026-01-01", "horizon_days": 90}),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "path", "body"),
    FOREIGN_ID_REQUESTS,
    ids=[f"{m} {p} {b or ''}" for m, p, b in FOREIGN_ID_REQUESTS],
)
async def test_foreign_ids_are_404(world, method, path, body):
    client, ids = world["client"], world["ids"]
    response = await client.request(
        method, _fill(path, ids), headers=world["b"].headers, json=_fill(body, ids)
    )
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    for value in ids.values():
        if value not in _fill(path, ids) and not (body and value in str(_fill(body, ids))):
            assert value not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customers",
        "/v1/customers?sort=-churn_probability",
        # Filters narrow the caller's own customers only: A's ids as search terms match nothing.
        "/v1/customers?q={customer_id}",
        "/v1/customers?q={risky_customer_id}&risk_level=high&risk_level=medium&min_probability=0",
        "/v1/customers/export",
        "/v1/customers/export?format=csv&q={customer_id}",
        "/v1/cohorts",
        "/v1/alerts",
        "/v1/alerts?customer_id={risky_customer_id}",
        "/v1/alerts/outcomes",
        "/v1/alerts/outcomes?format=csv",
        "/v1/alert-channels",
        "/v1/deliveries",
        "/v1/deliveries?status=dead",
        "/v1/alert-rules",
        "/v1/users",
        "/v1/api-keys",
        "/v1/models",
        "/v1/users/me",
    ],
)
async def test_lists_never_include_the_other_tenants_rows(world, path):
    client, ids = world["client"], world["ids"]
    response = await client.get(_fill(path, ids), headers=world["b"].headers)
    assert response.status_code == 200, response.text
    for name, value in ids.items():
        assert value not in response.text, f"B sees A's {name} on {path}"
    assert world["a"].email not in response.text


async def test_retention_curves_count_only_the_callers_tenant(world):
    """A's at-risk customer placed orders, so A has a cohort; B, with no orders, has none."""
    client = world["client"]
    for period in ("month", "week"):
        params = {"period": period}
        a = await client.get("/v1/cohorts/retention", params=params, headers=world["a"].headers)
        b = await client.get("/v1/cohorts/retention", params=params, headers=world["b"].headers)
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert a.json()["cohorts"], a.text
        assert b.json() == {"period": period, "cohorts": []}


async def test_the_dashboard_counts_only_the_callers_tenant(world):
    """A has customers and an open alert; B (none of either) sees zeros on every count."""
    client = world["client"]
    a_summary = await client.get("/v1/dashboard/summary", headers=world["a"].headers)
    b_summary = await client.get("/v1/dashboard/summary", headers=world["b"].headers)
    b_trend = await client.get("/v1/dashboard/trend?days=7", headers=world["b"].headers)
    assert a_summary.status_code == b_summary.status_code == b_trend.status_code == 200
    assert a_summary.json()["customers"] > 0
    assert sum(a_summary.json()["alerts"].values()) > 0
    b = b_summary.json()
    assert b["customers"] == 0
    assert sum(b["score_histogram"]) == 0
    assert b["revenue_at_risk"] == 0
    assert set(b["alerts"].values()) == {0}
    for day in b_trend.json()["items"]:
        assert set(day["risk_levels"].values()) == {0}
        assert set(day["alerts"].values()) == {0}


@pytest.mark.parametrize(
    ("action", "extra"),
    [("acknowledge", {}), ("assign", {"user_id": "me"}), ("resolve", {"outcome": "churned"})],
)
async def test_bulk_actions_never_reach_the_other_tenants_alerts(world, action, extra):
    client, ids = world["client"], world["ids"]
    response = await client.post(
        f"/v1/alerts/bulk/{action}",
        headers=world["b"].headers,
        json={"alert_ids": [ids["alert_id"]], **extra},
    )
    assert response.status_code == 200, response.text
    assert [(i["id"], i["result"], i["status"]) for i in response.json()["items"]] == [
        (ids["alert_id"], "not_found", None)
    ]


async def test_the_other_tenants_resources_are_untouched(world):
    client, ids, a = world["client"], world["ids"], world["a"]
    await asyncio.sleep(0.5)  # let any (wrongly) forwarded write settle
    customer = await client.get(f"/v1/customers/{ids['customer_id']}", headers=a.headers)
    assert customer.status_code == 200
    assert "stolen" not in customer.text
    channels = await client.get("/v1/alert-channels", headers=a.headers)
    assert ids["channel_id"] in channels.text
    users = await client.get("/v1/users", headers=a.headers)
    user = next(u for u in users.json()["items"] if u["id"] == ids["user_id"])
    assert (user["role"], user["active"]) == ("analyst", True)
    keys = await client.get("/v1/api-keys", headers=a.headers)
    assert ids["api_key_id"] in keys.text
    alert = await client.get(f"/v1/alerts/{ids['alert_id']}", headers=a.headers)
    assert alert.status_code == 200
    assert (alert.json()["status"], alert.json()["assignee_id"]) == ("open", None)


async def test_the_other_tenants_api_key_sees_only_its_own_tenant(world):
    client, ids, b = world["client"], world["ids"], world["b"]
    b_customer = await create_customer(client, b)
    key = {"X-API-Key": world["a_key"]["key"]}
    mine = await client.get(f"/v1/customers/{ids['customer_id']}", headers=key)
    assert mine.status_code == 200, mine.text
    theirs = await client.get(f"/v1/customers/{b_customer}", headers=key)
    assert theirs.status_code == 404
    listed = await client.get("/v1/customers", headers=key)
    assert b_customer not in listed.text


async def test_live_feed_never_carries_the_other_tenants_events(world):
    assert world["a_feed"].received, "tenant A's feed got nothing; the check below means nothing"
    await asyncio.sleep(1.0)
    a_customers = {world["ids"]["customer_id"], world["ids"]["risky_customer_id"]}
    for event, data in world["b_feed"].received:
        # B's feed only ever carries B's own customers (B ingested one above, which may even
        # raise B's own alert).
        assert data.get("customer_id") not in a_customers, (event, data)
        assert data.get("tenant_id", world["b"].tenant_id) == world["b"].tenant_id


async def test_alert_changes_reach_their_own_tenants_feed_only(world):
    client, ids, a = world["client"], world["ids"], world["a"]
    alert_id = ids["alert_id"]
    acked = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=a.headers)
    assert acked.status_code == 200, acked.text
    reopened = await client.post(f"/v1/alerts/{alert_id}/reopen", headers=a.headers)
    assert reopened.status_code == 200, reopened.text

    def updates(feed: Any) -> list[str]:
        return [
            data["action"]
            for event, data in feed.received
            if event == "alert_updated" and data.get("alert_id") == alert_id
        ]

    await wait_for(lambda: updates(world["a_feed"]) == ["acknowledged", "reopened"], timeout=30)
    await asyncio.sleep(0.5)
    assert updates(world["b_feed"]) == []
