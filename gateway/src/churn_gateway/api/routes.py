"""Routes: the merged OpenAPI document and the ``/v1`` reverse proxy (Swagger UI is shared)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from churn_gateway.dependencies import HttpClientDep, MergedOpenAPIDep, ProxyTargetDep
from churn_gateway.proxy import forward

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
