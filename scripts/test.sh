#!/usr/bin/env bash
# Install everything the test suite needs, start the servers it uses, lint, type-check, and run it.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq prometheus >/dev/null
fi
# Debian's package starts a system Prometheus on :9090; tests start their own on free ports.

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# The optional mocker engine (the `mocker` extra) is installed here so that its tests and the
# short mocker replay below run in CI. --no-deps: its native module needs none of its declared
# Python dependencies, and its pydantic<=2.13.5 pin would downgrade the one Prefect runs on.
.venv/bin/python -m pip install -q --no-deps 'ai-dynamo-runtime==1.6.1'

.venv/bin/ruff check .
.venv/bin/mypy planner_core tasks flows benchmarks
.venv/bin/python -m pytest -q "$@"
# A short closed-loop replay on Dynamo's mocker, when the extra is installed.
if .venv/bin/python -c 'import dynamo._core' 2>/dev/null; then
    .venv/bin/sla-planner replay --engine mocker --duration-s 180 --no-store --load-predictor constant \
        --compare default,oracle
fi
