"""`churn up`'s options reach the launcher's configuration (without starting anything)."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churn_cli import launcher
from churn_cli.main import app


class _FakeStack:
    configs: list[launcher.StackConfig] = []

    def __init__(self, config: launcher.StackConfig) -> None:
        self.configs.append(config)
        self.config = config
        self.gateway_url = "http://127.0.0.1:1"
        self.log_dir = config.data_dir / "logs"
        self.kafka_bootstrap = "127.0.0.1:2"
        self.ports = {"gateway": 1}

    def start(self) -> None:
        return None

    def alive(self) -> dict[str, bool]:
        return {"gateway": False}  # ends `churn up` at once

    def stop(self) -> None:
        return None


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[launcher.StackConfig]]:
    _FakeStack.configs = []
    monkeypatch.setattr(launcher, "Stack", _FakeStack)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield _FakeStack.configs
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.parametrize(("args", "dev_mode"), [([], True), (["--no-dev-mode"], False)])
def test_dev_mode_flag_reaches_the_stack(
    tmp_path: Path, fake_stack: list[launcher.StackConfig], args: list[str], dev_mode: bool
) -> None:
    result = CliRunner().invoke(app, ["up", "--port", "0", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert [c.dev_mode for c in fake_stack] == [dev_mode]


def test_help_says_what_no_dev_mode_changes() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = " ".join(_plain(result.output).split())
    assert "--no-dev-mode" in text
    assert "webhook" in text
    assert "CHURN_<SERVICE>_DEV_MODE" in text


@pytest.mark.parametrize("command", ["up", "train", "openapi"])
def test_help_shows_flags_without_a_value(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = _plain(result.output)
    assert "--help" in text
    assert "<bool>" not in text  # a flag takes no value: `--json`, not `--json <bool>`


def test_the_start_up_lines_keep_each_url_whole(
    tmp_path: Path, fake_stack: list[launcher.StackConfig]
) -> None:
    long_dir = tmp_path / ("d" * 60)
    result = CliRunner().invoke(
        app, ["up", "--port", "0", "--data-dir", str(long_dir)], env={"COLUMNS": "60"}
    )
    assert result.exit_code == 0, result.output
    lines = _plain(result.output).splitlines()
    for url in ("http://127.0.0.1:1/docs", "http://127.0.0.1:1/socket.io/", str(long_dir)):
        assert any(url in line for line in lines), (url, lines)
