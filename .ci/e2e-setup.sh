#!/bin/bash
# Install what the e2e tier (omldeploy sandbox) needs on a fresh Debian 12 machine. Idempotent:
# packages already present are skipped, and apt-get update runs only when something is missing.
#   debootstrap         builds the cached host root filesystems and the test image layer
#   systemd-container   systemd-nspawn, which boots the test hosts
#   docker-registry     the local OCI registry on the sandbox bridge
#   iproute2            network namespaces, bridge and veths
#   openssh-client      the controller side of SSH (and ssh-keygen for host/controller keys)
#   tar, ca-certificates, curl: image layers, HTTPS to the Debian mirror, debugging
#   postgresql-15       the integration tier's real PostgreSQL (tests start their own server from
#                       /usr/lib/postgresql/15/bin on a free loopback port; the packaged cluster is unused)
# Podman is NOT needed on the controller: the hosts have their own, and the test images are
# assembled and pushed by Python (omldeploy.sandbox.images).
set -euo pipefail
PKGS=(debootstrap systemd-container docker-registry iproute2 openssh-client tar ca-certificates curl postgresql-15)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "e2e-setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "e2e-setup: all packages present"
fi
# Debian's package also installs a docker-registry service on :5000 of every address. The sandbox
# runs its own registry per sandbox on the bridge address, so the packaged service is stopped if it
# runs. Only that service is stopped (by its unit or its own pidfile), never a sandbox's registry.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  if systemctl is-active -q docker-registry 2>/dev/null; then systemctl disable --now docker-registry || true; fi
elif [ -f /var/run/docker-registry.pid ] && kill -0 "$(cat /var/run/docker-registry.pid)" 2>/dev/null; then
  /etc/init.d/docker-registry stop || true
fi
python3 -c 'import venv' 2>/dev/null || { echo "e2e-setup: python3 has no venv module" >&2; exit 1; }
echo "e2e-setup: done"
