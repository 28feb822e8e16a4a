"""Run the Kubernetes dev overlay's pod templates with ``podman kube play`` until ready.

Input: the rendered overlay (``kubectl kustomize k8s/overlays/dev``). For every Deployment of
the platform (not the in-cluster data stores: the compose file's MariaDB, Redis and Kafka stand
in for them, on the compose network under the same names) and every Job, the pod template is
played as written — image, command, environment, security context, resources and probes — with
only what a podman host needs instead of a cluster, all test-only:

* the pod joins the compose network with its Service name as DNS alias (``auth``, ...);
* each container port gets ``hostIP: 127.0.0.1`` and a free ``hostPort`` (podman 4.3 would
  otherwise publish the container port itself on every interface of the host);
* Secret volumes become read-only host directories holding the Secret's decoded keys (podman
  4.3 writes Secret volume files base64-encoded and crashes on an unset ``optional``); an
  optional Secret that does not exist becomes an empty directory;
* a Job's template runs as a Pod (kube play ignores Jobs) and must exit 0;
* with ``--compose-secrets DIR``, the database passwords in the URLs and the signing-key
  passphrase are those of the compose project whose data stores the pods share.

Podman 4.3 does not run readiness probes, so this script runs each container's
``readinessProbe`` as the kubelet would (``httpGet`` from inside the pod's network namespace,
``exec`` in the container, ``tcpSocket``) until every one passes. It also checks that the
security context took effect (non-root uid, read-only root filesystem, no-new-privileges, all
capabilities dropped). Every wait is bounded; exits 1 with the pod's logs on failure.

    python kube_play.py --rendered dev.yaml --network NET --workdir DIR [--down] [--timeout S]
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

PART_OF = "app.kubernetes.io/part-of"


def sh(
    argv: list[str], check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, capture_output=True, timeout=timeout)  # noqa: S603


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def platform(doc: dict[str, Any]) -> bool:
    labels = doc["metadata"].get("labels", {})
    return labels.get(PART_OF) == "churn-platform" and "churn/datastore" not in labels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compose_value(key: str, value: str, compose_secrets: Path | None) -> str:
    """The value of Secret key ``key`` for the compose data stores' credentials."""
    if compose_secrets is None:
        return value
    if key == "CHURN_AUTH_SIGNING_KEY_PASSPHRASE":
        return (compose_secrets / "signing_key_passphrase").read_text().strip()
    if key.endswith("_DATABASE_URL"):
        service = key.removeprefix("CHURN_").removesuffix("_DATABASE_URL").lower()
        password = quote((compose_secrets / f"{service}_db_password").read_text().strip(), safe="")
        parts = urlsplit(value)
        netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 3306}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return value


def prepare(
    docs: list[dict[str, Any]], workdir: Path, compose_secrets: Path | None = None
) -> list[tuple[str, str, Path, str]]:
    """Write one YAML per workload; returns (kind, name, file, pod name)."""
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    plays = []
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job") or not platform(doc):
            continue
        name = doc["metadata"]["name"]
        template = doc["spec"]["template"]
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            source = volume.pop("secret", None)
            if source is None:
                continue
            folder = workdir / "secrets" / name / volume["name"]
            folder.mkdir(parents=True, exist_ok=True)
            secret = secrets.get(source["secretName"])
            if secret is None and not source.get("optional"):
                raise SystemExit(
                    f"kube-play: {name} needs Secret {source['secretName']}, not rendered"
                )
            values = {
                k: base64.b64decode(v).decode() for k, v in (secret or {}).get("data", {}).items()
            }
            values.update((secret or {}).get("stringData", {}))
            for key, value in values.items():
                target = folder / key
                target.write_text(compose_value(key, value, compose_secrets))
                target.chmod(0o444)
            volume["hostPath"] = {"path": str(folder), "type": "Directory"}
        used = {
            ref["configMapRef"]["name"]
            for c in spec["containers"]
            for ref in c.get("envFrom", [])
            if "configMapRef" in ref
        }
        out: list[dict[str, Any]] = [configmaps[n] for n in sorted(used)]
        for container in spec["containers"]:
            for port in container.get("ports", []):
                port["hostIP"] = "127.0.0.1"
                port["hostPort"] = free_port()
        if doc["kind"] == "Deployment":
            workload = json.loads(json.dumps(doc))
            workload["spec"]["replicas"] = 1
            out.append(workload)
            pod = f"{name}-pod-0"
        else:
            pod = f"{name}-job"
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod, "labels": template["metadata"].get("labels", {})},
                    "spec": spec,
                }
            )
        path = workdir / f"{doc['kind'].lower()}-{name}.yaml"
        path.write_text(yaml.safe_dump_all(out, sort_keys=False))
        plays.append((doc["kind"], name, path, pod))
    return plays


def containers_of(pod: str) -> dict[str, str]:
    out = sh(["podman", "ps", "-a", "--filter", f"pod={pod}", "--format", "{{.Names}}"])
    return {n.removeprefix(f"{pod}-"): n for n in out.stdout.split() if not n.endswith("-infra")}


def state(container: str) -> dict[str, Any]:
    out = sh(["podman", "inspect", "--format", "{{json .State}}", container])
    return json.loads(out.stdout) if out.returncode == 0 else {}


def probe(container: str, spec: dict[str, Any], probe_spec: dict[str, Any]) -> bool:
    timeout = float(probe_spec.get("timeoutSeconds", 1))
    if "httpGet" in probe_spec:
        get = probe_spec["httpGet"]
        port = get["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in spec.get("ports", []) if p.get("name") == port)
        url = f"{get.get('scheme', 'HTTP').lower()}://127.0.0.1:{port}{get.get('path', '/')}"
        code = (
            "import sys, urllib.request\n"
            f"r = urllib.request.urlopen({url!r}, timeout={timeout})\n"
            "sys.exit(0 if 200 <= r.status < 400 else 1)\n"
        )
        argv = ["podman", "exec", container, "python", "-c", code]
    elif "exec" in probe_spec:
        argv = ["podman", "exec", container, *probe_spec["exec"]["command"]]
    elif "tcpSocket" in probe_spec:
        port = probe_spec["tcpSocket"]["port"]
        code = f"import socket; socket.create_connection(('127.0.0.1', {port}), {timeout}).close()"
        argv = ["podman", "exec", container, "python", "-c", code]
    else:
        raise SystemExit(f"kube-play: unsupported probe {probe_spec}")
    try:
        return sh(argv, timeout=timeout + 10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def security(container: str) -> str:
    out = sh(
        [
            "podman", "inspect", "--format",
            "{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}|"
            "{{json .HostConfig.SecurityOpt}}|{{json .EffectiveCaps}}",
            container,
        ]
    )  # fmt: skip
    user, readonly, secopt, caps = out.stdout.strip().split("|")
    problems = []
    if user.split(":")[0] in ("", "0", "root"):
        problems.append(f"user {user!r}")
    if readonly != "true":
        problems.append("root filesystem writable")
    if "no-new-privileges" not in secopt:
        problems.append("no no-new-privileges")
    if caps not in ("null", "[]"):
        problems.append(f"capabilities {caps}")
    if problems:
        raise SystemExit(
            f"kube-play: {container}: security context not in effect: {', '.join(problems)}"
        )
    return f"uid {user}, read-only root, no-new-privileges, no capabilities"


def logs(container: str) -> str:
    out = sh(["podman", "logs", "--tail", "30", container])
    return (out.stdout + out.stderr).strip()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rendered", type=Path, required=True)
    parser.add_argument("--network", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=420)
    parser.add_argument("--compose-secrets", type=Path)
    parser.add_argument(
        "--down", action="store_true", help="only remove what a previous run played"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.down:
        for path in sorted(args.workdir.glob("*.yaml")):
            sh(["podman", "kube", "down", str(path)], timeout=120)
        return 0
    for old in args.workdir.glob("*.yaml"):
        old.unlink()
    plays = prepare(load(args.rendered), args.workdir, args.compose_secrets)
    t0 = time.monotonic()
    deadline = t0 + args.timeout

    def say(message: str) -> None:
        print(f"kube-play: [{time.monotonic() - t0:6.1f} s] {message}", flush=True)

    # Jobs first (migrations, topics), as `kubectl wait --for=condition=complete` would be used.
    for kind, name, path, pod in sorted(plays, key=lambda p: p[0] != "Job"):
        sh(["podman", "kube", "down", str(path)], timeout=120)
        network = f"{args.network}:alias={name}" if kind == "Deployment" else args.network
        result = sh(["podman", "kube", "play", "--network", network, str(path)], timeout=180)
        if result.returncode != 0:
            print(result.stdout, result.stderr, file=sys.stderr)
            raise SystemExit(f"kube-play: podman kube play {path.name} failed")
        say(f"played {kind} {name} (pod {pod})")
        if kind == "Job":
            container = next(iter(containers_of(pod).values()))
            while state(container).get("Running"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"kube-play: job {name} still running\n{logs(container)}")
                time.sleep(1)
            code = state(container).get("ExitCode")
            if code != 0:
                raise SystemExit(f"kube-play: job {name} exited {code}\n{logs(container)}")
            say(f"job {name} completed (exit 0); {security(container)}")

    pending = {}
    for kind, name, path, pod in plays:
        if kind != "Deployment":
            continue
        doc = load(path)[-1]
        for spec in doc["spec"]["template"]["spec"]["containers"]:
            if "readinessProbe" not in spec:
                raise SystemExit(f"kube-play: {name}/{spec['name']} has no readinessProbe")
            container = containers_of(pod)[spec["name"]]
            pending[container] = spec
    while pending:
        for container, spec in list(pending.items()):
            st = state(container)
            if not st.get("Running"):
                raise SystemExit(
                    f"kube-play: {container} is not running ({st.get('Status')}, "
                    f"exit {st.get('ExitCode')})\n{logs(container)}"
                )
            if probe(container, spec, spec["readinessProbe"]):
                say(f"{container}: readinessProbe passes; {security(container)}")
                del pending[container]
        if pending and time.monotonic() > deadline:
            for container in pending:
                print(f"--- {container}\n{logs(container)}", file=sys.stderr)
            raise SystemExit(f"kube-play: not ready after {args.timeout:.0f} s: {sorted(pending)}")
        if pending:
            time.sleep(2)
    say(f"all {sum(1 for p in plays if p[0] == 'Deployment')} Deployments ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
