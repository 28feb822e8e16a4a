"""Starting the whole platform (launcher, as ``churn up``), tuned for the security suite.

``embedded``: SQLite, the launcher's Tansu broker, in-process caches. ``mysql``: one MariaDB
database per service, Redis and the module's broker — only when ``CHURN_TEST_MYSQL_URL`` and
``CHURN_TEST_REDIS_URL`` are set (as in tests/e2e). One stack serves the whole package; modules
that need other settings (short token lifetimes) start their own with :func:`start_stack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from churn_cli.launcher import SERVICES, Stack, StackConfig

MYSQL_TEMPLATE = os.environ.get("CHURN_TEST_MYSQL_URL", "")
REDIS_URL = os.environ.get("CHURN_TEST_REDIS_URL", "")
MODES = ["embedded"] + (["mysql"] if MYSQL_TEMPLATE and REDIS_URL else [])

#: Rate limits off (the suite logs in a lot from one address); API-key caches short so that a
#: revoked key is seen quickly (the production bound is 60 s).
BASE_ENV: dict[str, str] = {
    "CHURN_GATEWAY_RATE_LIMIT_ENABLED": "false",
    "CHURN_AUTH_RATE_LIMIT_ENABLED": "false",
    "CHURN_GATEWAY_API_KEY_CACHE_SECONDS": "2",
    "CHURN_PREDICTION_API_KEY_CACHE_SECONDS": "2",
}


def start_stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    extra_env: Mapping[str, str] | None = None,
) -> Stack:
    data_dir = tmp_path_factory.mktemp(f"security-{mode}")
    env = {**BASE_ENV, **(extra_env or {})}
    if mode == "embedded":
        config = StackConfig(data_dir=data_dir, extra_env=env)
    else:
        from testkit import reset_mysql, tansu_broker

        for service in SERVICES:
            asyncio.run(reset_mysql(MYSQL_TEMPLATE.format(service=service)))
        # The package's own broker: the root ``kafka_bootstrap`` is module-scoped, narrower
        # than this package-scoped stack.
        broker = contextlib.ExitStack()
        bootstrap = broker.enter_context(tansu_broker())
        request.addfinalizer(broker.close)
        config = StackConfig(
            data_dir=data_dir,
            kafka_bootstrap=bootstrap,
            mysql_url_template=MYSQL_TEMPLATE,
            cache_url=REDIS_URL,
            extra_env=env,
        )
    stack = Stack(config)
    try:
        stack.start()
    except BaseException:
        dump_logs(data_dir)
        raise
    return stack


def dump_logs(data_dir: Path) -> None:
    for log in sorted((data_dir / "logs").glob("*.log")):
        print(f"===== {log.name} (last 40 lines) =====")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
