"""Routes: the merged OpenAPI document, the ``/v1`` reverse proxy (Swagger UI is shared) and the
inference protocols' paths, proxied to the prediction service with their errors in each
protocol's own form (what ``tritonclient`` and MLflow's clients read)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from churn_gateway.dependencies import (
    HttpClientDep,
    MergedOpenAPIDep,
    ProxyTargetDep,
    SettingsDep,
    resolve_target,
)
from churn_gateway.proxy import forward
from churn_shared.errors import ProblemError

router = APIRouter()

PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@router.get("/openapi.json", include_in_schema=False)
async def openapi_document(merged: MergedOpenAPIDep) -> Response:
    document: dict[str, Any] = await merged.document()
    return Response(orjson.dumps(document), media_type="application/json")


@router.api_route("/v1/{path:path}", methods=PROXIED_METHODS, include_in_schema=False)
async def proxy(request: Request, target: ProxyTargetDep, client: HttpClientDep) -> Response:
    state = request.state
    peer = request.client.host if request.client else None
    return await forward(
        client,
        request,
        upstream=target.upstream,
        base_url=target.base_url,
        path=target.path,
        request_id=state.request_id,
        forwarded_for=getattr(state, "forwarded_for", [peer] if peer else []),
        authorization=target.authorization,
    )


#: Paths of the inference protocols: their errors take each protocol's own form.
PROTOCOL_PREFIXES = ("/v2", "/invocations", "/ping", "/health", "/version")


def is_protocol_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PROTOCOL_PREFIXES)


def protocol_error(path: str, exc: ProblemError) -> Response:
    """An edge error in the caller's protocol: Open Inference Protocol ``{"error": …}`` under
    ``/v2``, MLflow's ``{"error_code": …, "message": …}`` elsewhere."""
    status = exc.status
    if path == "/v2" or path.startswith("/v2/"):
        body: dict[str, Any] = {"error": exc.detail}
    else:
        codes = {
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "RESOURCE_DOES_NOT_EXIST",
            413: "BAD_REQUEST",
            429: "REQUEST_LIMIT_EXCEEDED",
            503: "TEMPORARILY_UNAVAILABLE",
        }
        body = {"error_code": codes.get(exc.status, "INTERNAL_ERROR"), "message": exc.detail}
        # MLflow's scoring server answers every input error (a body too large too) with 400.
        status = 400 if exc.status == 413 else exc.status
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=exc.headers,
    )


async def _inference(request: Request, settings: SettingsDep, client: HttpClientDep) -> Response:
    path = request.url.path
    try:
        target = await resolve_target(path, request, settings)
        state = request.state
        peer = request.client.host if request.client else None
        return await forward(
            client,
            request,
            upstream=target.upstream,
            base_url=target.base_url,
            path=target.path,
            request_id=state.request_id,
            forwarded_for=getattr(state, "forwarded_for", [peer] if peer else []),
            authorization=target.authorization,
        )
    except ProblemError as exc:
        return protocol_error(path, exc)


for _path in ("/v2", "/v2/{path:path}", "/invocations", "/ping", "/health", "/version"):
    router.add_api_route(_path, _inference, methods=PROXIED_METHODS, include_in_schema=False)
