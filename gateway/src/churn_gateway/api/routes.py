"""Routes: the merged OpenAPI document, Swagger UI, and the ``/v1`` reverse proxy."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from churn_gateway.dependencies import HttpClientDep, MergedOpenAPIDep, ProxyTargetDep
from churn_gateway.proxy import forward

router = APIRouter()

PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@router.get("/openapi.json", include_in_schema=False)
async def openapi_document(merged: MergedOpenAPIDep) -> Response:
    document: dict[str, Any] = await merged.document()
    return Response(orjson.dumps(document), media_type="application/json")


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Churn platform API")


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
