"""The container image's entrypoint: secrets from files, and the command for each component."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

IMAGE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "image"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"churn_image_{name}", IMAGE_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load("entrypoint")
healthcheck = _load("healthcheck")


def test_secrets_dir_sets_variables_named_by_files(tmp_path: Path) -> None:
    secrets = tmp_path / "churn"
    secrets.mkdir()
    (secrets / "CHURN_AUTH_SIGNING_KEY_PASSPHRASE").write_text("s3cret\n")
    (secrets / "..data").mkdir()  # what a Kubernetes Secret volume also holds
    (secrets / "not-a-variable").write_text("ignored")
    env = {"CHURN_SECRETS_DIR": str(secrets), "CHURN_AUTH_SIGNING_KEY_PASSPHRASE": "plain"}
    entrypoint.load_secrets(env)
    assert env["CHURN_AUTH_SIGNING_KEY_PASSPHRASE"] == "s3cret"
    assert "not-a-variable" not in env


def test_file_variable_wins_over_the_directory_and_is_removed(tmp_path: Path) -> None:
    secrets = tmp_path / "churn"
    secrets.mkdir()
    (secrets / "CHURN_GATEWAY_CACHE_URL").write_text("redis://dir:6379/0")
    explicit = tmp_path / "cache"
    explicit.write_text("redis://file:6379/0\n")
    env = {"CHURN_SECRETS_DIR": str(secrets), "CHURN_GATEWAY_CACHE_URL_FILE": str(explicit)}
    entrypoint.load_secrets(env)
    assert env["CHURN_GATEWAY_CACHE_URL"] == "redis://file:6379/0"
    assert "CHURN_GATEWAY_CACHE_URL_FILE" not in env


def test_database_password_is_percent_encoded_into_the_url(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("p@ss:w/rd%\n")
    env = {
        "CHURN_SECRETS_DIR": str(tmp_path / "absent"),
        "CHURN_CUSTOMERS_DATABASE_URL": "mysql+aiomysql://churn_customers@mariadb:3306/churn_customers?charset=utf8mb4",
        "CHURN_CUSTOMERS_DATABASE_PASSWORD_FILE": str(password),
    }
    entrypoint.load_secrets(env)
    assert env["CHURN_CUSTOMERS_DATABASE_URL"] == (
        "mysql+aiomysql://churn_customers:p%40ss%3Aw%2Frd%25@mariadb:3306/churn_customers"
        "?charset=utf8mb4"
    )
    assert "CHURN_CUSTOMERS_DATABASE_PASSWORD" not in env


def test_a_password_without_its_url_is_an_error(tmp_path: Path) -> None:
    env = {"CHURN_SECRETS_DIR": str(tmp_path), "CHURN_AUTH_DATABASE_PASSWORD": "x"}
    with pytest.raises(SystemExit):
        entrypoint.load_secrets(env)


def test_an_unreadable_secret_file_is_an_error(tmp_path: Path) -> None:
    env = {"CHURN_SECRETS_DIR": str(tmp_path), "CHURN_AUTH_X_FILE": str(tmp_path / "missing")}
    with pytest.raises(SystemExit):
        entrypoint.load_secrets(env)


def test_commands() -> None:
    env = {"PORT": "9000"}
    api = entrypoint.command(["prediction"], env)
    assert api[1:5] == ["-m", "uvicorn", "--factory", "churn_prediction.main:app_from_env"]
    assert api[api.index("--port") + 1] == "9000"
    assert entrypoint.command([], env)[4] == "churn_gateway.main:app_from_env"
    assert entrypoint.command(["worker", "alerts"], env)[1:] == ["-m", "churn_alerts.worker"]
    assert entrypoint.command(["migrate", "auth"], env)[1:] == ["/app/bin/migrate.py", "auth"]
    assert entrypoint.command(["topics"], env)[1:] == ["/app/bin/topics.py"]
    assert entrypoint.command(["churn", "--help"], env)[0].endswith("churn")
    assert entrypoint.command(["sh", "-c", "true"], env) == ["sh", "-c", "true"]
    for bad in (["worker", "auth"], ["worker"], ["migrate", "gateway"]):
        with pytest.raises(SystemExit):
            entrypoint.command(bad, env)


def test_every_service_has_a_worker_or_runs_its_consumers_in_the_api() -> None:
    for service in entrypoint.WORKERS:
        assert importlib.util.find_spec(f"churn_{service}.worker") is not None
    assert set(entrypoint.SERVICES) <= {"auth", "customers", "prediction", "alerts"}


def test_healthcheck_reads_broker_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_ALERTS_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093,kafka-1:9094")
    assert {9093, 9094} <= healthcheck._broker_ports()


def test_migrations_ship_inside_each_service_package() -> None:
    for service in ("auth", "customers", "prediction", "alerts"):
        spec = importlib.util.find_spec(f"churn_{service}")
        assert spec is not None
        assert spec.origin is not None
        assert (Path(spec.origin).parent / "migrations" / "env.py").is_file()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
