#!/usr/bin/env bash
# Seed-compatible entry point: ./deploy.sh --action=ACTION --tenant=NAME
# Maps onto `omldeploy ACTION --tenant NAME` with instances/ next to this script.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if command -v omldeploy >/dev/null 2>&1; then
  omldeploy=(omldeploy)
elif [ -x "$here/.venv/bin/omldeploy" ]; then
  omldeploy=("$here/.venv/bin/omldeploy")
else
  omldeploy=(env "PYTHONPATH=$here/src${PYTHONPATH:+:$PYTHONPATH}" python3 -m omldeploy.cli.main)
fi

usage() {
  cat <<'USAGE'
Usage: ./deploy.sh --action=ACTION --tenant=TENANT [--vault-password-file=PATH | --ask-vault-pass]

Runs ACTION on the tenant described by instances/TENANT/inventory.yml.
Ansible Vault values (or instances/TENANT/vault.yml) are decrypted with the password from
--vault-password-file, --ask-vault-pass or $ANSIBLE_VAULT_PASSWORD_FILE.

Actions:
  install                     install a tenant on its hosts
  upgrade                     apply the image versions of the inventory (also rollbacks)
  backup                      database + Asterisk custom files to the tenant bucket
  restore                     restore the backup named by restore_file_timestamp
  app voice observability     re-apply a group of components
  postgres redis minio asterisk kamailio rtpengine nginx websockets cron
  haproxy keepalived sentinel re-apply one component
  pgsql_node_recovery_main    HA: rejoin the former PostgreSQL main as standby
  pgsql_node_takeover_main    HA: give the primary role back to the main node
  redis_node_takeover_main    HA: give the Redis master role back to the main node
  pgsql_node_recovery_backup  HA: rejoin the PostgreSQL backup node
  restart restart_django restart_asterisk restart_core recycle update

More verbs (validate, plan, render, releases, tenant, status, rollback, backups, completion),
grouped by purpose: omldeploy --help
USAGE
}

action="" tenant="" vault=()
for arg in "$@"; do
  case $arg in
    --action=*) action=${arg#*=} ;;
    --tenant=*) tenant=${arg#*=} ;;
    --vault-password-file=*) vault+=("--vault-password-file" "${arg#*=}") ;;
    --ask-vault-pass) vault+=("--ask-vault-pass") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$action" ] && [ -n "$tenant" ] || { echo "deploy.sh: --action and --tenant are required" >&2; usage >&2; exit 2; }

cd "$here"
exec "${omldeploy[@]}" --instances "$here/instances" ${vault[@]+"${vault[@]}"} "$action" --tenant "$tenant"
