"""The package's stack: one running platform shared by the security modules (see _stack.py).

``embedded`` always; ``mysql`` (MariaDB + Redis) too when ``CHURN_TEST_MYSQL_URL`` and
``CHURN_TEST_REDIS_URL`` are set, as in tests/e2e.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from churn_cli.launcher import Stack
from tests.security._stack import MODES, dump_logs, start_stack


@pytest.fixture(scope="package", params=MODES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    running = start_stack(request, tmp_path_factory, request.param)
    failed_before = request.session.testsfailed
    yield running
    running.stop()
    if request.session.testsfailed > failed_before:
        dump_logs(running.config.data_dir)
