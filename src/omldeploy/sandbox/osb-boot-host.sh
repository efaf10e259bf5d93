#!/bin/bash
# Supervisor for one omldeploy sandbox host: runs systemd-nspawn with the given arguments and
# starts it again when the host reboots itself (nspawn exits 133), as systemd-nspawn@.service
# would. SIGTERM is passed on to nspawn, which turns it into a clean poweroff of the host.
child=
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
while :; do
  systemd-nspawn "$@" &
  child=$!
  wait "$child"
  rc=$?
  [ "$rc" = 133 ] || exit "$rc"
  echo "== host rebooted (nspawn exit 133), starting it again =="
done
