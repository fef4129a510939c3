#!/usr/bin/env bash
# Re-resolve constraints.txt: a fresh venv, an upgraded pip, the newest versions pyproject.toml
# allows (planner and test dependencies), frozen. Run the suite (bash scripts/test.sh) on the
# result before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev]'
{
    sed -n '/^#/p' constraints.txt
    "$venv/bin/python" -m pip freeze --exclude-editable
} > constraints.txt.new
mv constraints.txt.new constraints.txt
rm -rf "$(dirname "$venv")"
echo "constraints.txt refreshed: $(grep -vc '^#' constraints.txt) pins"
