"""The composed dashboard (``/v1/dashboard/*``): both services' internal parts asked at once
with the caller's credentials, merged; refusals passed on, failures a 5xx; in the merged
OpenAPI document. The services' parts are tested in their own suites, the whole stack in
tests/security and tests/e2e."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from churn_cli.spec import build_openapi
from gateway.tests.conftest import UpstreamRouter, echo_app

LEVELS = {"high": 2, "medium": 1, "low": 3, "unscored": 1}
STATUSES = {"open": 4, "acknowledged": 1, "snoozed": 0, "resolved": 7}


def _days(days: int, last_day: str) -> list[str]:
    last = datetime.fromisoformat(last_day).date()
    return [(last - timedelta(days=k)).isoformat() for k in range(days - 1, -1, -1)]


class Parts:
    """Fake customers and alerts services answering their dashboard parts; they record the
    authorization they were asked with and can be told to refuse or to be slow."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str]] = []
        self.refuse: dict[str, int] = {}
        self.in_flight = 0
        self.both_at_once = False

    async def _enter(self, name: str, request: Request) -> JSONResponse | None:
        self.seen.append((name, request.headers.get("authorization"), request.url.path))
        self.in_flight += 1
        await asyncio.sleep(0.05)
        self.both_at_once = self.both_at_once or self.in_flight == 2
        self.in_flight -= 1
        status = self.refuse.get(name)
        if status is not None:
            return JSONResponse(
                {"title": "Forbidden", "status": status, "detail": f"{name} says no"},
                status_code=status,
                media_type="application/problem+json",
            )
        return None

    def customers(self) -> FastAPI:
        app = FastAPI()
        prefix = "/v1/internal/dashboard/customers"

        @app.get(f"{prefix}/summary")
        async def summary(request: Request) -> Any:
            return await self._enter("customers", request) or {
                "customers": 7,
                "risk_levels": LEVELS,
                "score_histogram": [1] * 6 + [0] * 14,
                "moved_up_last_7_days": 2,
                "revenue_at_risk": 123.5,
            }

        @app.get(f"{prefix}/trend")
        async def trend(request: Request, days: int = Query(), last_day: str = Query()) -> Any:
            return await self._enter("customers", request) or {
                "items": [
                    {"date": d, "risk_levels": LEVELS, "moved_up": i}
                    for i, d in enumerate(_days(days, last_day))
                ]
            }

        return app

    def alerts(self) -> FastAPI:
        app = FastAPI()
        prefix = "/v1/internal/dashboard/alerts"

        @app.get(f"{prefix}/summary")
        async def summary(request: Request) -> Any:
            return await self._enter("alerts", request) or {"alerts": STATUSES}

        @app.get(f"{prefix}/trend")
        async def trend(request: Request, days: int = Query(), last_day: str = Query()) -> Any:
            return await self._enter("alerts", request) or {
                "items": [{"date": d, "alerts": STATUSES} for d in _days(days, last_day)]
            }

        return app


@pytest.fixture
def parts() -> Parts:
    return Parts()


@pytest.fixture
def dashboard_upstreams(token_signer: Any, parts: Parts) -> UpstreamRouter:
    jwks = token_signer.jwks()
    return UpstreamRouter(
        {
            "auth": echo_app("auth", jwks),
            "customers": parts.customers(),
            "prediction": echo_app("prediction", jwks),
            "alerts": parts.alerts(),
        }
    )


async def test_summary_composes_both_parts_asked_at_once(
    gateway, dashboard_upstreams, parts, bearer
):
    headers = bearer("tenant-a", role="viewer")
    async with gateway(dashboard_upstreams) as client:
        response = await client.get("/v1/dashboard/summary", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "customers": 7,
        "risk_levels": LEVELS,
        "score_histogram": [1] * 6 + [0] * 14,
        "moved_up_last_7_days": 2,
        "revenue_at_risk": 123.5,
        "alerts": STATUSES,
    }
    assert sorted(name for name, _, _ in parts.seen) == ["alerts", "customers"]
    # With the caller's own token: each service checks the tenant and the role itself.
    assert {auth for _, auth, _ in parts.seen} == {headers["Authorization"]}
    assert parts.both_at_once


async def test_trend_merges_the_days(gateway, dashboard_upstreams, bearer):
    async with gateway(dashboard_upstreams) as client:
        response = await client.get("/v1/dashboard/trend", params={"days": 3}, headers=bearer())
    assert response.status_code == 200, response.text
    body = response.json()
    today = datetime.now(UTC).date()
    assert body["days"] == 3
    assert [i["date"] for i in body["items"]] == [
        (today - timedelta(days=k)).isoformat() for k in (2, 1, 0)
    ]
    assert body["items"][2] == {
        "date": today.isoformat(),
        "risk_levels": LEVELS,
        "moved_up": 2,
        "alerts": STATUSES,
    }
    async with gateway(dashboard_upstreams) as client:
        default = await client.get("/v1/dashboard/trend", headers=bearer())
    assert len(default.json()["items"]) == 90


@pytest.mark.parametrize("days", ["0", "366", "ninety"])
async def test_days_is_validated_at_the_edge(gateway, dashboard_upstreams, parts, bearer, days):
    async with gateway(dashboard_upstreams) as client:
        response = await client.get("/v1/dashboard/trend", params={"days": days}, headers=bearer())
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert parts.seen == []


@pytest.mark.parametrize("method", ["HEAD", "PUT", "POST", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/v1/dashboard/summary", "/v1/dashboard/trend"])
async def test_another_method_is_405_with_allow_not_a_404(
    gateway, dashboard_upstreams, parts, bearer, method, path
):
    async with gateway(dashboard_upstreams) as client:
        response = await client.request(method, path, headers=bearer())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert parts.seen == []


async def test_needs_a_token(gateway, dashboard_upstreams, parts):
    async with gateway(dashboard_upstreams) as client:
        response = await client.get("/v1/dashboard/summary")
    assert response.status_code == 401
    assert parts.seen == []


async def test_a_services_refusal_is_passed_on(gateway, dashboard_upstreams, parts, bearer):
    parts.refuse["alerts"] = 403
    async with gateway(dashboard_upstreams) as client:
        response = await client.get("/v1/dashboard/summary", headers=bearer())
    assert response.status_code == 403
    assert response.json()["detail"] == "alerts says no"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_unreachable_service_is_503_not_half_a_dashboard(
    gateway, dashboard_upstreams, bearer
):
    dashboard_upstreams.down.add("customers")
    async with gateway(dashboard_upstreams) as client:
        response = await client.get("/v1/dashboard/trend", headers=bearer())
    assert response.status_code == 503
    assert "customers" in response.json()["detail"]


async def test_the_internal_parts_are_not_reachable_through_the_gateway(
    gateway, dashboard_upstreams, parts, bearer
):
    async with gateway(dashboard_upstreams) as client:
        for path in (
            "/v1/internal/dashboard/customers/summary",
            "/v1/internal/dashboard/alerts/trend",
        ):
            response = await client.get(path, headers=bearer())
            assert response.status_code == 404
    assert parts.seen == []


async def test_served_merged_document_has_the_composed_operations(gateway, upstreams, bearer):
    async with gateway(upstreams) as client:
        document = (await client.get("/openapi.json")).json()
    summary = document["paths"]["/v1/dashboard/summary"]["get"]
    assert summary["operationId"] == "dashboard_summary"
    assert {"BearerAuth": []} in summary["security"]
    assert "spend_last_90d" in summary["description"]


def test_offline_merged_document_documents_them_with_examples_and_hides_internal_parts():
    document = build_openapi()
    paths = document["paths"]
    assert not [p for p in paths if p.startswith("/v1/internal")]
    trend = paths["/v1/dashboard/trend"]["get"]
    days = next(p for p in trend["parameters"] if p["name"] == "days")
    assert (days["schema"]["minimum"], days["schema"]["maximum"]) == (1, 365)
    schemas = document["components"]["schemas"]
    assert schemas["DashboardSummary"]["examples"]
    assert schemas["DashboardTrend"]["examples"]
    assert (
        "`churn_probability` * `spend_last_90d`"
        in paths["/v1/dashboard/summary"]["get"]["description"]
    )
    cohort_stats = schemas["CohortStats"]
    assert "trend" in cohort_stats["properties"]
