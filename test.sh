#!/usr/bin/env bash
# Runs the whole test suite: unit (no hosts), integration (local services), e2e (sandbox hosts, root).
#   ./test.sh [pytest args]        e.g. ./test.sh tests/unit -q
# Creates .venv with the test extras on first use. e2e tests skip with a reason when not root or when
# the host tools are missing (.ci/run installs them with .ci/e2e-setup.sh).
#
# The whole suite as root (no path given, or `tests`) runs in two pytest processes side by side: the HA
# tier (its own two sandboxes) beside everything else. Sandbox hosts mostly wait on services, not on the
# CPU (tests/e2e/test_upgrade.py alone keeps 2 cores 48% busy), so the two share the machine well.
# Each keeps its own report; the side's is printed after the main one. OMLDEPLOY_TEST_SERIAL=1 runs
# one process.
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
whole=
if [ $# -eq 0 ]; then whole=1; elif [ "$1" = tests ] || [ "$1" = tests/ ]; then whole=1; shift; fi
if [ -z "$whole" ] || [ "$(id -u)" != 0 ] || [ "${OMLDEPLOY_TEST_SERIAL:-}" = 1 ]; then
  if [ -n "$whole" ]; then set -- tests "$@"; fi
  exec .venv/bin/python -m pytest "$@"
fi
side=(tests/e2e/ha tests/e2e/ha_aio)
side_log=$(mktemp /tmp/omldeploy-tests-side.XXXXXX)
.venv/bin/python -m pytest "${side[@]}" "$@" >"$side_log" 2>&1 &
side_pid=$!
trap 'kill -INT "$side_pid" 2>/dev/null || true' INT TERM
echo "test.sh: ${side[*]} run beside this process (pid $side_pid, report in $side_log, printed at the end)"
ignore=()
for p in "${side[@]}"; do ignore+=("--ignore=$p"); done
main_rc=0
.venv/bin/python -m pytest tests "${ignore[@]}" "$@" || main_rc=$?
side_rc=0
wait "$side_pid" || side_rc=$?
trap - INT TERM
echo
echo "==================== beside it: ${side[*]} (exit $side_rc) ===================="
cat "$side_log"
rm -f "$side_log"
echo "test.sh: main exit $main_rc, side exit $side_rc"
[ "$main_rc" = 0 ] && [ "$side_rc" = 0 ]
