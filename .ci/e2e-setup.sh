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
# The programs that read the rendered configs, for tests/integration/test_rendered_configs.py (each
# config is checked by its own program; the tests start their own servers in temp dirs and private
# network namespaces, never the packaged services, which are kept stopped below):
#   keepalived          `keepalived --config-test`
#   haproxy             `haproxy -c`
#   kamailio (+ tls, websocket, autheph, redis modules: the HA kamailio.cfg loads them) `kamailio -c`
#   redis-server, redis-sentinel (+ redis-tools: redis-cli)   Sentinel started with sentinel.conf
#   postgresql-15-repmgr  repmgr.so for shared_preload_libraries, and `repmgr primary register`
#   prometheus          `promtool check config`
#   nftables            `nft -c -f` of the rendered firewall rulesets, and the rollback timer's integration test
#   util-linux          unshare/nsenter for the private network namespaces
#   zsh                 the zsh completion script is run by zsh itself (tests/unit/cli/test_completion.py)
#   nginx-light         `nginx -t` of the ACME challenge server block (certs: acme)
#   lego                the ACME client wrapped by the sandbox's goacme/lego test image
#   pebble              the local ACME test server (and pebble-challtestsrv, its DNS) for the ACME e2e
#   chromium            headless, loads the fleet dashboard (tests/integration/test_dashboard_browser.py)
# Podman is NOT needed on the controller: the hosts have their own, and the test images are
# assembled and pushed by Python (omldeploy.sandbox.images).
set -euo pipefail
PKGS=(debootstrap systemd-container docker-registry iproute2 openssh-client tar ca-certificates curl postgresql-15
      keepalived haproxy kamailio kamailio-tls-modules kamailio-websocket-modules kamailio-autheph-modules
      kamailio-redis-modules redis-server redis-sentinel redis-tools postgresql-15-repmgr prometheus util-linux
      zsh nginx-light lego pebble nftables chromium)
# Services that the packages above ship and that must never run on this machine: a keepalived would
# take part in VRRP on the CI machine's own network, and the others would hold ports the tests use.
NEVER_START=(keepalived haproxy kamailio redis-server redis-sentinel prometheus repmgrd nginx)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "e2e-setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # policy-rc.d answering 101 keeps maintainer scripts from starting any service during the install
  # (the Debian way; an existing one, e.g. a container's, is left as it is)
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" || { [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
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
# The config checkers' packaged services: stopped if running, and on systemd also disabled and masked,
# so that neither a later boot nor a dependency can start them. Each is stopped by its own unit or
# init script, never by process name.
for svc in "${NEVER_START[@]}"; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    if systemctl list-unit-files "$svc.service" >/dev/null 2>&1; then
      systemctl stop "$svc" 2>/dev/null || true
      systemctl disable "$svc" 2>/dev/null || true
      systemctl mask "$svc" 2>/dev/null || true
    fi
  elif [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" status >/dev/null 2>&1; then
    # the init scripts stop by their own pidfile (start-stop-daemon --pidfile); some report "running"
    # when unconfigured (kamailio), hence the quiet stop
    "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
  fi
done
python3 -c 'import venv' 2>/dev/null || { echo "e2e-setup: python3 has no venv module" >&2; exit 1; }
echo "e2e-setup: done"
