"""Fixtures of the prediction tests (the root conftest gives broker, databases, tokens)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from churn_prediction.config import Settings


@pytest.fixture
def service_name() -> str:
    return "prediction"


@pytest.fixture
def make_settings(database_url: str, kafka_bootstrap: str) -> Callable[..., Settings]:
    """Settings for one test app: the test's database, the module's broker, no workers."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": SecretStr(database_url),
            "kafka_bootstrap_servers": kafka_bootstrap,
            "run_workers": False,
            "log_json": False,
            "log_level": "WARNING",
            "customers_url": "http://customers.test",
        }
        values.update(overrides)
        return Settings(**values)

    return make
