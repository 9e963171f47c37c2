#!/usr/bin/env bash
# The container suite (`make container-test`, run by .ci/run after `make test`):
# a Docker engine and an image registry on loopback, the image built and
# published there, every pipeline run with each step in a container, then
# everything this script started stopped again.
#
# An engine that DOCKER_HOST (or the default socket) already reaches is used as
# it is, and so is a registry named by REGISTRY (host:port). Otherwise Debian's
# docker.io and docker-registry packages are installed when missing and
# started as root on a socket and a loopback port of their own, as on a
# machine without Docker Hub or a bridge network (dockerd --bridge=none; the
# steps use the host network).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
state=$(mktemp -d /tmp/kfp-ml-containers.XXXXXX)
started=()

stop_started() {
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    # dockerd leaves its network namespace mounted under its exec-root.
    umount "$state"/exec/netns/* 2>/dev/null || true
    rm -rf "$state" 2>/dev/null || true
}
trap stop_started EXIT

apt_install() {  # package...: install what is missing, once
    local missing=()
    for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "error: ${missing[*]} missing, and installing Debian packages needs root (or start an engine" \
             "and a registry yourself: DOCKER_HOST, REGISTRY=host:port)" >&2
        exit 1
    fi
    echo "installing ${missing[*]} (Debian packages)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # seconds command...: until the command succeeds
    local seconds=$1; shift
    for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "error: '$*' did not succeed within ${seconds}s" >&2
    return 1
}

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "using the Docker engine at ${DOCKER_HOST:-the default socket}"
else
    apt_install docker.io
    export DOCKER_HOST="unix://$state/docker.sock"
    dockerd --iptables=false --ip-masq=false --bridge=none -H "$DOCKER_HOST" \
        --exec-root "$state/exec" --pidfile "$state/docker.pid" >"$state/dockerd.log" 2>&1 &
    started+=($!)
    wait_for 60 docker version --format '{{.Server.Version}}' || { tail -5 "$state/dockerd.log"; exit 1; }
    echo "started dockerd at $DOCKER_HOST"
fi
# images/build.py builds the base from Debian's packages where Docker Hub is unreachable.
command -v mmdebstrap >/dev/null || apt_install mmdebstrap

if [ -z "${REGISTRY:-}" ]; then
    apt_install docker-registry
    port=$(free_port)
    printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$state/registry" "$port" >"$state/registry.yml"
    docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 &
    started+=($!)
    export REGISTRY="127.0.0.1:$port"
    wait_for 30 "$PY" -c "import urllib.request; urllib.request.urlopen('http://$REGISTRY/v2/', timeout=2)"
    echo "started a registry at $REGISTRY"
fi

export DOCKER_HOST REGISTRY
started_at=$SECONDS
# A bound on the whole suite, well inside CI's limit: a hung engine fails it instead of the CI run.
timeout "${CONTAINER_SUITE_TIMEOUT_S:-2400}" "$PY" -m pytest tests/containers -m container -p no:cacheprovider "$@"
echo "container suite: $((SECONDS - started_at)) s of tests"
