"""The standard inference protocols: Open Inference Protocol V2 under ``/v2`` and MLflow's
scoring protocol (``/invocations``, ``/ping``, ``/health``, ``/version``).

Each protocol answers its errors in its own form (``{"error": …}`` for V2, MLflow's
``{"error_code": …, "message": …}``), authentication and permission errors included, so the
clients integrators already use (``tritonclient``, MLflow's) can read them. Probes need no
credentials; everything else takes a user's token or an API key (the tenant comes from it).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse, Response

from churn_prediction.api.bodies import INLINE_BODY_BYTES, request_body
from churn_prediction.api.protocol_bodies import (
    BINARY_HEADER,
    MLFLOW_REQUEST_SCHEMA,
    OIP_INFER_REQUEST_SCHEMA,
    MlflowBody,
    OipInferBody,
    model_metadata,
    render_mlflow,
    render_oip,
)
from churn_prediction.dependencies import PredictionServiceDep, SettingsDep
from churn_prediction.exceptions import ModelNotLoadedError, ServedModelNotFoundError
from churn_prediction.scoring.service import PredictionService
from churn_prediction.scoring.serving import SERVED_MODEL_NAME, ServingModel
from churn_shared.errors import ForbiddenError, ProblemError
from churn_shared.runtime import package_version
from churn_shared.security import Principal, PrincipalDep, require_role

__all__ = ["mlflow_router", "oip_router"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _ProtocolRoute(APIRoute):
    """A route whose errors (raised by it or its dependencies) take the protocol's form."""

    @staticmethod
    def error_response(status: int, message: str, headers: dict[str, str] | None) -> Response:
        """The protocol's error body; each protocol's route class (OIP, MLflow) defines it."""
        raise NotImplementedError

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        render = self.error_response

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ProblemError as exc:
                return render(exc.status, exc.detail, exc.headers)
            except RequestValidationError as exc:
                return render(400, f"Invalid request: {exc.errors()}", None)

        return run


class OipRoute(_ProtocolRoute):
    @staticmethod
    def error_response(status: int, message: str, headers: dict[str, str] | None) -> Response:
        return JSONResponse({"error": message}, status_code=status, headers=headers)


_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    422: "BAD_REQUEST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


class MlflowRoute(_ProtocolRoute):
    @staticmethod
    def error_response(status: int, message: str, headers: dict[str, str] | None) -> Response:
        # MLflow's scoring server answers every input error with 400 BAD_REQUEST.
        code = _MLFLOW_CODES.get(status, "INTERNAL_ERROR")
        if status in (413, 422):
            status = 400
        return JSONResponse(
            {"error_code": code, "message": message}, status_code=status, headers=headers
        )


#: The MLflow scoring server's paths (the Open Inference Protocol's are ``/v2`` and below).
MLFLOW_PATHS = frozenset({"/invocations", "/ping", "/health", "/version"})


def protocol_edge_error(path: str, exc: ProblemError) -> Response | None:
    """An error the shared middleware answers before any route (a body over the limit), in
    the protocol's own form on its paths; ``None`` elsewhere (problem+json)."""
    if path == "/v2" or path.startswith("/v2/"):
        return OipRoute.error_response(exc.status, exc.detail, exc.headers)
    if path in MLFLOW_PATHS:
        return MlflowRoute.error_response(exc.status, exc.detail, exc.headers)
    return None


async def _reader(principal: PrincipalDep) -> Principal:
    """Metadata: any role; an API key needs its ``predictions`` or ``read`` scope."""
    if principal.is_api_key and not {"predictions", "read"} & principal.scopes:
        raise ForbiddenError("This API key lacks the 'predictions' or 'read' scope.")
    return principal


ReaderDep = Annotated[Principal, Depends(_reader)]
ScorerDep = Annotated[Principal, Depends(require_role("analyst", scope="predictions"))]

_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
_OIP_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, **_ERROR}
    for code, text in (
        (400, "Malformed request or input the model cannot read"),
        (401, "Missing or invalid credentials"),
        (403, "Role or API key scope insufficient"),
        (404, "No such model for the caller's tenant"),
        (413, "More rows than the service scores in one request"),
        (503, "No model loaded yet"),
    )
}
_MLFLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {}}}
    for code, text in (
        (400, "BAD_REQUEST: the body cannot be scored"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (503, "TEMPORARILY_UNAVAILABLE: no model loaded yet"),
    )
}

_NOT_READY: dict[str, Any] = {"description": "Not ready", "content": {"application/json": {}}}

oip_router = APIRouter(prefix="/v2", tags=["inference"], route_class=OipRoute)
mlflow_router = APIRouter(tags=["inference"], route_class=MlflowRoute)


def _loaded(request: Request) -> bool:
    models = getattr(request.app.state, "serving_models", None)
    return bool(models is not None and models.loaded)


def _model(
    service: PredictionService, tenant_id: str, name: str, version: str | None
) -> ServingModel:
    serving = service.served(tenant_id, name)
    if serving is None:
        if not service.models.loaded:
            raise ModelNotLoadedError("No model is loaded yet.")
        raise ServedModelNotFoundError(
            f"No model {name!r} for this tenant: use {SERVED_MODEL_NAME!r} (the champion), "
            "'challenger' or a version this service serves."
        )
    if version is not None and version != serving.version:
        raise ServedModelNotFoundError(
            f"Model {name!r} is served at version {serving.version!r}, not {version!r}."
        )
    return serving


# -- Open Inference Protocol V2 ------------------------------------------------------------------


@oip_router.get(
    "/health/live",
    operation_id="inference_v2_live",
    summary="Server liveness (no credentials)",
    responses={200: {"content": {"application/json": {}}}},
)
async def v2_live() -> Response:
    return JSONResponse({"live": True})


@oip_router.get(
    "/health/ready",
    operation_id="inference_v2_ready",
    summary="Server readiness: a model is loaded (no credentials)",
    responses={200: {"content": {"application/json": {}}}, 503: {"description": "Not ready"}},
)
async def v2_ready(request: Request) -> Response:
    ready = _loaded(request)
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@oip_router.get(
    "",
    operation_id="inference_v2_server_metadata",
    summary="Server metadata: name, version, protocol extensions",
    responses=_OIP_ERRORS,
)
async def v2_server_metadata(principal: ReaderDep) -> Response:
    return JSONResponse(
        {
            "name": "churn-prediction",
            "version": package_version("churn-prediction"),
            "extensions": ["binary_tensor_data"],
        }
    )


async def _metadata(
    principal: Principal, service: PredictionService, name: str, version: str | None
) -> Response:
    serving = _model(service, principal.tenant_id, name, version)
    return Response(orjson.dumps(model_metadata(name, serving)), media_type="application/json")


async def _ready(
    principal: Principal, service: PredictionService, name: str, version: str | None
) -> Response:
    serving = _model(service, principal.tenant_id, name, version)
    return JSONResponse({"name": name, "version": serving.version, "ready": True})


@oip_router.get(
    "/models/{model_name}",
    operation_id="inference_v2_model_metadata",
    summary="A model's inputs (feature order, datatypes, shapes) and outputs",
    responses=_OIP_ERRORS,
)
async def v2_model_metadata(
    model_name: str, principal: ReaderDep, service: PredictionServiceDep
) -> Response:
    """`churn` is the tenant's champion (or the global default); `champion`, `challenger` or a
    served version name another."""
    return await _metadata(principal, service, model_name, None)


@oip_router.get(
    "/models/{model_name}/versions/{model_version}",
    operation_id="inference_v2_model_version_metadata",
    summary="A model version's inputs and outputs",
    responses=_OIP_ERRORS,
)
async def v2_model_version_metadata(
    model_name: str, model_version: str, principal: ReaderDep, service: PredictionServiceDep
) -> Response:
    return await _metadata(principal, service, model_name, model_version)


@oip_router.get(
    "/models/{model_name}/ready",
    operation_id="inference_v2_model_ready",
    summary="Whether the model is loaded and ready to score",
    responses=_OIP_ERRORS,
)
async def v2_model_ready(
    model_name: str, principal: ReaderDep, service: PredictionServiceDep
) -> Response:
    return await _ready(principal, service, model_name, None)


@oip_router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    operation_id="inference_v2_model_version_ready",
    summary="Whether the model version is loaded and ready to score",
    responses=_OIP_ERRORS,
)
async def v2_model_version_ready(
    model_name: str, model_version: str, principal: ReaderDep, service: PredictionServiceDep
) -> Response:
    return await _ready(principal, service, model_name, model_version)


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": OIP_INFER_REQUEST_SCHEMA},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": (
                    "Binary tensor data extension: the JSON request (its length in the "
                    "Inference-Header-Content-Length header) followed by the tensors' bytes."
                ),
            },
        },
    }
}


async def _infer(
    request: Request,
    principal: Principal,
    service: PredictionService,
    max_rows: int,
    name: str,
    version: str | None,
) -> Response:
    serving = _model(service, principal.tenant_id, name, version)
    raw = await request_body(request)
    body = OipInferBody(raw, header_length=request.headers.get(BINARY_HEADER), max_rows=max_rows)
    content, header_length = await service.score(
        principal.tenant_id,
        body,
        lambda scored: render_oip(scored, body, name),
        serving=serving,
        inline=len(raw) <= INLINE_BODY_BYTES,
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


@oip_router.post(
    "/models/{model_name}/infer",
    operation_id="inference_v2_infer",
    summary="Score a batch: an [N, F] tensor or one [N] tensor per feature",
    responses={200: {"content": {"application/json": {}}}, **_OIP_ERRORS},
    openapi_extra=_INFER_BODY,
)
async def v2_infer(
    model_name: str,
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
    settings: SettingsDep,
) -> Response:
    """Outputs `churn_probability` (FP64 `[N]`) and `risk_level` (BYTES `[N]`), in JSON or, when
    asked (`binary_data_output`), as binary tensor data."""
    return await _infer(request, principal, service, settings.max_batch_rows, model_name, None)


@oip_router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    operation_id="inference_v2_infer_version",
    summary="Score a batch with a given model version",
    responses={200: {"content": {"application/json": {}}}, **_OIP_ERRORS},
    openapi_extra=_INFER_BODY,
)
async def v2_infer_version(
    model_name: str,
    model_version: str,
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
    settings: SettingsDep,
) -> Response:
    return await _infer(
        request, principal, service, settings.max_batch_rows, model_name, model_version
    )


# -- MLflow scoring protocol ---------------------------------------------------------------------


@mlflow_router.get(
    "/ping",
    operation_id="inference_mlflow_ping",
    summary="MLflow probe: 200 once a model is loaded (no credentials)",
    responses={200: {"content": {"application/json": {}}}, 503: _NOT_READY},
)
async def ping(request: Request) -> Response:
    # MLflow's server sends a bare newline labelled JSON; clients read only the status, so an
    # empty JSON object keeps them working and the body true to its content type.
    ready = _loaded(request)
    return JSONResponse({}, status_code=200 if ready else 503)


@mlflow_router.get(
    "/health",
    operation_id="inference_mlflow_health",
    summary="MLflow probe: 200 once a model is loaded (no credentials)",
    responses={200: {"content": {"application/json": {}}}, 503: _NOT_READY},
)
async def health(request: Request) -> Response:
    return await ping(request)


@mlflow_router.get(
    "/version",
    operation_id="inference_mlflow_version",
    summary="The version of the model serving the caller's tenant (text)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **_MLFLOW_ERRORS},
)
async def version(principal: ReaderDep, service: PredictionServiceDep) -> Response:
    serving = _model(service, principal.tenant_id, SERVED_MODEL_NAME, None)
    return Response(serving.version, media_type="text/plain")


@mlflow_router.post(
    "/invocations",
    operation_id="inference_mlflow_invocations",
    summary="Score a batch the MLflow way (dataframe_split, dataframe_records, instances, "
    "inputs or CSV)",
    responses={200: {"content": {"application/json": {}}}, **_MLFLOW_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": MLFLOW_REQUEST_SCHEMA},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def invocations(
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
    settings: SettingsDep,
) -> Response:
    """Answers `{"predictions": [{"churn_probability": …, "risk_level": …}, …]}` in input order,
    scored by the tenant's champion."""
    serving = _model(service, principal.tenant_id, SERVED_MODEL_NAME, None)
    raw = await request_body(request)
    body = MlflowBody(
        raw,
        content_type=request.headers.get("content-type", "application/json"),
        max_rows=settings.max_batch_rows,
    )
    content = await service.score(
        principal.tenant_id,
        body,
        render_mlflow,
        serving=serving,
        inline=len(raw) <= INLINE_BODY_BYTES,
    )
    return Response(content, media_type="application/json")
