#!/usr/bin/env bash
# Dynamo 1.6.1's own planner, for `sla-planner replay --engine mocker --policy dynamo-1.6`
# (docs/mocker.md). Not part of the test command: about 130 MB, and only this baseline needs it.
#
# ai-dynamo is installed without its dependencies (vLLM, Kubernetes and serving stacks the replay
# never imports); what its planner and replay modules do import is listed below. aisimulate
# 0.13.0 on PyPI is a placeholder that downloads the real wheel from NVIDIA's index at install
# time; the 0.13.0 pre-release wheels on PyPI are the real package (aisimulate_core).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/python -m pip}
$PIP install -q --no-deps 'ai-dynamo-runtime==1.6.1' 'ai-dynamo==1.6.1' 'aisimulate==0.13.0.dev202610270000000085'
$PIP install -q pmdarima prophet filterpy msgspec plotly prometheus-api-client
