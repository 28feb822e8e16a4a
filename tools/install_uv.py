#!/usr/bin/env python3
"""Install uv for this repository without touching the system Python; print its path.

Works on a stock Debian/Ubuntu Python (PEP 668 "externally managed": no ``pip install --user``),
on macOS and inside an active virtualenv. Nothing lands outside ``.tools/`` (git-ignored):

1. a uv already on ``PATH`` is used as it is;
2. otherwise a private virtualenv ``.tools/uv`` with pip installs the ``uv`` package;
3. where ``venv``/``ensurepip`` is missing (Debian without ``python3-venv``), the uv wheel for
   this platform is fetched from PyPI with the standard library, checked against the sha256
   PyPI publishes, and its binary unpacked to ``.tools/bin/uv``.

Standard library only: it runs before anything of the project is installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
VENV = TOOLS / "uv"
WHEEL_BIN = TOOLS / "bin" / "uv"
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def _venv_uv() -> Path:
    return VENV / ("Scripts/uv.exe" if os.name == "nt" else "bin/uv")


def _works(binary: Path | str) -> bool:
    try:
        subprocess.run([str(binary), "--version"], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _from_venv() -> Path | None:
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(VENV)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "uv"], check=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(
            f"install_uv: a private virtualenv did not work ({exc}); trying the wheel",
            file=sys.stderr,
        )
        shutil.rmtree(VENV, ignore_errors=True)
        return None
    return _venv_uv() if _works(_venv_uv()) else None


def _platform_markers() -> tuple[str, ...]:
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
    system = platform.system()
    if system == "Linux":
        return ("manylinux", arch.get(machine, machine))
    if system == "Darwin":
        return ("macosx", "arm64" if machine in ("arm64", "aarch64") else "x86_64")
    raise SystemExit(f"install_uv: no uv wheel fallback for {system}; install uv yourself")


def _from_wheel() -> Path:
    json_url = INDEX.removesuffix("/simple") + "/pypi/uv/json"
    with urllib.request.urlopen(json_url, timeout=60) as response:  # noqa: S310 - the index
        release = json.load(response)
    markers = _platform_markers()
    candidates = [
        f
        for f in release["urls"]
        if f["packagetype"] == "bdist_wheel" and all(m in f["filename"] for m in markers)
    ]
    if not candidates:
        raise SystemExit(f"install_uv: no uv wheel for {markers} in {json_url}")
    chosen = candidates[0]
    wheel_url = urllib.parse.urljoin(json_url, chosen["url"])  # mirrors answer relative URLs
    with urllib.request.urlopen(wheel_url, timeout=300) as response:  # noqa: S310
        data = response.read()
    if hashlib.sha256(data).hexdigest() != chosen["digests"]["sha256"]:
        raise SystemExit(f"install_uv: {chosen['filename']} does not match its sha256")
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(("/scripts/uv", "/scripts/uv.exe")))
        WHEEL_BIN.parent.mkdir(parents=True, exist_ok=True)
        WHEEL_BIN.write_bytes(wheel.read(member))
    WHEEL_BIN.chmod(WHEEL_BIN.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return WHEEL_BIN


def main() -> None:
    on_path = shutil.which("uv")
    for existing in (on_path, _venv_uv(), WHEEL_BIN):
        if existing and _works(existing):
            print(existing)
            return
    TOOLS.mkdir(exist_ok=True)
    uv = _from_venv() or _from_wheel()
    if not _works(uv):
        raise SystemExit(f"install_uv: {uv} does not run")
    print(uv)


if __name__ == "__main__":
    main()
