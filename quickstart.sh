#!/usr/bin/env bash
# Fresh machine → omldeploy installed in .venv, an example tenant created, validated, planned, rendered.
#   ./quickstart.sh [aio|ait|cloud|ha]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
layout=${1:-aio}
if [ ! -x .venv/bin/omldeploy ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
fi
omldeploy=.venv/bin/omldeploy
tenant=example-$layout
[ -f "instances/$tenant/inventory.yml" ] || "$omldeploy" tenant new "$tenant" --layout "$layout"
"$omldeploy" validate --tenant "$tenant"
"$omldeploy" plan --tenant "$tenant"
"$omldeploy" render --tenant "$tenant" --out "instances/$tenant/.omldeploy/rendered"
echo
echo "Next: edit instances/$tenant/inventory.yml (host addresses), then ./deploy.sh --action=install --tenant=$tenant"
