#!/bin/bash
# repmgrd's failover_validation_command for tenant ha_aio on tenant_example_7_aio_B (rendered by omldeploy).
# Runs in the repmgr container (as postgres) on the promotion candidate. A standby whose link is cut also
# loses the primary; it must not promote itself: promote only when another tenant host answers (a TCP
# connection accepted or refused proves the network works). repmgrd re-runs the election after
# election_rerun_interval when this exits non-zero.
set -u
hosts=(172.16.101.1:22)
[ 1 -gt 0 ] || exit 0
for hp in "${hosts[@]}"; do
  (
    out=$(timeout 2 bash -c "exec 3<>/dev/tcp/${hp%:*}/${hp#*:}" 2>&1) && exit 0
    case "$out" in *refused*) exit 0 ;; esac
    exit 1
  ) &
done
for job in $(jobs -p); do
  if wait "$job"; then
    echo "promotion allowed: other tenant hosts answer"
    exit 0
  fi
done
echo "promotion refused: none of 1 other tenant hosts answers; this node may be the isolated one"
exit 1
