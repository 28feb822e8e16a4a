"""Outbound HTTP: the customers service's feature profiles (for scoring by customer id),
training sets and scoring inputs of a filter (prediction jobs), parsed into their contracts
(:mod:`churn_shared.contracts.http`)."""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from churn_prediction.exceptions import (
    CustomerFilterRefusedError,
    CustomerNotFoundError,
    CustomersUnavailableError,
    TrainingSetError,
    TrainingSetRefusedError,
)
from churn_shared.contracts import CustomerFeaturesRead, CustomerTrainingSet, EventTrainingSet
from churn_shared.contracts.http import ScoringInputsPage, ScoringInputsQuery

ContractT = TypeVar("ContractT", bound=BaseModel)


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
        try:
            profile = CustomerFeaturesRead.model_validate_json(response.content)
        except ValidationError as exc:
            raise CustomersUnavailableError(
                "The customers service sent no feature profile."
            ) from exc
        return dict(profile.features)

    async def aclose(self) -> None:
        await self.http.aclose()


#: Statuses with which the customers service refuses a training set as the caller's mistake.
_REFUSALS = (400, 422)
#: Problem members that are the customers service's own business (never passed on).
_PROBLEM_FRAME = {
    "type",
    "title",
    "status",
    "detail",
    "instance",
    "request_id",
    "errors",
    "headers",
}


def _refusal(response: httpx.Response) -> TrainingSetRefusedError:
    """The customers service's refusal as the caller should see it: its ``detail`` (and extra
    members such as ``latest_event_at``), without its status line, path or raw body."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict) or not isinstance(problem.get("detail"), str):
        return TrainingSetRefusedError("The customers service cannot build this training set.")
    extra = {k: v for k, v in problem.items() if k not in _PROBLEM_FRAME}
    return TrainingSetRefusedError(problem["detail"][:500], extra)


class TrainingSetClient:
    """The customers service's training-set exports, fetched as the caller (token forwarded).

    ``GET /v1/training-sets/customers?label=COLUMN`` → :class:`CustomerTrainingSet`;
    ``GET /v1/training-sets/events?cutoff=YYYY-MM-DD&horizon_days=N`` → :class:`EventTrainingSet`.
    """

    def __init__(self, http: httpx.AsyncClient, *, timeout_seconds: float = 120.0) -> None:
        self.http = http
        self.timeout = timeout_seconds

    async def _get(
        self,
        path: str,
        params: dict[str, str],
        authorization: str | None,
        contract: type[ContractT],
    ) -> ContractT:
        headers = {"authorization": authorization} if authorization else {}
        try:
            response = await self.http.get(
                path, params=params, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise TrainingSetError(
                f"The customers service cannot be reached for a training set "
                f"({type(exc).__name__})."
            ) from exc
        if response.status_code in _REFUSALS:
            raise _refusal(response)
        if response.status_code != 200:
            raise TrainingSetError(
                f"The customers service answered {response.status_code} for a training set."
            )
        try:
            return contract.model_validate_json(response.content)
        except ValidationError as exc:
            raise TrainingSetError(
                f"The customers service sent no valid {contract.__name__} "
                f"({exc.error_count()} problem(s))."
            ) from exc

    async def customer_training_set(
        self, label: str, *, authorization: str | None
    ) -> CustomerTrainingSet:
        return await self._get(
            "/v1/training-sets/customers", {"label": label}, authorization, CustomerTrainingSet
        )

    async def event_training_set(
        self, cutoff: str, horizon_days: int, *, authorization: str | None
    ) -> EventTrainingSet:
        return await self._get(
            "/v1/training-sets/events",
            {"cutoff": cutoff, "horizon_days": str(horizon_days)},
            authorization,
            EventTrainingSet,
        )


class ScoringInputsClient:
    """``POST /v1/internal/scoring-inputs`` on the customers service, as the job's submitter:
    pages of the customers a filter selects, with their profiles and attributes."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def page(
        self, query: ScoringInputsQuery, *, authorization: str | None
    ) -> ScoringInputsPage:
        """One page; a filter the customers service refuses (400/404/422) is a
        :class:`CustomerFilterRefusedError` carrying its reasons, anything else that is not a
        page a :class:`CustomersUnavailableError`."""
        headers = {"authorization": authorization} if authorization else {}
        try:
            response = await self.http.post(
                "/v1/internal/scoring-inputs",
                content=query.model_dump_json(),
                headers={**headers, "content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise CustomersUnavailableError(
                f"The customers service cannot be reached ({type(exc).__name__})."
            ) from exc
        if response.status_code in (*_REFUSALS, 404):
            raise CustomerFilterRefusedError(
                f"The customer filter is refused: {_filter_refusal(response)}"
            )
        if response.status_code != 200:
            raise CustomersUnavailableError(
                f"The customers service answered {response.status_code} for the customers."
            )
        try:
            return ScoringInputsPage.model_validate_json(response.content)
        except ValidationError as exc:
            raise CustomersUnavailableError(
                "The customers service sent no page of scoring inputs."
            ) from exc


def _filter_refusal(response: httpx.Response) -> str:
    """Why the customers service refused a filter: each invalid member (``risk_level.0:
    Input should be ...``) or its ``detail`` (an unknown segment)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return f"the customers service answered {response.status_code}."
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        reasons = []
        for error in errors[:10]:
            if not isinstance(error, dict):
                continue
            loc = [str(part) for part in error.get("loc", [])]
            while loc and loc[0] in ("body", "filter"):
                loc = loc[1:]
            reasons.append(f"{'.'.join(loc) or 'filter'}: {str(error.get('msg', ''))[:200]}")
        if reasons:
            return "; ".join(reasons) + "."
    detail = problem.get("detail")
    return str(detail)[:500] if isinstance(detail, str) else "no reason given."
