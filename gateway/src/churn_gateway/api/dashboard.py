"""The gateway's own ``/v1`` operations: the composed dashboard (:mod:`churn_gateway.dashboard`).
Included before the proxy's catch-all route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from churn_gateway.dashboard import DashboardClient, UpstreamRefusal
from churn_gateway.dependencies import EdgeCallerDep, HttpClientDep, SettingsDep
from churn_gateway.proxy import upstream_request_headers
from churn_gateway.schemas import DashboardSummary, DashboardTrend
from churn_shared.errors import PROBLEM_RESPONSES

dashboard_router = APIRouter(
    prefix="/v1/dashboard", tags=["dashboard"], responses=PROBLEM_RESPONSES
)


def _client(
    request: Request, caller: EdgeCallerDep, client: HttpClientDep, settings: SettingsDep
) -> DashboardClient:
    state = request.state
    peer = request.client.host if request.client else None
    headers = upstream_request_headers(
        request,
        request_id=state.request_id,
        forwarded_for=getattr(state, "forwarded_for", [peer] if peer else []),
        authorization=caller.upstream_authorization,
    )
    return DashboardClient(client, settings.upstream_urls(), headers)


def _relay(refusal: UpstreamRefusal) -> Response:
    upstream = refusal.response
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/problem+json"),
    )


@dashboard_router.get("/summary", response_model=DashboardSummary, operation_id="dashboard_summary")
async def dashboard_summary(
    request: Request, caller: EdgeCallerDep, client: HttpClientDep, settings: SettingsDep
) -> DashboardSummary | Response:
    """The tenant's dashboard now, computed from stored data (not sampled):

    * `customers` and `risk_levels`: the customers per latest risk level (`unscored`: no score
      yet);
    * `score_histogram`: 20 counts, bin *i* holding the scored customers with
      *i*/20 ≤ churn probability < (*i*+1)/20 (1.0 in the last bin);
    * `moved_up_last_7_days`: customers whose risk level rose (low → medium, low → high,
      medium → high) at least once in the last 7 days; a first score is not a rise;
    * `revenue_at_risk` = **Σ over scored customers of `churn_probability` * `spend_last_90d`**,
      where `spend_last_90d` is the sum of the customer's `order_placed` amounts in the last
      90 days (their feature profile; 0 without orders);
    * `alerts`: the tenant's alerts per status.

    Composed by the gateway from the customers and alerts services, asked at the same time.
    Viewers and above (API keys: `read`)."""
    try:
        return await _client(request, caller, client, settings).summary()
    except UpstreamRefusal as refusal:
        return _relay(refusal)


@dashboard_router.get("/trend", response_model=DashboardTrend, operation_id="dashboard_trend")
async def dashboard_trend(
    request: Request,
    caller: EdgeCallerDep,
    client: HttpClientDep,
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1, le=365, description="How many days, today included")] = 90,
) -> DashboardTrend | Response:
    """The dashboard's counts per UTC day for the last `days` days (oldest first, today last):
    customers per risk level and alerts per status at the end of each day (today: now), and
    `moved_up`, the customers whose risk level rose during that day.

    Computed from stored data, not sampled: every change of a customer's latest risk level
    and every alert status change is kept, and a day's counts add them up to the day's end.
    Customers and alerts deleted since are not counted on past days either. Viewers and above
    (API keys: `read`)."""
    try:
        return await _client(request, caller, client, settings).trend(days)
    except UpstreamRefusal as refusal:
        return _relay(refusal)
