"""The Socket.IO live feed: authenticated clients join their tenant's room and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import socketio
from pydantic import ValidationError

from churn_gateway.authentication import EdgeAuthenticator
from churn_gateway.schemas import LiveMessage, SocketAuth
from churn_shared.errors import UnauthorizedError
from churn_shared.logging import get_logger

_log = get_logger(__name__)

SOCKETIO_MOUNT_PATH = "/socket.io"


def tenant_room(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def _token_from(auth: Any, environ: Mapping[str, Any]) -> str:
    if isinstance(auth, Mapping):
        return SocketAuth.model_validate(auth).token
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    raise UnauthorizedError("Connect with auth={'token': '<access token>'}.")


def _expires_at(token: str) -> float | None:
    """The ``exp`` of a token that has already been verified."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None


def create_socket_server(
    authenticator: Callable[[], EdgeAuthenticator | None],
    *,
    cors_origins: list[str],
    cors_credentials: bool = False,
) -> socketio.AsyncServer:
    """A Socket.IO server whose ``connect`` checks the access token and joins the tenant room."""
    # None: same origin only (non-browser clients send no Origin and are not affected).
    allowed: str | list[str] | None = "*" if "*" in cors_origins else list(cors_origins) or None
    sio = socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=allowed,
        # The Socket.IO mount answers its own CORS (churn_gateway.cors leaves it alone).
        cors_credentials=cors_credentials,
        logger=False,
        engineio_logger=False,
    )

    # A socket lives no longer than its access token: the client reconnects with a fresh one.
    expiry_timers: dict[str, asyncio.TimerHandle] = {}
    closing: set[asyncio.Task[None]] = set()

    def expire(sid: str) -> None:
        expiry_timers.pop(sid, None)
        _log.info("socket_token_expired", sid=sid)
        task = asyncio.create_task(sio.disconnect(sid))
        closing.add(task)
        task.add_done_callback(closing.discard)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        current = authenticator()
        if current is None:
            raise socketio.exceptions.ConnectionRefusedError("The gateway is starting.")
        try:
            token = _token_from(auth, environ)
            principal = await current.verify_token(token)
        except (UnauthorizedError, ValidationError) as exc:
            _log.info("socket_refused", reason=str(exc)[:200])
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from exc
        await sio.save_session(
            sid,
            {
                "tenant_id": principal.tenant_id,
                "subject": principal.subject,
                "role": principal.role,
            },
        )
        await sio.enter_room(sid, tenant_room(principal.tenant_id))
        expires_at = _expires_at(token)
        if expires_at is not None:
            expiry_timers[sid] = asyncio.get_running_loop().call_later(
                max(0.0, expires_at - time.time()), expire, sid
            )
        _log.info("socket_connected", tenant_id=principal.tenant_id, subject=principal.subject)

    async def disconnect(sid: str, reason: Any = None) -> None:
        timer = expiry_timers.pop(sid, None)
        if timer is not None:
            timer.cancel()

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    return sio


async def broadcast(sio: socketio.AsyncServer, message: LiveMessage) -> None:
    """Send one live-feed message to the connected clients of its tenant only."""
    await sio.emit(message.event, message.payload, room=tenant_room(message.tenant_id))
