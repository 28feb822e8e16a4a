"""The gateway against its own OpenAPI document, as a third-party client sees it: schemathesis
generates requests for every operation (schema examples, boundary and negative cases, random
fuzzing) and checks every answer. The platform must give no server error and no conformance
failure: statuses, content types, headers and bodies as documented, schema-violating input
refused, authentication enforced, 405s with their Allow header.

Left out: ``positive_data_acceptance``, which expects every schema-valid request to succeed;
some rules need the tenant's data and cannot be put in a schema (a cursor the server issued, a
label column that was imported, a cutoff before the latest event, an assignee who exists, a
password on the common-passwords list), and those answer 4xx with a problem saying why. The
signing-key rotation is left out too: it would invalidate the run's own token midway.

Bounded so it takes about two minutes: the schema's examples, the coverage phase (every
operation's boundary, missing, wrong-type and negative cases, deterministic) and the stateful
phase (scenarios that follow the document's links: create a customer, cohort, channel, API key
or user, then read, change and delete it), a fixed seed. Random fuzzing triples the time;
``CHURN_SCHEMATHESIS_PHASES=examples,coverage,fuzzing,stateful`` and
``CHURN_SCHEMATHESIS_EXAMPLES`` run a deeper pass locally.

With ``CHURN_TEST_MYSQL_URL`` and ``CHURN_TEST_REDIS_URL`` set, a second stack on MariaDB and
Redis runs the examples and the stateful scenarios (where the two backends differ: constraint
errors, concurrent writes, what a created row reads back as); the coverage phase checks the
request validation, which does not depend on the database, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from churn_cli.launcher import Stack
from tests.security._stack import MODES, dump_logs, start_stack

# About two and a half minutes on a quiet machine (eight on two cores at load 18): the margin
# is for a loaded CI runner.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

EXAMPLES = os.environ.get("CHURN_SCHEMATHESIS_EXAMPLES", "4")
PHASES = {
    "embedded": os.environ.get("CHURN_SCHEMATHESIS_PHASES", "examples,coverage,stateful"),
    "mysql": os.environ.get("CHURN_SCHEMATHESIS_MYSQL_PHASES", "examples,stateful"),
}
SEED = "20261201"
PASSWORD = "conformance passphrase 7"
#: The stateful phase: scenarios of up to ``max-steps`` linked calls (the command line's
#: ``--max-examples`` would allow only a handful of scenarios).
CONFIG = """
[phases.stateful]
max-steps = 8

[phases.stateful.generation]
max-examples = 60
"""


@pytest.fixture(scope="module", params=MODES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    running = start_stack(request, tmp_path_factory, request.param)
    failed_before = request.session.testsfailed
    yield running
    running.stop()
    if request.session.testsfailed > failed_before:
        dump_logs(running.config.data_dir)


def _owner_token(gateway: str) -> str:
    email = f"owner-{uuid.uuid4().hex[:8]}@conformance.example"
    with httpx.Client(base_url=gateway, timeout=30) as http:
        registered = http.post(
            "/v1/auth/register",
            json={"tenant_name": "Conformance", "email": email, "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        login = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
    return token


def test_the_gateway_conforms_to_its_openapi_document(
    stack: Stack, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mode = request.node.callspec.params["stack"]
    token = _owner_token(stack.gateway_url)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{stack.gateway_url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--wait-for-schema",
        "120",
        "--phases",
        PHASES[mode],
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--exclude-path-regex",
        "^/v1/auth/keys",
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, timeout=900, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]
    # The run tested the operations (a broken document would "pass" with nothing tested).
    assert "Tested: " in output, output[-3000:]
    tested = int(output.split("Tested: ", 1)[1].split()[0])
    # Without the coverage phase, operations without examples or links are not reached.
    assert tested >= (60 if "coverage" in PHASES[mode] else 30), output[-3000:]
    if "stateful" in PHASES[mode]:
        # The scenarios followed the links: "API Links: <covered> covered / ...".
        covered = int(output.split("API Links:", 1)[1].split()[0])
        # A floor, not a figure: with the same seed, runs covered 9 to 11 links (which
        # scenarios finish in the time box depends on the host); none means the links broke.
        assert covered >= 8, output[-3000:]
