"""FastAPI dependencies: one unit of work per request, settings, the prediction service.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
and a thread hop per dependency costs more than the single-row scoring it precedes."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request

from churn_prediction.batch_jobs.runner import PredictionJobRunner
from churn_prediction.batch_jobs.service import PredictionJobService
from churn_prediction.clients import CustomerFeaturesClient, TrainingSetClient
from churn_prediction.config import Settings
from churn_prediction.recommendations.service import RecommendationRuleService
from churn_prediction.registry.hot_reload import reload_tenant_models
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.scoring.service import PredictionService, RulesLoader
from churn_prediction.scoring.serving import ServingModels
from churn_prediction.training_jobs.runner import TrainingJobRunner
from churn_prediction.training_jobs.service import TrainingJobService
from churn_shared.db import unit_of_work
from churn_shared.runtime import ProcessState
from churn_shared.security import Principal, require_role
from churn_shared.unit_of_work import SessionDep, after_commit


class PredictionState(ProcessState):
    """``app.state`` of the prediction service: what its runtime opens (``main._open``)."""

    settings: Settings
    #: Replaces the HTTP transport to the customers service (tests fake it).
    customers_transport: Any
    auth_client: Any
    customers_client: CustomerFeaturesClient
    training_sets: TrainingSetClient
    serving_models: ServingModels
    job_runner: TrainingJobRunner
    prediction_jobs: PredictionJobRunner
    rules_cache: dict[str, tuple[float, list[dict[str, Any]]]]

    def __init__(self, settings: Settings, *, customers_transport: Any = None) -> None:
        super().__init__(settings)
        self.customers_transport = customers_transport
        self.rules_cache = {}


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def rules_loader(state: PredictionState) -> RulesLoader:
    """A tenant's recommendation rules, cached per replica for a few seconds."""

    async def load(tenant_id: str) -> list[dict[str, Any]]:
        cache = state.rules_cache
        ttl = state.settings.recommendation_rules_ttl_seconds
        now = time.monotonic()
        hit = cache.get(tenant_id)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        async with unit_of_work(state.session_factory) as session:
            rules = await RecommendationRuleService(session).rules(tenant_id)
        cache[tenant_id] = (now, rules)
        return rules

    return load


async def get_prediction_service(request: Request) -> PredictionService:
    state: PredictionState = request.app.state
    return PredictionService(
        state.serving_models, state.settings, state.customers_client, rules_loader(state)
    )


async def get_registry_service(
    session: SessionDep,
) -> ModelRegistryService:
    return ModelRegistryService(session)


async def get_rule_service(request: Request, session: SessionDep) -> RecommendationRuleService:
    return RecommendationRuleService(session, request.app.state.rules_cache)


async def get_job_service(
    session: SessionDep,
) -> TrainingJobService:
    return TrainingJobService(session)


async def get_job_runner(request: Request) -> TrainingJobRunner:
    runner: TrainingJobRunner = request.app.state.job_runner
    return runner


SettingsDep = Annotated[Settings, Depends(get_settings)]
PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
RegistryServiceDep = Annotated[ModelRegistryService, Depends(get_registry_service)]
RuleServiceDep = Annotated[RecommendationRuleService, Depends(get_rule_service)]
JobServiceDep = Annotated[TrainingJobService, Depends(get_job_service)]
JobRunnerDep = Annotated[TrainingJobRunner, Depends(get_job_runner)]
AnalystDep = Annotated[Principal, Depends(require_role("analyst"))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]


async def get_serving_models(request: Request) -> ServingModels:
    models: ServingModels = request.app.state.serving_models
    return models


async def get_training_sets(request: Request) -> TrainingSetClient:
    client: TrainingSetClient = request.app.state.training_sets
    return client


ServingModelsDep = Annotated[ServingModels, Depends(get_serving_models)]


class ModelSwap:
    """For a request that moves an alias: once its transaction is committed (and before the
    answer), this replica reloads the tenant's models, so it swaps to what is stored and never
    to a move that could still roll back. The other replicas reload on ``ModelPromotedV1``,
    which reaches this one too should its own reload fail."""

    def __init__(self, session: SessionDep, state: PredictionState) -> None:
        self._session = session
        self._state = state

    def after_commit(self, tenant_id: str) -> None:
        state = self._state
        after_commit(
            self._session,
            lambda: reload_tenant_models(
                state.session_factory,
                state.serving_models,
                tenant_id,
                state.settings.model_num_threads,
            ),
        )


async def get_model_swap(request: Request, session: SessionDep) -> ModelSwap:
    return ModelSwap(session, request.app.state)


ModelSwapDep = Annotated[ModelSwap, Depends(get_model_swap)]
TrainingSetsDep = Annotated[TrainingSetClient, Depends(get_training_sets)]


async def get_prediction_job_service(session: SessionDep) -> PredictionJobService:
    return PredictionJobService(session)


async def get_prediction_job_runner(request: Request) -> PredictionJobRunner:
    runner: PredictionJobRunner = request.app.state.prediction_jobs
    return runner


PredictionJobServiceDep = Annotated[PredictionJobService, Depends(get_prediction_job_service)]
PredictionJobRunnerDep = Annotated[PredictionJobRunner, Depends(get_prediction_job_runner)]
