#!/usr/bin/env bash
# Install robot_rl with its dev tools (CPU torch first, so nothing pulls a CUDA build), lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
ruff check .
ruff format --check .
set +e
python -m pytest -n 2 -q "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure of the suite, not a pass.
if [ "$rc" = 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$rc"
