#!/usr/bin/env bash
# Runs the whole test suite: unit (no hosts), integration (local services), e2e (sandbox hosts, root).
#   ./test.sh [pytest args]        e.g. ./test.sh tests/unit -q
# Creates .venv with the test extras on first use. e2e tests skip with a reason when not root or when
# the host tools are missing (.ci/run installs them with .ci/e2e-setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x .venv/bin/pytest ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch .venv/.installed
fi
export PATH="$PWD/.venv/bin:$PATH"
if [ "$(id -u)" = 0 ]; then
  # a sandbox left by an interrupted run (processes gone, mounts/namespaces left) is cleaned first
  .venv/bin/omldeploy sandbox down --name e2e >/dev/null 2>&1 || true
fi
.venv/bin/ruff check src tests bench
.venv/bin/mypy --strict src/omldeploy
exec .venv/bin/python -m pytest "${@:-tests}"
