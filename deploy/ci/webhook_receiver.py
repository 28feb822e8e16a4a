"""A webhook receiver for the smoke test: keeps every POST (headers and JSON body) in memory and
lists them at ``GET /received``. Standard library only; listens on :9000."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_received: list[dict[str, object]] = []
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        with _lock:
            _received.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "raw": raw.decode(errors="replace"),
                    "body": body,
                }
            )
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        if self.path != "/received":
            self.send_response(404)
            self.end_headers()
            return
        with _lock:
            payload = json.dumps(_received).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        print("webhook-receiver:", format % args, flush=True)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 9000), Handler).serve_forever()
