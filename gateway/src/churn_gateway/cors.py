"""Cross-origin requests: exactly one layer answers each path, and preflights never need a token.

Browsers reject a response that carries ``Access-Control-Allow-Origin`` twice. The REST API's
CORS headers come from Starlette's :class:`CORSMiddleware`; the Socket.IO mount answers its own
(python-socketio checks the ``Origin`` of polling and WebSocket requests against the same
origins), so the REST layer leaves that path alone. A preflight (``OPTIONS`` with
``Access-Control-Request-Method``) carries no credentials by design: with CORS off it is
answered ``204`` without CORS headers (the browser then refuses the cross-origin call), never
``401``.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from churn_gateway.config import Settings
from churn_gateway.realtime import SOCKETIO_MOUNT_PATH

#: Response headers a browser script may read on a cross-origin response.
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "ETag", "Location")


def is_preflight(scope: Scope) -> bool:
    if scope.get("method") != "OPTIONS":
        return False
    return any(name == b"access-control-request-method" for name, _ in scope["headers"])


def _is_socketio(path: str) -> bool:
    return path == SOCKETIO_MOUNT_PATH or path.startswith(SOCKETIO_MOUNT_PATH + "/")


class GatewayCORSMiddleware:
    """CORS for everything but the Socket.IO mount (see the module doc)."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.cors: ASGIApp | None = None
        if settings.cors_origins:
            self.cors = CORSMiddleware(
                app,
                allow_origins=settings.cors_origins,
                allow_credentials=settings.cors_allow_credentials,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=list(EXPOSED_HEADERS),
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_socketio(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self.cors is not None:
            await self.cors(scope, receive, send)
            return
        if is_preflight(scope):
            await Response(status_code=204)(scope, receive, send)
            return
        await self.app(scope, receive, send)
