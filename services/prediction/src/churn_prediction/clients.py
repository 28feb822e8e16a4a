"""Outbound HTTP: the customers service's feature profiles (for scoring by customer id)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from churn_prediction.exceptions import (
    CustomerNotFoundError,
    CustomersUnavailableError,
    TrainingSetError,
)


class CustomerFeaturesClient:
    """``GET /v1/customers/{customer_id}/features`` on the customers service, as the caller."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def features(
        self, customer_id: str, *, authorization: str | None
    ) -> dict[str, float | None]:
        headers = {"authorization": authorization} if authorization else {}
        try:
            response = await self.http.get(
                f"/v1/customers/{quote(customer_id, safe='')}/features", headers=headers
            )
        except httpx.HTTPError as exc:
            raise CustomersUnavailableError(
                "The customers service cannot be reached for features."
            ) from exc
        if response.status_code == 404:
            raise CustomerNotFoundError(f"Customer {customer_id!r} was not found.")
        if response.status_code != 200:
            raise CustomersUnavailableError(
                f"The customers service answered {response.status_code} for features."
            )
        body: Any = response.json()
        features = body.get("features") if isinstance(body, dict) else None
        if not isinstance(features, dict):
            raise CustomersUnavailableError("The customers service sent no feature profile.")
        return {
            str(name): (float(value) if isinstance(value, int | float) else None)
            for name, value in features.items()
        }

    async def aclose(self) -> None:
        await self.http.aclose()


class TrainingSetClient:
    """The customers service's training-set exports, fetched as the caller (token forwarded).

    ``GET /v1/training-sets/customers?label=COLUMN`` → ``{columns, rows, id_column}``;
    ``GET /v1/training-sets/events?cutoff=YYYY-MM-DD&horizon_days=N`` → ``{feature_names,
    customer_ids, features, labels, cutoff, horizon_days, days_since_last_order}``.
    """

    def __init__(self, http: httpx.AsyncClient, *, timeout_seconds: float = 120.0) -> None:
        self.http = http
        self.timeout = timeout_seconds

    async def _get(
        self, path: str, params: dict[str, str], authorization: str | None
    ) -> dict[str, Any]:
        headers = {"authorization": authorization} if authorization else {}
        try:
            response = await self.http.get(
                path, params=params, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise TrainingSetError(
                f"The customers service cannot be reached for {path}: {exc!r}"
            ) from exc
        if response.status_code != 200:
            detail = response.text[:300]
            raise TrainingSetError(
                f"The customers service answered {response.status_code} for {path}: {detail}"
            )
        body: Any = response.json()
        if not isinstance(body, dict):
            raise TrainingSetError(f"The customers service sent no object for {path}.")
        return body

    async def customers(self, label: str, *, authorization: str | None) -> dict[str, Any]:
        body = await self._get("/v1/training-sets/customers", {"label": label}, authorization)
        if not isinstance(body.get("columns"), list) or not isinstance(body.get("rows"), list):
            raise TrainingSetError("The customer training set has no columns/rows.")
        return body

    async def events(
        self, cutoff: str, horizon_days: int, *, authorization: str | None
    ) -> dict[str, Any]:
        body = await self._get(
            "/v1/training-sets/events",
            {"cutoff": cutoff, "horizon_days": str(horizon_days)},
            authorization,
        )
        for key in ("feature_names", "customer_ids", "features", "labels"):
            if not isinstance(body.get(key), list):
                raise TrainingSetError(f"The point-in-time training set has no {key!r}.")
        return body
