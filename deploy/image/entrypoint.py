#!/usr/bin/env python3
"""Entry point of the churn platform image: load secrets from files, then run one component.

Usage (the container's command)::

    gateway | auth | customers | prediction | alerts   serve the HTTP API on $PORT (8000)
    worker <customers|alerts>                          run the service's Kafka consumers only
    migrate <auth|customers|prediction|alerts>         apply the service's migrations, exit
    topics                                             create the topics and DLQs, exit
    churn <args...>                                    the command line
    <anything else>                                    exec'd as is

Settings come from the environment (``CHURN_<SERVICE>_<SETTING>``). Secrets need not be in it:

* every regular file named ``CHURN_*`` in ``$CHURN_SECRETS_DIR`` (default
  ``/run/secrets/churn``, e.g. a Kubernetes Secret mounted as a volume) sets that variable;
* ``CHURN_<NAME>_FILE=/path`` sets ``CHURN_<NAME>`` from the file (Docker/compose secrets);
* ``CHURN_<SERVICE>_DATABASE_PASSWORD`` (usually via ``..._PASSWORD_FILE``) is put into
  ``CHURN_<SERVICE>_DATABASE_URL`` as its password, percent-encoded, and then removed.

Later sources win: plain environment < secrets directory < ``_FILE``. Values are stripped of
one trailing newline. The process is replaced (``exec``): it is PID 1 and gets the signals.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

SERVICES = ("auth", "customers", "prediction", "alerts")
HTTP_COMPONENTS = ("gateway", *SERVICES)
#: Services whose consumers can run apart from their API (``python -m churn_<svc>.worker``).
WORKERS = ("customers", "alerts")
_NAME = re.compile(r"^CHURN_[A-Z0-9_]+$")


def _fail(message: str) -> None:
    print(f"entrypoint: {message}", file=sys.stderr, flush=True)
    raise SystemExit(64)


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read secret file {path}: {exc.strerror}")
    return text[:-1] if text.endswith("\n") else text


def load_secrets(env: dict[str, str]) -> None:
    directory = Path(env.get("CHURN_SECRETS_DIR", "/run/secrets/churn"))
    if directory.is_dir():
        for entry in sorted(directory.iterdir()):
            if _NAME.match(entry.name) and entry.is_file():
                env[entry.name] = _read(entry)
    for key in sorted(k for k in env if k.startswith("CHURN_") and k.endswith("_FILE")):
        target = key[: -len("_FILE")]
        if key == "CHURN_SECRETS_DIR" or not _NAME.match(target):
            continue
        env[target] = _read(Path(env.pop(key)))
    for name in (*SERVICES, "gateway"):
        password_key = f"CHURN_{name.upper()}_DATABASE_PASSWORD"
        if password_key not in env:
            continue
        password = env.pop(password_key)
        url_key = f"CHURN_{name.upper()}_DATABASE_URL"
        if url_key not in env:
            _fail(f"{password_key} is set but {url_key} is not")
        env[url_key] = _with_password(env[url_key], password)


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    if not parts.username:
        _fail("the database URL must name its user to receive a password")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{quote(parts.username, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def command(argv: list[str], env: dict[str, str]) -> list[str]:
    if not argv:
        argv = ["gateway"]
    what, rest = argv[0], argv[1:]
    python = sys.executable
    if what in HTTP_COMPONENTS:
        module = "churn_gateway" if what == "gateway" else f"churn_{what}"
        return [
            python, "-m", "uvicorn", "--factory", f"{module}.main:app_from_env",
            "--host", env.get("HOST", "0.0.0.0"), "--port", env.get("PORT", "8000"),
            "--no-access-log", "--log-level", env.get("UVICORN_LOG_LEVEL", "warning"),
            "--timeout-graceful-shutdown", env.get("GRACEFUL_SHUTDOWN_SECONDS", "20"),
            *rest,
        ]  # fmt: skip
    if what == "worker":
        if len(rest) != 1 or rest[0] not in WORKERS:
            _fail(f"usage: worker <{'|'.join(WORKERS)}>")
        return [python, "-m", f"churn_{rest[0]}.worker"]
    if what == "migrate":
        if len(rest) != 1 or rest[0] not in SERVICES:
            _fail(f"usage: migrate <{'|'.join(SERVICES)}>")
        return [python, "/app/bin/migrate.py", rest[0]]
    if what == "topics":
        return [python, "/app/bin/topics.py", *rest]
    if what == "churn":
        return [str(Path(python).with_name("churn")), *rest]
    return argv


def main() -> None:
    env = dict(os.environ)
    load_secrets(env)
    argv = command(sys.argv[1:], env)
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the container's own command
    except OSError as exc:
        _fail(f"cannot run {argv[0]}: {exc.strerror}")


if __name__ == "__main__":
    main()
