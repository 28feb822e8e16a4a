#!/usr/bin/env python3
"""Container health check of the churn platform image (the image's HEALTHCHECK).

* an HTTP component (PID 1 runs uvicorn): ``GET http://127.0.0.1:$PORT/livez`` answers 200;
  with ``--ready``, ``/readyz`` (database, broker, model, … as the component defines it);
* a worker (``python -m churn_<service>.worker``): it holds an established TCP connection to
  a broker port named in its ``*_KAFKA_BOOTSTRAP_SERVERS`` (consumers keep theirs open);
* anything else (the migration and topic jobs, the CLI): healthy while it runs.

Exit 0 when healthy, 1 otherwise. Standard library only; no output unless unhealthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def _pid1() -> str:
    try:
        return Path("/proc/1/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _http(path: str) -> int:
    port = os.environ.get("PORT", "8000")
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


def _broker_ports() -> set[int]:
    ports = set()
    for key, value in os.environ.items():
        if key.endswith("KAFKA_BOOTSTRAP_SERVERS"):
            for server in value.split(","):
                if ":" in server:
                    ports.add(int(server.rsplit(":", 1)[1]))
    return ports or {9092}


def _connected(ports: set[int]) -> int:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) in ports:
                return 0
    print(f"unhealthy: no connection to a broker port {sorted(ports)}", file=sys.stderr)
    return 1


def main() -> int:
    cmdline = _pid1()
    if "uvicorn" in cmdline:
        return _http("/readyz" if "--ready" in sys.argv else "/livez")
    if ".worker" in cmdline:
        return _connected(_broker_ports())
    return 0


if __name__ == "__main__":
    sys.exit(main())
