"""The launcher behind `churn up` and the end-to-end tests: ports that cannot be stolen between
choosing and starting, the environment's dev-mode setting, and the order of shutdown."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from churn_cli import launcher
from churn_cli.launcher import SERVICES, Stack, StackConfig


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port that another process (a second stack, say) holds and listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode().partition("=") for item in raw if item)
    return {key: value for key, _, value in pairs}


def test_stack_comes_up_when_chosen_ports_are_taken_before_start(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another stack grabs the port between choosing it and starting on it, twice; the broker
    retries on a new port, and the services and gateway never leave a window to steal."""
    real_free_port = launcher.free_port
    calls = []

    def racy_free_port(host: str = "127.0.0.1") -> int:
        calls.append(host)
        return held_port if len(calls) <= 2 else real_free_port(host)

    monkeypatch.setattr(launcher, "free_port", racy_free_port)
    monkeypatch.setenv("CHURN_ALERTS_DEV_MODE", "false")
    stack = Stack(StackConfig(data_dir=tmp_path, ready_timeout=180))

    order: list[tuple[str, bool]] = []
    real_signal = launcher._signal

    def recording_signal(proc: launcher._Process, sig: signal.Signals) -> None:
        # When the broker is told to stop, has every service and the gateway already exited?
        others = [p for p in stack._processes if p.name != "broker"]
        order.append((proc.name, all(p.popen.poll() is not None for p in others)))
        real_signal(proc, sig)

    monkeypatch.setattr(launcher, "_signal", recording_signal)
    with stack:
        assert httpx.get(f"{stack.gateway_url}/readyz", timeout=10).status_code == 200
        assert all(stack.alive().values()), stack.alive()
        used = {*stack.ports.values(), int(stack.kafka_bootstrap.rsplit(":", 1)[1])}
        assert held_port not in used
        assert len(used) == len(SERVICES) + 2
        pids = {p.name: p.popen.pid for p in stack._processes}
        assert _environ(pids["alerts"])["CHURN_ALERTS_DEV_MODE"] == "false"
        assert _environ(pids["customers"])["CHURN_CUSTOMERS_DEV_MODE"] == "true"

    broker_signals = [done for name, done in order if name == "broker"]
    assert broker_signals == [True], order
    assert order[-1][0] == "broker", order


def test_broker_retries_on_a_new_port_when_its_port_is_taken(
    tmp_path: Path, held_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tansu takes a URL, so it cannot be handed a socket: when the port it was given is taken
    it exits at once (with status 0), and something else answers on that port."""
    ports = iter([held_port])
    real_free_port = launcher.free_port
    monkeypatch.setattr(
        launcher, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port(host)
    )
    stack = Stack(StackConfig(data_dir=tmp_path))
    stack.log_dir.mkdir(parents=True)
    try:
        stack._start_broker()
        broker = [p for p in stack._processes if p.name == "broker"]
        assert len(broker) == 1
        assert broker[0].popen.poll() is None
        assert stack.kafka_bootstrap != f"127.0.0.1:{held_port}"
    finally:
        stack.stop()


def test_explicit_dev_mode_in_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_ALERTS_DEV_MODE", "false")
    monkeypatch.setenv("CHURN_AUTH_DEV_MODE", "true")
    stack = Stack(StackConfig(data_dir=tmp_path, dev_mode=True))
    stack.ports = {name: 1000 + i for i, name in enumerate((*SERVICES, "gateway"))}
    assert stack.service_env("alerts")["CHURN_ALERTS_DEV_MODE"] == "false"
    assert stack.service_env("customers")["CHURN_CUSTOMERS_DEV_MODE"] == "true"

    stack = Stack(StackConfig(data_dir=tmp_path, dev_mode=False))
    stack.ports = {name: 1000 + i for i, name in enumerate((*SERVICES, "gateway"))}
    assert stack.service_env("auth")["CHURN_AUTH_DEV_MODE"] == "true"
    assert stack.service_env("customers")["CHURN_CUSTOMERS_DEV_MODE"] == "false"
    assert stack.service_env("gateway")["CHURN_GATEWAY_DEV_MODE"] == "false"


def test_two_stacks_started_at_once_both_come_up(tmp_path: Path) -> None:
    """Tests in parallel or a developer's second terminal: two stacks starting concurrently."""
    stacks = [Stack(StackConfig(data_dir=tmp_path / n, ready_timeout=240)) for n in ("a", "b")]
    errors: list[BaseException] = []

    def start(stack: Stack) -> None:
        try:
            stack.start()
        except BaseException as exc:  # reported below, with the other stack's outcome
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stacks]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        for stack in stacks:
            assert httpx.get(f"{stack.gateway_url}/readyz", timeout=10).status_code == 200
        assert not set(stacks[0].ports.values()) & set(stacks[1].ports.values())
        assert stacks[0].kafka_bootstrap != stacks[1].kafka_bootstrap
    finally:
        for stack in stacks:
            stack.stop()


def test_a_taken_gateway_port_falls_back_only_when_allowed(tmp_path: Path, held_port: int) -> None:
    stack = Stack(StackConfig(data_dir=tmp_path, gateway_port=held_port))
    with pytest.raises(OSError, match="in use"):
        stack._bind_gateway()
    stack = Stack(
        StackConfig(data_dir=tmp_path, gateway_port=held_port, gateway_port_fallback=True)
    )
    with stack._bind_gateway() as sock:
        assert sock.getsockname()[1] != held_port
