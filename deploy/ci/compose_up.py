"""Start a compose project in the order its ``depends_on`` conditions say, and prove them.

podman-compose on Debian's podman 4.3 ignores ``condition: service_healthy`` (it needs podman
4.6) and podman 4.3 runs health checks only through systemd timers, which a container host
without systemd lacks. This script enforces the conditions the compose file declares
(``service_started``, ``service_healthy``, ``service_completed_successfully``) itself, running
each service's own health check (``podman healthcheck run``), and starts services in waves
with ``podman-compose up -d --no-deps``. It then waits until every long-running service is
healthy and every one-shot job has exited 0.

    python compose_up.py --project P --timeout 900 -- <podman-compose args: -f a.yml -f b.yml>

Every wait is bounded; on failure it prints the offending service's last log lines and exits 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import yaml


def sh(
    argv: list[str], check: bool = True, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=capture)  # noqa: S603


class Project:
    def __init__(self, name: str, compose_args: list[str], podman_compose: str) -> None:
        self.name = name
        self.base = [podman_compose, "-p", name, *compose_args]
        config = yaml.safe_load(sh([*self.base, "config"]).stdout)
        self.services: dict[str, dict[str, Any]] = config["services"]
        self.started_at: dict[str, float] = {}
        self.done: dict[str, float] = {}

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"

    def state(self, service: str) -> dict[str, Any] | None:
        out = sh(
            ["podman", "inspect", "--format", "{{json .State}}", self.container(service)],
            check=False,
        )
        return json.loads(out.stdout) if out.returncode == 0 else None

    def deps(self, service: str) -> dict[str, str]:
        raw = self.services[service].get("depends_on") or {}
        if isinstance(raw, list):
            return dict.fromkeys(raw, "service_started")
        return {d: (v or {}).get("condition", "service_started") for d, v in raw.items()}

    def is_job(self, service: str) -> bool:
        """A one-shot job: something waits for it to complete successfully."""
        return any(
            self.deps(other).get(service) == "service_completed_successfully"
            for other in self.services
        )

    def status(self, service: str, condition: str) -> str:
        """'ok', 'wait' or 'fail: why'."""
        st = self.state(service)
        if st is None:
            return "wait"
        running = st.get("Running", False)
        if condition == "service_completed_successfully":
            if running or st.get("Status") in ("created", "configured"):
                return "wait"
            code = st.get("ExitCode")
            return "ok" if code == 0 else f"fail: exited with {code}"
        if not running:
            if st.get("Status") in ("created", "configured"):
                return "wait"
            return f"fail: not running ({st.get('Status')}, exit {st.get('ExitCode')})"
        if condition == "service_started":
            return "ok"
        if "healthcheck" not in self.services[service]:
            return "fail: no healthcheck to be healthy by"
        check = sh(["podman", "healthcheck", "run", self.container(service)], check=False)
        return "ok" if check.returncode == 0 else "wait"

    def logs(self, service: str, lines: int = 40) -> str:
        out = sh(["podman", "logs", "--tail", str(lines), self.container(service)], check=False)
        return (out.stdout + out.stderr).strip()

    def up(self, services: list[str]) -> None:
        now = time.monotonic()
        result = sh([*self.base, "up", "-d", "--no-deps", *services], check=False)
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"compose-up: podman-compose up {' '.join(services)} failed")
        for s in services:
            self.started_at[s] = now


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--podman-compose", default="podman-compose")
    parser.add_argument("compose_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    compose_args = [a for a in args.compose_args if a != "--"]
    project = Project(args.project, compose_args, args.podman_compose)
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    pending = set(project.services)
    satisfied: dict[tuple[str, str], bool] = {}

    def condition_met(dep: str, condition: str) -> bool:
        key = (dep, condition)
        if satisfied.get(key):
            return True
        status = project.status(dep, condition)
        if status.startswith("fail"):
            print(
                f"compose-up: {dep} cannot satisfy {condition}: {status}\n{project.logs(dep)}",
                file=sys.stderr,
            )
            raise SystemExit(1)
        satisfied[key] = status == "ok"
        if satisfied[key]:
            print(
                f"compose-up: [{time.monotonic() - t0:6.1f} s] {dep}: "
                f"{condition.removeprefix('service_')}",
                flush=True,
            )
        return satisfied[key]

    while pending:
        if time.monotonic() > deadline:
            waiting = {
                s: {d: c for d, c in project.deps(s).items() if not satisfied.get((d, c))}
                for s in pending
            }
            print(f"compose-up: timed out; waiting: {waiting}", file=sys.stderr)
            for s in {d for w in waiting.values() for d in w}:
                print(f"--- {s}\n{project.logs(s)}", file=sys.stderr)
            return 1
        ready = sorted(
            s for s in pending if all(condition_met(d, c) for d, c in project.deps(s).items())
        )
        if ready:
            print(
                f"compose-up: [{time.monotonic() - t0:6.1f} s] starting {' '.join(ready)}",
                flush=True,
            )
            project.up(ready)
            pending -= set(ready)
        else:
            time.sleep(2)

    # Everything is started: every service must end up healthy, every job exited 0.
    final = {
        s: ("service_completed_successfully" if project.is_job(s) else "service_healthy")
        for s in project.services
    }
    while True:
        left = [s for s, c in final.items() if not condition_met(s, c)]
        if not left:
            break
        if time.monotonic() > deadline:
            print(f"compose-up: timed out waiting for {left}", file=sys.stderr)
            for s in left:
                print(f"--- {s}\n{project.logs(s)}", file=sys.stderr)
            return 1
        time.sleep(2)
    print(
        f"compose-up: [{time.monotonic() - t0:6.1f} s] "
        f"all {len(final)} services healthy or completed",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
