"""The committed AsyncAPI document is current and valid AsyncAPI 3.

Drift: the document is regenerated from the contracts and compared (``make lint`` runs the same
check through ``churn asyncapi --check``). Validity: the AsyncAPI initiative's own parser
(``@asyncapi/parser``, the one their CLI and Studio use) must find no error. It needs Node.js
and npm; where they are missing the validity test is skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from churn_cli.asyncapi import build_asyncapi
from churn_cli.spec import render

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "asyncapi" / "asyncapi.json"
NODE_TOOLS = ROOT / ".tools" / "node"
VALIDATE = """
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';
const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[2], 'utf8'));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of errors) console.log(d.code, d.message, JSON.stringify(d.path));
console.log(`errors=${errors.length} parsed=${Boolean(document)}`);
process.exit(errors.length || !document ? 1 : 0);
"""


def test_the_committed_document_matches_the_contracts() -> None:
    assert DOCUMENT.read_text() == render(build_asyncapi()), "run `uv run churn asyncapi`"


def test_every_topic_and_live_event_is_documented() -> None:
    from churn_gateway.events.handlers import LIVE_EVENTS
    from churn_shared.contracts import EVENT_CONTRACTS

    document = json.loads(DOCUMENT.read_text())
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {c.topic for c in EVENT_CONTRACTS} <= addresses
    assert {f"{c.topic}.dlq" for c in EVENT_CONTRACTS} <= addresses
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert {c.event_type for c in EVENT_CONTRACTS} <= names
    assert set(LIVE_EVENTS.values()) <= names


def test_the_document_is_valid_asyncapi_3() -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("Node.js/npm not installed: the AsyncAPI parser cannot run here")
    if not (NODE_TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_TOOLS),
                "@asyncapi/parser@3",
            ],
            check=True,
            timeout=600,
        )
    script = NODE_TOOLS / "validate-asyncapi.mjs"
    script.write_text(VALIDATE)
    result = subprocess.run(
        ["node", str(script), str(DOCUMENT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "errors=0 parsed=true" in result.stdout
