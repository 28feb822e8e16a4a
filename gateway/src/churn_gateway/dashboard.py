"""Composed dashboard endpoints: ``/v1/dashboard/summary`` and ``/v1/dashboard/trend`` are
built from the customers service's and the alerts service's internal parts
(``/v1/internal/dashboard/{customers,alerts}/…``), asked concurrently with the caller's own
credentials, so each service checks the caller's tenant and role as for any request.

An upstream's refusal (4xx problem: 401, 403, 422 …) is passed on as it came; an upstream
that cannot be reached, times out, fails (5xx) or answers nonsense makes the whole answer a
502/503/504, never a half-filled dashboard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from pydantic import ValidationError

from churn_gateway.exceptions import BadGatewayError, UpstreamTimeoutError, UpstreamUnavailableError
from churn_gateway.schemas import DashboardSummary, DashboardTrend
from churn_shared.logging import get_logger

_log = get_logger(__name__)

CUSTOMERS_PART = "/v1/internal/dashboard/customers"
ALERTS_PART = "/v1/internal/dashboard/alerts"


class UpstreamRefusal(Exception):
    """An upstream answered the composed request with a client error: relay it as it is."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} from {response.request.url.path}")
        self.response = response


class DashboardClient:
    """Asks the services for their parts on behalf of one caller."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        upstreams: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> None:
        self._client = client
        self._upstreams = upstreams
        self._headers = dict(headers)

    async def _part(self, upstream: str, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        url = self._upstreams[upstream] + path
        try:
            response = await self._client.get(url, params=dict(params), headers=self._headers)
        except httpx.TimeoutException as exc:
            _log.warning("upstream_timeout", upstream=upstream, path=path)
            raise UpstreamTimeoutError(f"The {upstream} service did not answer in time.") from exc
        except httpx.ConnectError as exc:
            _log.warning("upstream_unreachable", upstream=upstream, error=str(exc))
            raise UpstreamUnavailableError(f"The {upstream} service is not reachable.") from exc
        except httpx.HTTPError as exc:
            _log.warning("upstream_failed", upstream=upstream, error=repr(exc))
            raise BadGatewayError(f"The {upstream} service failed to answer.") from exc
        if 400 <= response.status_code < 500:
            raise UpstreamRefusal(response)
        if response.status_code != 200:
            _log.warning("upstream_failed", upstream=upstream, status=response.status_code)
            raise BadGatewayError(f"The {upstream} service failed to answer.")
        try:
            body = response.json()
        except ValueError as exc:
            raise BadGatewayError(f"The {upstream} service sent no JSON.") from exc
        if not isinstance(body, dict):
            raise BadGatewayError(f"The {upstream} service sent an unexpected answer.")
        return body

    async def _both(
        self, customers_path: str, alerts_path: str, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        results = await asyncio.gather(
            self._part("customers", customers_path, params),
            self._part("alerts", alerts_path, params),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        customers, alerts = results
        assert isinstance(customers, dict)
        assert isinstance(alerts, dict)
        return customers, alerts

    async def summary(self) -> DashboardSummary:
        customers, alerts = await self._both(
            f"{CUSTOMERS_PART}/summary", f"{ALERTS_PART}/summary", {}
        )
        try:
            return DashboardSummary.model_validate({**customers, "alerts": alerts.get("alerts")})
        except ValidationError as exc:
            raise BadGatewayError("The services sent an unexpected dashboard part.") from exc

    async def trend(self, days: int) -> DashboardTrend:
        """The last ``days`` UTC days, today last; both services are asked for the same days."""
        last_day = datetime.now(UTC).date()
        params = {"days": days, "last_day": last_day.isoformat()}
        customers, alerts = await self._both(
            f"{CUSTOMERS_PART}/trend", f"{ALERTS_PART}/trend", params
        )
        try:
            return compose_trend(days, last_day, customers, alerts)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            raise BadGatewayError("The services sent an unexpected dashboard part.") from exc


def compose_trend(
    days: int, last_day: date, customers: Mapping[str, Any], alerts: Mapping[str, Any]
) -> DashboardTrend:
    """One item per day of both parts, matched by date (each part must hold every day)."""
    first_day = last_day - timedelta(days=days - 1)
    risk = {date.fromisoformat(item["date"]): item for item in customers["items"]}
    alert_days = {date.fromisoformat(item["date"]): item for item in alerts["items"]}
    items = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        items.append(
            {
                "date": day,
                "risk_levels": risk[day]["risk_levels"],
                "moved_up": risk[day]["moved_up"],
                "alerts": alert_days[day]["alerts"],
            }
        )
    return DashboardTrend.model_validate({"days": days, "items": items})
