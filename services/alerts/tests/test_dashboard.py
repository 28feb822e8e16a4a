"""The alerts' part of the dashboard (internal; the gateway composes ``/v1/dashboard/*``):
alerts per status now and per status at the end of each day, from the alerts' histories."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from churn_alerts.dashboard import daily_statuses
from churn_alerts.main import create_app
from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work

SUMMARY = "/v1/internal/dashboard/alerts/summary"
TREND = "/v1/internal/dashboard/alerts/trend"


@pytest.fixture
def app(make_settings, token_signer):
    return create_app(make_settings(run_workers=False), token_verifier=token_signer.verifier())


@pytest.fixture
async def client(app, in_process):
    async with in_process(app) as client:
        yield client


def _tenant(token_signer: Any, role: str = "owner") -> tuple[str, dict[str, str]]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    token = token_signer.issue(tenant_id, role, subject=f"user-{role}")
    return tenant_id, {"Authorization": f"Bearer {token}"}


async def _raise(app, tenant_id: str, customers: list[str]) -> dict[str, str]:
    async with unit_of_work(app.state.session_factory) as session:
        await AlertService(session).raise_alerts(
            [
                TenantScore(
                    tenant_id,
                    ChurnScoreComputedV1(
                        customer_id=c,
                        churn_probability=0.9,
                        risk_level="high",
                        model_version="m1",
                        scored_at=datetime.now(UTC),
                    ),
                )
                for c in customers
            ]
        )
    async with app.state.session_factory() as session:
        rows = await session.exec(
            sa.text("SELECT customer_id, id FROM alerts WHERE tenant_id = :t").bindparams(
                t=tenant_id
            )
        )
        return dict(rows.all())


async def _backdate_history(app, tenant_id: str, alert_id: str, when: datetime) -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await session.exec(
            sa.text(
                "UPDATE alert_history SET created_at = :when WHERE tenant_id = :t AND alert_id = :a"
            ).bindparams(when=when.replace(tzinfo=None), t=tenant_id, a=alert_id)
        )


class TestDailyStatuses:
    def test_changes_add_up_per_day_and_earlier_ones_form_the_start(self):
        d = date(2026, 11, 28)
        changes = [
            (d - timedelta(days=10), None, "open", 5),
            (d - timedelta(days=9), "open", "resolved", 2),
            (d + timedelta(days=1), "open", "acknowledged", 1),
            (d + timedelta(days=1), "acknowledged", "acknowledged", 1),
            (d + timedelta(days=2), None, "open", 2),
        ]
        days = daily_statuses(changes, d, d + timedelta(days=2))
        assert [x.date for x in days] == [d, d + timedelta(days=1), d + timedelta(days=2)]
        assert [x.alerts.model_dump() for x in days] == [
            {"open": 3, "acknowledged": 0, "snoozed": 0, "resolved": 2},
            {"open": 2, "acknowledged": 1, "snoozed": 0, "resolved": 2},
            {"open": 4, "acknowledged": 1, "snoozed": 0, "resolved": 2},
        ]


class TestDashboard:
    async def test_summary_counts_alerts_per_status(self, app, client, token_signer):
        tenant_id, headers = _tenant(token_signer)
        alerts = await _raise(app, tenant_id, ["c1", "c2", "c3"])
        assert (
            await client.post(f"/v1/alerts/{alerts['c1']}/acknowledge", headers=headers)
        ).status_code == 200
        resolved = await client.post(
            f"/v1/alerts/{alerts['c2']}/resolve", headers=headers, json={"outcome": "retained"}
        )
        assert resolved.status_code == 200, resolved.text
        response = await client.get(SUMMARY, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "alerts": {"open": 1, "acknowledged": 1, "snoozed": 0, "resolved": 1}
        }

    async def test_trend_replays_the_histories_day_by_day(self, app, client, token_signer):
        tenant_id, headers = _tenant(token_signer)
        alerts = await _raise(app, tenant_id, ["c1", "c2"])
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        for alert_id in alerts.values():
            await _backdate_history(app, tenant_id, alert_id, today - timedelta(days=3))
        acked = await client.post(f"/v1/alerts/{alerts['c1']}/acknowledge", headers=headers)
        assert acked.status_code == 200, acked.text

        response = await client.get(TREND, headers=headers, params={"days": 5})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [i["date"] for i in items] == [
            (today - timedelta(days=k)).date().isoformat() for k in (4, 3, 2, 1, 0)
        ]
        assert [(i["alerts"]["open"], i["alerts"]["acknowledged"]) for i in items] == [
            (0, 0),
            (2, 0),
            (2, 0),
            (2, 0),
            (1, 1),
        ]
        # An earlier last day leaves out what happened after it.
        earlier = await client.get(
            TREND,
            headers=headers,
            params={"days": 1, "last_day": (today - timedelta(days=1)).date().isoformat()},
        )
        assert earlier.json()["items"][0]["alerts"]["open"] == 2
        assert earlier.json()["items"][0]["alerts"]["acknowledged"] == 0

    async def test_other_tenants_and_viewers(self, app, client, token_signer):
        tenant_id, _ = _tenant(token_signer)
        await _raise(app, tenant_id, ["c1"])
        _, other = _tenant(token_signer, "viewer")
        summary = await client.get(SUMMARY, headers=other)
        trend = await client.get(TREND, headers=other, params={"days": 1})
        assert summary.status_code == 200, summary.text
        assert summary.json()["alerts"]["open"] == 0
        assert trend.json()["items"][0]["alerts"]["open"] == 0

    @pytest.mark.parametrize("days", ["0", "366", "x"])
    async def test_days_is_validated(self, client, token_signer, days):
        _, headers = _tenant(token_signer)
        response = await client.get(TREND, headers=headers, params={"days": days})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_needs_a_token(self, client):
        assert (await client.get(SUMMARY)).status_code == 401
