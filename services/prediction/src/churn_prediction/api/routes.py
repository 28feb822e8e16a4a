"""Routes: parse, call one service method, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from churn_prediction.api.bodies import (
    BATCH_REQUEST_SCHEMA,
    INLINE_BODY_BYTES,
    JsonBatch,
    render_batch,
    request_body,
)
from churn_prediction.dependencies import (
    AdminDep,
    AnalystDep,
    JobRunnerDep,
    JobServiceDep,
    ModelSwapDep,
    PredictionServiceDep,
    RegistryServiceDep,
    RuleServiceDep,
    ServingModelsDep,
    SettingsDep,
    TrainingSetsDep,
)
from churn_prediction.recommendations.schemas import RecommendationRules
from churn_prediction.registry.schemas import (
    AliasRead,
    EvaluationCreate,
    EvaluationRead,
    ModelDetail,
    ModelList,
    PromoteRequest,
    ShadowReport,
)
from churn_prediction.scoring.schemas import (
    BatchPredictionRead,
    ModelRead,
    PredictionCreate,
    PredictionRead,
)
from churn_prediction.training_jobs.schemas import (
    TrainingCreate,
    TrainingJobAccepted,
    TrainingJobRead,
)
from churn_shared.errors import PROBLEM_RESPONSES, problem_doc
from churn_shared.security import (
    Principal,
    forwarded_authorization,
    require_role,
    require_scope,
)

#: Scoring needs the analyst role; an API key also needs its ``predictions`` scope.
ScorerDep = Annotated[Principal, Depends(require_role("analyst", scope="predictions"))]
#: Reading: any role; an API key needs its ``read`` scope.
ReaderDep = Annotated[Principal, Depends(require_scope("read"))]

predictions_router = APIRouter(prefix="/v1/predictions", tags=["predictions"])
models_router = APIRouter(prefix="/v1/models", tags=["models"])
rules_router = APIRouter(prefix="/v1/recommendation-rules", tags=["recommendations"])


@predictions_router.post(
    "",
    response_model=PredictionRead,
    operation_id="predictions_create",
    summary="Score one customer (by id or by raw features)",
    responses={**PROBLEM_RESPONSES, 503: {"description": "Customers service or model unavailable"}},
)
async def create_prediction(
    body: PredictionCreate,
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
) -> PredictionRead:
    """By `customer_id` the features come from the customers service (as the caller); by
    `features` the given values are scored (missing ones count as unknown). Not stored."""
    return await service.predict_one(
        principal.tenant_id, body, authorization=forwarded_authorization(request)
    )


@predictions_router.post(
    "/batch",
    response_model=None,
    operation_id="predictions_create_batch",
    summary="Score up to 10,000 rows (rows or columns)",
    responses={200: {"model": BatchPredictionRead}, **PROBLEM_RESPONSES},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BATCH_REQUEST_SCHEMA}},
        }
    },
)
async def create_batch_prediction(
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
    settings: SettingsDep,
    drivers: bool = Query(default=False, description="Add the top drivers to every prediction."),
) -> Response:
    """Predictions come back in input order. The body's shape is validated, not each cell
    through a model class, so large batches stay fast."""
    raw = await request_body(request)
    body = JsonBatch(raw, max_rows=settings.max_batch_rows)
    content = await service.score(
        principal.tenant_id,
        body,
        render_batch,
        with_drivers=drivers,
        inline=len(raw) <= INLINE_BODY_BYTES and not drivers,
    )
    return Response(content, media_type="application/json")


@models_router.get(
    "/current",
    response_model=ModelRead,
    operation_id="models_get_current",
    summary="The model serving the caller's tenant",
    responses=PROBLEM_RESPONSES,
)
async def get_current_model(principal: ReaderDep, service: PredictionServiceDep) -> ModelRead:
    return service.current_model(principal.tenant_id)


@models_router.get(
    "",
    response_model=ModelList,
    operation_id="models_list",
    summary="Model versions visible to the caller (global and the tenant's own)",
    responses=PROBLEM_RESPONSES,
)
async def list_models(principal: ReaderDep, registry: RegistryServiceDep) -> ModelList:
    return await registry.list_models(principal.tenant_id)


@models_router.post(
    "/train",
    status_code=202,
    response_model=TrainingJobAccepted,
    operation_id="models_train",
    summary="Start a training job (analyst or higher)",
    responses=PROBLEM_RESPONSES,
)
async def train_model(
    body: TrainingCreate, request: Request, principal: AnalystDep, runner: JobRunnerDep
) -> TrainingJobAccepted:
    """The job fetches the training set from the customers service as the caller, trains
    (cross-validated candidates, calibrated) off the event loop and registers the result as
    the tenant's `challenger`. Follow it at `GET /v1/models/jobs/{job_id}`."""
    return await runner.submit(
        principal.tenant_id, body, authorization=forwarded_authorization(request)
    )


@models_router.get(
    "/jobs/{job_id}",
    response_model=TrainingJobRead,
    operation_id="models_get_job",
    summary="A training job's status, progress and stage",
    responses=PROBLEM_RESPONSES,
)
async def get_training_job(
    job_id: str, principal: ReaderDep, jobs: JobServiceDep
) -> TrainingJobRead:
    return await jobs.get(principal.tenant_id, job_id)


@models_router.get(
    "/shadow",
    response_model=ShadowReport,
    operation_id="models_shadow_report",
    summary="Agreement of the challenger's shadow scores with the champion's",
    responses=PROBLEM_RESPONSES,
)
async def shadow_report(
    principal: ReaderDep, registry: RegistryServiceDep, models: ServingModelsDep
) -> ShadowReport:
    return await registry.shadow_report(principal.tenant_id, models)


@models_router.post(
    "/rollback",
    response_model=AliasRead,
    operation_id="models_rollback",
    summary="Move the champion back to the previous one (admin or higher)",
    responses={**PROBLEM_RESPONSES, 409: problem_doc("The tenant has no champion to roll back")},
)
async def rollback_model(
    principal: AdminDep,
    registry: RegistryServiceDep,
    swap: ModelSwapDep,
    settings: SettingsDep,
) -> AliasRead:
    moved = await registry.rollback(
        principal.tenant_id, actor=principal.subject, num_threads=settings.model_num_threads
    )
    swap.after_commit(principal.tenant_id)
    return moved


@models_router.get(
    "/{version}",
    response_model=ModelDetail,
    operation_id="models_get",
    summary="One model version with its metrics and model card",
    responses=PROBLEM_RESPONSES,
)
async def get_model(
    version: str, principal: ReaderDep, registry: RegistryServiceDep
) -> ModelDetail:
    return await registry.get_model(principal.tenant_id, version)


@models_router.get(
    "/{version}/card",
    response_class=Response,
    operation_id="models_get_card",
    summary="The model card (Markdown)",
    responses={200: {"content": {"text/markdown": {}}}, **PROBLEM_RESPONSES},
)
async def get_model_card(
    version: str, principal: ReaderDep, registry: RegistryServiceDep
) -> Response:
    card = await registry.model_card(principal.tenant_id, version)
    return Response(card, media_type="text/markdown; charset=utf-8")


@models_router.post(
    "/{version}/promote",
    response_model=AliasRead,
    operation_id="models_promote",
    summary="Point champion or challenger at a version (admin or higher)",
    responses=PROBLEM_RESPONSES,
)
async def promote_model(
    version: str,
    body: PromoteRequest,
    principal: AdminDep,
    registry: RegistryServiceDep,
    swap: ModelSwapDep,
    settings: SettingsDep,
) -> AliasRead:
    """Checks the feature schema first (422 when serving cannot feed the model). Takes effect
    on this replica before the answer and on every other one through `ModelPromotedV1`."""
    moved = await registry.promote(
        principal.tenant_id,
        version,
        body.alias,
        actor=principal.subject,
        num_threads=settings.model_num_threads,
    )
    swap.after_commit(principal.tenant_id)
    return moved


@models_router.post(
    "/{version}/evaluate",
    response_model=EvaluationRead,
    operation_id="models_evaluate",
    summary="Evaluate a version on a point-in-time set (analyst or higher)",
    responses=PROBLEM_RESPONSES,
)
async def evaluate_model(
    version: str,
    body: EvaluationCreate,
    request: Request,
    principal: AnalystDep,
    registry: RegistryServiceDep,
    training_sets: TrainingSetsDep,
    settings: SettingsDep,
) -> EvaluationRead:
    """ROC-AUC, PR-AUC and Brier of the version at `cutoff` (customers with events before it,
    label = no order within `horizon_days`), with the recency baseline's ROC-AUC."""
    return await registry.evaluate(
        principal.tenant_id,
        version,
        body,
        training_sets=training_sets,
        authorization=forwarded_authorization(request),
        num_threads=settings.model_num_threads,
    )


@rules_router.get(
    "",
    response_model=RecommendationRules,
    operation_id="recommendation_rules_get",
    summary="The tenant's driver → action rules (defaults until changed)",
    responses=PROBLEM_RESPONSES,
)
async def get_recommendation_rules(
    principal: ReaderDep, rules: RuleServiceDep
) -> RecommendationRules:
    return await rules.get(principal.tenant_id)


@rules_router.put(
    "",
    response_model=RecommendationRules,
    operation_id="recommendation_rules_put",
    summary="Replace the tenant's recommendation rules (admin or higher)",
    responses=PROBLEM_RESPONSES,
)
async def put_recommendation_rules(
    body: RecommendationRules, principal: AdminDep, rules: RuleServiceDep
) -> RecommendationRules:
    return await rules.put(principal.tenant_id, body)
