"""The web console: static HTML, CSS and JavaScript modules served by the gateway at ``/console``.

The console is a client of the public ``/v1`` API and the Socket.IO feed only. Its responses
carry a strict Content-Security-Policy (scripts, styles and connections from this origin only;
no inline script or style), ``X-Content-Type-Options: nosniff``, no framing and no referrer;
``index.html`` is never cached, the other files are revalidated on every load (no build step
fingerprints them). docs/console.md explains the choices.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

CONSOLE_PATH = "/console"
STATIC_DIRECTORY = Path(__file__).parent / "static"

#: 'self' also allows same-origin ws:/wss: (CSP Level 3), which the live feed uses.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_ENTRY_DOCUMENTS = frozenset({"", "/", "/index.html"})


class ConsoleFiles:
    """Serves the console's files with its security and caching headers (pure ASGI)."""

    def __init__(self, directory: Path = STATIC_DIRECTORY) -> None:
        self._files = StaticFiles(directory=directory, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        relative = path.removeprefix(root) if root and path.startswith(root) else path
        entry = relative in _ENTRY_DOCUMENTS
        cache = b"no-store" if entry else b"no-cache"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"cache-control"
                ]
                headers.extend(_SECURITY_HEADERS)
                headers.append((b"cache-control", cache))
                message["headers"] = headers
            await send(message)

        await self._files(scope, receive, send_with_headers)


def install_console(app: FastAPI) -> None:
    """``/console/`` serves the console; ``/console`` redirects there (relative links)."""

    @app.get(CONSOLE_PATH, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308)

    app.mount(CONSOLE_PATH, ConsoleFiles(), name="console")
