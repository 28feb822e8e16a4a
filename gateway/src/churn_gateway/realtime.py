"""The Socket.IO live feed: authenticated clients join their tenant's room and nothing else.

A client connects with ``auth={"token": <access token or API key>}``. A socket lives as long
as its credential: a user's socket is told ``session_expired`` and disconnected when its access
token expires, unless the client sends a fresh one first with the acknowledged ``reauth``
event; an API key's socket is renewed by the gateway itself (the key is exchanged again) until
the key is revoked. docs/live-feed.md is the client's guide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import socketio
from pydantic import ValidationError

from churn_gateway.authentication import EdgeAuthenticator, EdgeCaller
from churn_gateway.schemas import LiveMessage, SocketAuth
from churn_shared.errors import ProblemError, UnauthorizedError
from churn_shared.logging import get_logger

_log = get_logger(__name__)

SOCKETIO_MOUNT_PATH = "/socket.io"
#: Client → server, acknowledged: ``{"token": "<new access token>"}`` keeps the socket open.
REAUTH_EVENT = "reauth"
#: Server → client, just before the server disconnects a socket whose credential ran out.
SESSION_EXPIRED_EVENT = "session_expired"


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


def _token_of(caller: EdgeCaller) -> str:
    """The access token that stands for the caller (an API key's is the exchanged one)."""
    return caller.upstream_authorization.partition(" ")[2]


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

    # A socket lives no longer than its credential (see the module doc).
    expiry_timers: dict[str, asyncio.TimerHandle] = {}
    #: The API key of each socket opened with one (memory only), to exchange it again.
    api_keys: dict[str, str] = {}
    pending: set[asyncio.Task[None]] = set()

    def run(coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        pending.add(task)
        task.add_done_callback(pending.discard)

    def schedule_expiry(sid: str, token: str) -> int | None:
        timer = expiry_timers.pop(sid, None)
        if timer is not None:
            timer.cancel()
        expires_at = _expires_at(token)
        if expires_at is not None:
            expiry_timers[sid] = asyncio.get_running_loop().call_later(
                max(0.0, expires_at - time.time()), expire, sid
            )
            return int(expires_at)
        return None

    async def end(sid: str, reason: str) -> None:
        _log.info("socket_expired", sid=sid, reason=reason)
        await sio.emit(SESSION_EXPIRED_EVENT, {"reason": reason}, to=sid)
        await sio.disconnect(sid)

    async def renew_api_key(sid: str, key: str) -> None:
        current = authenticator()
        try:
            if current is None:
                raise UnauthorizedError("The gateway is stopping.")
            caller = await current.authenticate_feed(key)
        except ProblemError:
            await end(sid, "api_key_refused")
            return
        schedule_expiry(sid, _token_of(caller))

    def expire(sid: str) -> None:
        expiry_timers.pop(sid, None)
        key = api_keys.get(sid)
        run(renew_api_key(sid, key) if key is not None else end(sid, "token_expired"))

    async def identify(credential: str) -> EdgeCaller:
        current = authenticator()
        if current is None:
            raise UnauthorizedError("The gateway is starting.")
        return await current.authenticate_feed(credential)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            credential = _token_from(auth, environ)
            caller = await identify(credential)
        except (ProblemError, ValidationError) as exc:
            _log.info("socket_refused", reason=str(exc)[:200])
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from exc
        principal = caller.principal
        await sio.save_session(
            sid,
            {
                "tenant_id": principal.tenant_id,
                "subject": principal.subject,
                "role": principal.role,
            },
        )
        await sio.enter_room(sid, tenant_room(principal.tenant_id))
        if principal.is_api_key:
            api_keys[sid] = credential
        schedule_expiry(sid, _token_of(caller))
        _log.info("socket_connected", tenant_id=principal.tenant_id, subject=principal.subject)

    async def reauth(sid: str, data: Any = None) -> dict[str, Any]:
        """A fresh credential for an open socket; the answer is the event's acknowledgement."""
        try:
            credential = SocketAuth.model_validate(data).token
            caller = await identify(credential)
        except (ProblemError, ValidationError) as exc:
            _log.info("socket_reauth_refused", sid=sid, reason=str(exc)[:200])
            return {"ok": False, "error": "unauthorized"}
        session = await sio.get_session(sid)
        principal = caller.principal
        if (principal.tenant_id, principal.subject) != (session["tenant_id"], session["subject"]):
            # Another identity needs another room: reconnect with its credential instead.
            return {"ok": False, "error": "different_identity"}
        session["role"] = principal.role
        await sio.save_session(sid, session)
        if principal.is_api_key:
            api_keys[sid] = credential
        else:
            api_keys.pop(sid, None)
        return {"ok": True, "expires_at": schedule_expiry(sid, _token_of(caller))}

    async def disconnect(sid: str, reason: Any = None) -> None:
        api_keys.pop(sid, None)
        timer = expiry_timers.pop(sid, None)
        if timer is not None:
            timer.cancel()

    sio.on("connect", connect)
    sio.on(REAUTH_EVENT, reauth)
    sio.on("disconnect", disconnect)
    return sio


async def broadcast(sio: socketio.AsyncServer, message: LiveMessage) -> None:
    """Send one live-feed message to the connected clients of its tenant only."""
    await sio.emit(message.event, message.payload, room=tenant_room(message.tenant_id))
