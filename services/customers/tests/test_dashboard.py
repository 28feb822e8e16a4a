"""The customers' part of the dashboard (internal; the gateway composes ``/v1/dashboard/*``)
and the daily risk trends of the dashboard and of cohorts, from the stored risk level changes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.dashboard import daily_levels
from churn_customers.repository import DashboardRepository
from churn_customers.schemas import CustomerFilter
from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work

SUMMARY = "/v1/internal/dashboard/customers/summary"
TREND = "/v1/internal/dashboard/customers/trend"


def _level(p: float) -> str:
    return "high" if p >= 0.7 else "medium" if p >= 0.4 else "low"


async def _score(app: FastAPI, tenant_id: str, scores: dict[str, float], at: datetime) -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(
            [
                TenantScore(
                    tenant_id,
                    ChurnScoreComputedV1(
                        customer_id=cid,
                        churn_probability=p,
                        risk_level=_level(p),
                        model_version="m-1",
                        scored_at=at,
                    ),
                )
                for cid, p in scores.items()
            ]
        )


async def seed(app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]) -> datetime:
    """c0..c3 ordered 100 * (i + 1) three days ago, c4 never scored, all created 20 days ago;
    scored 10 days ago (low, medium, high, high), then today c0 rose to high and c1 fell to low.
    Returns the start of today (UTC)."""
    now = datetime.now(UTC)
    today = datetime.combine(now.date(), time(0), tzinfo=UTC)
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "customer_id": f"c{i}",
            "type": "order_placed",
            "occurred_at": (now - timedelta(days=3)).isoformat(),
            "properties": {"amount": 100.0 * (i + 1)},
        }
        for i in range(4)
    ]
    accepted = await client.post("/v1/events", json={"events": events}, headers=tenant["headers"])
    assert accepted.status_code == 202, accepted.text
    created = await client.post(
        "/v1/customers", json={"customer_id": "c4"}, headers=tenant["headers"]
    )
    assert created.status_code == 201, created.text
    async with unit_of_work(app.state.session_factory) as session:
        await session.exec(
            sa.text("UPDATE customers SET created_at = :at WHERE tenant_id = :t").bindparams(
                at=(today - timedelta(days=20)).replace(tzinfo=None), t=tenant["id"]
            )
        )
    ten_days_ago = today - timedelta(days=10) + timedelta(hours=12)
    await _score(app, tenant["id"], {"c0": 0.1, "c1": 0.5, "c2": 0.8, "c3": 0.9}, ten_days_ago)
    await _score(app, tenant["id"], {"c0": 0.75, "c1": 0.2}, now)
    # Older than c0's latest score: ignored, as the customer's latest score ignores it.
    await _score(app, tenant["id"], {"c0": 0.1}, now - timedelta(hours=2))
    return today


def levels(high: int = 0, medium: int = 0, low: int = 0, unscored: int = 0) -> dict[str, int]:
    return {"high": high, "medium": medium, "low": low, "unscored": unscored}


class TestDailyLevels:
    def test_changes_and_creations_add_up_to_each_days_end(self):
        d = date(2026, 11, 20)
        changes = [
            (d - timedelta(days=5), None, "low", 2),
            (d - timedelta(days=5), None, "high", 1),
            (d, "low", "medium", 1),
            (d + timedelta(days=1), "medium", "high", 1),
        ]
        created = [(d - timedelta(days=6), 4), (d + timedelta(days=1), 1)]
        days = daily_levels(changes, created, {d + timedelta(days=1): 1}, d, d + timedelta(days=1))
        assert [(x.risk_levels.model_dump(), x.moved_up) for x in days] == [
            (levels(high=1, medium=1, low=1, unscored=1), 0),
            (levels(high=2, low=1, unscored=2), 1),
        ]


class TestSummary:
    async def test_counts_histogram_rises_and_revenue_at_risk(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        await seed(app, client, tenant)
        response = await client.get(SUMMARY, headers=tenant["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["customers"] == 5
        assert body["risk_levels"] == levels(high=3, low=1, unscored=1)
        expected = [0] * 20
        for p in (0.75, 0.2, 0.8, 0.9):
            expected[int(p * 20)] += 1
        assert body["score_histogram"] == expected
        assert body["moved_up_last_7_days"] == 1
        # Σ p * spend_last_90d: 0.75 * 100 + 0.2 * 200 + 0.8 * 300 + 0.9 * 400
        assert body["revenue_at_risk"] == pytest.approx(715.0)

    async def test_a_probability_of_one_is_in_the_last_bin(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        for cid in ("x", "y"):
            created = await client.post(
                "/v1/customers", json={"customer_id": cid}, headers=tenant["headers"]
            )
            assert created.status_code == 201
        await _score(app, tenant["id"], {"x": 1.0, "y": 0.0}, datetime.now(UTC))
        body = (await client.get(SUMMARY, headers=tenant["headers"])).json()
        assert body["score_histogram"][19] == 1
        assert body["score_histogram"][0] == 1
        assert body["moved_up_last_7_days"] == 0


class TestTrend:
    async def test_each_days_levels_from_the_stored_changes(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        today = await seed(app, client, tenant)
        response = await client.get(TREND, headers=tenant["headers"], params={"days": 12})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert [i["date"] for i in items] == [
            (today - timedelta(days=k)).date().isoformat() for k in range(11, -1, -1)
        ]
        before, scored, now = items[0], items[1:11], items[11]
        assert before["risk_levels"] == levels(unscored=5)
        assert all(i["risk_levels"] == levels(high=2, medium=1, low=1, unscored=1) for i in scored)
        assert now["risk_levels"] == levels(high=3, low=1, unscored=1)
        assert [i["moved_up"] for i in items] == [0] * 11 + [1]

    async def test_a_deleted_customer_leaves_every_day(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        admin = tenant["headers"]
        await seed(app, client, tenant)
        # The past days are rolled up (stored) by this first trend: the deletion drops them.
        before = (await client.get(TREND, headers=admin, params={"days": 3})).json()["items"]
        assert before[0]["risk_levels"] == levels(high=2, medium=1, low=1, unscored=1)
        assert (await client.delete("/v1/customers/c0", headers=admin)).status_code == 204
        items = (await client.get(TREND, headers=admin, params={"days": 3})).json()["items"]
        assert items[0]["risk_levels"] == levels(high=2, medium=1, unscored=1)
        assert items[-1]["risk_levels"] == levels(high=2, low=1, unscored=1)
        assert items[-1]["moved_up"] == 0

    async def test_a_late_score_changes_the_stored_past_days(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        today = await seed(app, client, tenant)
        first = await client.get(TREND, headers=tenant["headers"], params={"days": 12})
        again = await client.get(TREND, headers=tenant["headers"], params={"days": 12})
        assert first.json() == again.json()
        # c3 (high since 10 days ago) turns out to have been low 5 days ago: a score that
        # arrives late, for a day already rolled up.
        await _score(app, tenant["id"], {"c3": 0.1}, today - timedelta(days=5, hours=-1))
        items = (await client.get(TREND, headers=tenant["headers"], params={"days": 12})).json()[
            "items"
        ]
        assert items[5]["risk_levels"] == levels(high=2, medium=1, low=1, unscored=1)
        assert items[6]["risk_levels"] == levels(high=1, medium=1, low=2, unscored=1)
        assert items[11]["risk_levels"] == levels(high=2, low=2, unscored=1)
        # The same days added up from the changes, without the rollup.
        cohort = await client.post(
            "/v1/cohorts", json={"name": "Everyone", "filter": {}}, headers=tenant["headers"]
        )
        stats = await client.get(
            f"/v1/cohorts/{cohort.json()['id']}/stats",
            params={"days": 12},
            headers=tenant["headers"],
        )
        assert stats.json()["trend"] == items

    async def test_cohort_stats_trend_follows_todays_members(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        await seed(app, client, tenant)
        created = await client.post(
            "/v1/cohorts",
            json={"name": "Now high", "filter": {"min_probability": 0.7}},
            headers=tenant["headers"],
        )
        assert created.status_code == 201, created.text
        stats = await client.get(
            f"/v1/cohorts/{created.json()['id']}/stats",
            params={"days": 12},
            headers=tenant["headers"],
        )
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert body["size"] == 3
        trend = body["trend"]
        assert len(trend) == 12
        assert trend[0]["risk_levels"] == levels(unscored=3)
        assert trend[5]["risk_levels"] == levels(high=2, low=1)
        assert trend[-1]["risk_levels"] == levels(high=3)
        assert trend[-1]["moved_up"] == 1
        default = await client.get(
            f"/v1/cohorts/{created.json()['id']}/stats", headers=tenant["headers"]
        )
        assert len(default.json()["trend"]) == 30


class TestPlans:
    async def test_a_cohorts_changes_are_read_member_by_member_from_an_index_alone(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        engine: AsyncEngine,
        factory: async_sessionmaker[AsyncSession],
    ) -> None:
        """On MariaDB a cohort's trend reads its members first, then each one's changes with
        day and levels from their index, never the table: read the other way round, it took
        about a second at 100k customers (``bench/dashboard.py``)."""
        today = await seed(app, client, tenant)
        statements: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            statements.append((statement, parameters))

        where = CustomerFilter(risk_level=["high"])
        sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            async with factory() as session:
                repository = DashboardRepository(session)
                changes = await repository.changes_by_day(tenant["id"], today.date(), where)
        finally:
            sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)
        # Now high: c0, c2, c3; their first scores and c0's rise today.
        assert sum(n for *_, n in changes) == 4
        statement, parameters = statements[-1]
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                plan = [
                    row[-1]
                    for row in await conn.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement, parameters
                    )
                ]
                # SQLite picks the order from its statistics; either way, no table row is read.
                assert len(plan) == 2, plan
                assert all("USING COVERING INDEX" in step for step in plan), plan
            else:
                rows = (
                    (await conn.exec_driver_sql("EXPLAIN " + statement, parameters))
                    .mappings()
                    .all()
                )
                assert [row["table"] for row in rows] == ["customers", "customer_risk_changes"]
                assert rows[1]["key"] == "ix_customer_risk_changes_customer_levels", rows
                assert "Using index" in rows[1]["Extra"], rows


class TestAccess:
    async def test_other_tenants_see_only_their_own(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        other_tenant: dict[str, Any],
    ) -> None:
        await seed(app, client, tenant)
        summary = (await client.get(SUMMARY, headers=other_tenant["headers"])).json()
        assert summary["customers"] == 0
        assert summary["revenue_at_risk"] == 0
        assert summary["moved_up_last_7_days"] == 0
        trend = await client.get(TREND, headers=other_tenant["headers"], params={"days": 12})
        assert all(i["risk_levels"] == levels() for i in trend.json()["items"])

    async def test_viewers_read_and_strangers_do_not(
        self, client: httpx.AsyncClient, token_signer: Any
    ) -> None:
        viewer = {"Authorization": f"Bearer {token_signer.issue('t-viewer', 'viewer')}"}
        assert (await client.get(SUMMARY, headers=viewer)).status_code == 200
        assert (await client.get(TREND, headers=viewer)).status_code == 200
        assert (await client.get(SUMMARY)).status_code == 401

    @pytest.mark.parametrize("days", ["0", "366", "many"])
    async def test_days_is_validated(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], days: str
    ) -> None:
        response = await client.get(TREND, headers=tenant["headers"], params={"days": days})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
