"""The committed OpenAPI document generates a TypeScript client that compiles under
``tsc --strict``: what a frontend team does first (``openapi-typescript`` + ``openapi-fetch``).

Needs Node and the npm registry; without either the test is skipped, saying which is missing.
Everything happens in a temporary directory (nothing is installed into the repository).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "openapi" / "openapi.json"
PACKAGES = ["openapi-typescript@7", "openapi-fetch@0.17", "typescript@5"]

#: A small client as a frontend would write it: sign in, send events, list at-risk customers,
#: read a problem. Any mismatch between the document and these uses fails to compile.
USAGE = """
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });

export async function atRisk(email: string, password: string): Promise<string[] | Problem> {
  const login = await client.POST("/v1/auth/login", { body: { email, password } });
  if (login.error) {
    return login.error;
  }
  const headers = { authorization: `Bearer ${login.data.access_token}` };
  const sent = await client.POST("/v1/events", {
    headers,
    body: {
      events: [
        {
          event_id: "e-1",
          customer_id: "c-42",
          type: "order_placed",
          occurred_at: "2026-11-01T10:00:00Z",
          properties: { amount: 59.9 },
        },
      ],
    },
  });
  if (sent.error) {
    return sent.error;
  }
  const accepted: number = sent.data.accepted;
  const page = await client.GET("/v1/customers", {
    headers,
    params: { query: { sort: "-churn_probability" } },
  });
  if (page.error) {
    return page.error;
  }
  return page.data.items
    .filter((c) => (c.churn_probability ?? 0) > 0.5 && accepted >= 0)
    .map((c) => c.customer_id);
}
"""

TSCONFIG = """{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "skipLibCheck": false,
    "lib": ["ES2022", "DOM"]
  },
  "files": ["usage.ts", "schema.d.ts"]
}
"""


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_openapi_document_generates_a_strict_typescript_client(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    npx = shutil.which("npx")
    if npm is None or npx is None or shutil.which("node") is None:
        pytest.skip("TypeScript client NOT checked: Node.js (node, npm, npx) is not installed")
    registry = _run([npm, "view", "openapi-typescript", "version"], tmp_path, timeout=60)
    if registry.returncode != 0:
        pytest.skip(
            "TypeScript client NOT checked: the npm registry cannot be reached: "
            + registry.stderr.strip()[-300:]
        )
    assert _run([npm, "init", "-y"], tmp_path).returncode == 0
    install = _run([npm, "install", "--no-audit", "--no-fund", *PACKAGES], tmp_path, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    generate = _run([npx, "openapi-typescript", str(DOCUMENT), "-o", "schema.d.ts"], tmp_path)
    assert generate.returncode == 0, generate.stdout[-3000:] + generate.stderr[-3000:]
    (tmp_path / "usage.ts").write_text(USAGE)
    (tmp_path / "tsconfig.json").write_text(TSCONFIG)
    compiled = _run([npx, "tsc", "-p", "."], tmp_path)
    assert compiled.returncode == 0, compiled.stdout[-5000:] + compiled.stderr[-2000:]
