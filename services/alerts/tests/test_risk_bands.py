"""Risk bands with hysteresis on a real database: the band is stored per (tenant, customer)
and carried from batch to batch, so ``high_risk`` is raised on entering the high band only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.models import Alert, RiskBand
from churn_alerts.rules import TenantScore
from churn_alerts.schemas import AlertRulesUpdate
from churn_alerts.service import AlertService
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work

Factory = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _tenant(factory: Factory, exit_threshold: float | None = 0.5) -> str:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    rules = AlertRulesUpdate(
        high_risk_threshold=0.7,
        risk_increase_threshold=0.9,
        cooldown_minutes=0,
        high_exit_threshold=exit_threshold,
    )
    async with unit_of_work(factory) as session:
        await AlertService(session).update_rules(tenant_id, rules)
    return tenant_id


async def _score(factory: Factory, tenant_id: str, probability: float, minute: int) -> int:
    score = ChurnScoreComputedV1(
        customer_id="c-1",
        churn_probability=probability,
        risk_level="high" if probability >= 0.7 else "medium",
        model_version="m-1",
        scored_at=NOW,
    )
    async with unit_of_work(factory) as session:
        outcome = await AlertService(session).raise_alerts(
            [TenantScore(tenant_id, score)], now=NOW + timedelta(minutes=minute)
        )
    return outcome.alerts


async def _high_risk_alerts(factory: Factory, tenant_id: str) -> list[float]:
    async with factory() as session:
        rows = await session.exec(
            select(Alert).where(Alert.tenant_id == tenant_id, Alert.kind == "high_risk")
        )
        return sorted(a.churn_probability for a in rows.all())


async def test_a_customer_oscillating_around_the_threshold_raises_one_alert(session_factory):
    tenant_id = await _tenant(session_factory)

    for minute, p in enumerate([0.72, 0.68, 0.71, 0.69, 0.74, 0.66, 0.7]):
        await _score(session_factory, tenant_id, p, minute)

    assert await _high_risk_alerts(session_factory, tenant_id) == [0.72]


async def test_dropping_below_the_exit_threshold_and_coming_back_raises_a_second(
    session_factory,
):
    tenant_id = await _tenant(session_factory)

    for minute, p in enumerate([0.72, 0.68, 0.45, 0.6, 0.75, 0.69]):
        await _score(session_factory, tenant_id, p, minute)

    assert await _high_risk_alerts(session_factory, tenant_id) == [0.72, 0.75]
    async with session_factory() as session:
        band = await session.get(RiskBand, (tenant_id, "c-1"))
    assert band is not None
    assert band.in_high_band
    assert band.churn_probability == 0.75


async def test_without_an_exit_threshold_the_cooldown_alone_decides(session_factory):
    tenant_id = await _tenant(session_factory, exit_threshold=None)

    for minute, p in enumerate([0.72, 0.68, 0.71]):
        await _score(session_factory, tenant_id, p, minute)

    assert await _high_risk_alerts(session_factory, tenant_id) == [0.71, 0.72]
    async with session_factory() as session:
        assert await session.get(RiskBand, (tenant_id, "c-1")) is None


async def test_turning_hysteresis_off_forgets_the_bands(session_factory):
    tenant_id = await _tenant(session_factory)
    await _score(session_factory, tenant_id, 0.8, 0)

    await _tenant_rules_off(session_factory, tenant_id)

    async with session_factory() as session:
        assert await session.get(RiskBand, (tenant_id, "c-1")) is None


async def _tenant_rules_off(factory: Factory, tenant_id: str) -> None:
    rules = AlertRulesUpdate(
        high_risk_threshold=0.7, risk_increase_threshold=0.9, cooldown_minutes=0
    )
    async with unit_of_work(factory) as session:
        await AlertService(session).update_rules(tenant_id, rules)
