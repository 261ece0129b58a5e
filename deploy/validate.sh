#!/usr/bin/env bash
# Validates the files under deploy/ with real tools, as far as the machine allows; run by
# .ci/run after the tests (tests/deploy_files.rs checks the same files structurally and runs
# their configs through the binary). Needs no network but the package registries.
#
#   kubernetes-validate   the manifests against Kubernetes' own JSON schemas, bundled in the
#                         PyPI package (installed into target/ci-venv), strict: unknown fields
#                         are errors. The ServiceMonitor is a CRD with no bundled schema.
#   systemd-analyze       `verify` and `security --offline` on the unit, if systemd is installed.
#   docker compose config the compose file; without the Compose plugin, Debian's docker-compose
#                         (v1, installed with apt-get if missing) parses and validates it.
#
# Each validator that cannot run says why and is skipped; a validator that runs and finds a
# problem fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest and the newest Kubernetes minor this repository claims to support.
KUBERNETES_VERSIONS=(1.31.0 1.35.0)
VENV=target/ci-venv
# Stands in for the key wherever a tool interpolates the compose file.
export TRIGGER_SECRET_KEY="${TRIGGER_SECRET_KEY:-tr_dev_validate}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

skip() { echo "   skipped: $*"; }

echo "== deploy: kubernetes-validate (Kubernetes ${KUBERNETES_VERSIONS[*]})"
install_kubernetes_validate() {
    # (Outputs are captured before grep -q: an early-exiting grep would fail the pipeline.)
    local installed
    installed=$("$VENV/bin/kubernetes-validate" --version 2>/dev/null || true)
    if [[ "$installed" == *"$KUBERNETES_VALIDATE_VERSION"* ]]; then
        return 0
    fi
    python3 -m venv --clear "$VENV" >/dev/null 2>&1 || return 1
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input --timeout 60 \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >"$tmp/pip.log" 2>&1 || {
        tail -n 5 "$tmp/pip.log"
        return 1
    }
}
if ! command -v python3 >/dev/null 2>&1; then
    skip "python3 is not installed"
elif ! install_kubernetes_validate; then
    skip "could not install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION from PyPI"
else
    manifests=()
    for file in deploy/kubernetes/*.yaml; do
        if grep -q '^apiVersion: monitoring.coreos.com/' "$file"; then
            echo "   $file: a Prometheus Operator CRD, no bundled schema (checked by tests/deploy_files.rs)"
        else
            manifests+=("$file")
        fi
    done
    for version in "${KUBERNETES_VERSIONS[@]}"; do
        # --quiet prints failures only; a failure exits non-zero.
        "$VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "${manifests[@]}"
    done
    echo "   ok: ${manifests[*]}"
fi

echo "== deploy: systemd-analyze"
if ! command -v systemd-analyze >/dev/null 2>&1; then
    skip "systemd-analyze is not installed"
else
    # `verify` also checks that ExecStart's program exists; the binary is not installed here.
    unit="$tmp/trigger-otel-bridge.service"
    sed "s#/usr/local/bin/trigger-otel-bridge#$(command -v true)#g" deploy/systemd/trigger-otel-bridge.service >"$unit"
    # verify exits 0 on unknown keys and bad values, printing a warning: any output fails.
    if ! out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
        echo "$out"
        echo "   systemd-analyze verify found problems in deploy/systemd/trigger-otel-bridge.service"
        exit 1
    fi
    echo "   ok: verify"
    # Exposure is 0 (locked down) to 10 (unprotected); the unit rates 1.1. Fail above 2.0.
    security_help=$(systemd-analyze security --help 2>/dev/null || true)
    if [[ "$security_help" == *--offline* ]]; then
        if ! systemd-analyze security --offline=yes --threshold=20 --no-pager "$unit" >"$tmp/security.txt" 2>&1; then
            cat "$tmp/security.txt"
            echo "   systemd-analyze security: exposure above 2.0"
            exit 1
        fi
        echo "   ok: $(grep -o 'Overall exposure level.*' "$tmp/security.txt")"
    else
        skip "this systemd-analyze has no security --offline"
    fi
fi

echo "== deploy: docker compose config"
if docker compose version >/dev/null 2>&1; then
    docker compose -f deploy/docker-compose.yml config --quiet
    echo "   ok: docker compose $(docker compose version --short)"
else
    echo "   the Docker Compose plugin is not installed ($(docker --version 2>/dev/null || echo 'no docker CLI either'))"
    if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "   installing Debian's docker-compose (v1) to validate the file instead"
        { timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends docker-compose; } \
            >"$tmp/apt.log" 2>&1 || tail -n 5 "$tmp/apt.log"
    fi
    compose_version=$(docker-compose version 2>/dev/null || true)
    if [[ "$compose_version" == "docker-compose version 1."* ]]; then
        # v1 predates the top-level `name:` of the Compose specification; everything else it
        # validates against its bundled schema: keys, types, interpolation, depends_on.
        (cd deploy && grep -v '^name: ' docker-compose.yml | docker-compose -f - config --quiet)
        echo "   ok: $(docker-compose version --short 2>/dev/null || echo docker-compose v1)"
    elif command -v docker-compose >/dev/null 2>&1; then
        docker-compose -f deploy/docker-compose.yml config --quiet
        echo "   ok: $(docker-compose version --short)"
    else
        skip "neither the Compose plugin nor docker-compose could be had"
    fi
fi
