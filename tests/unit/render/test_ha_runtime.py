"""HA runtime rules, checked on the rendered bundle (the e2e test tests/e2e/ha/ runs them)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import threading
from pathlib import Path
from types import ModuleType

from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

CHECK = Path(__file__).resolve().parents[3] / "src/omldeploy/components/keepalived/oml_check.py"


def text(bundle, host: str, path: str) -> str:  # type: ignore[no-untyped-def]
    return str(bundle.host(host).file(path).content.decode())


def unit(bundle, host: str, name: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return next(u for u in bundle.host(host).units if u.name == name)


def test_postgresql_listens_for_the_vips_and_trusts_only_what_it_must(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ha"))
    conf = text(bundle, "sql_1", "/etc/omnileads/postgresql/postgresql.conf")
    assert "listen_addresses = '*'" in conf and "shared_preload_libraries = 'repmgr'" in conf
    hba = text(bundle, "sql_1", "/etc/omnileads/postgresql/pg_hba.conf")
    # the maintenance database, for the hooks of the voice and app hosts only
    maint = sorted(line.split()[3] for line in hba.splitlines() if line.startswith("host    postgres "))
    assert maint == ["172.16.101.103/32", "172.16.101.104/32", "172.16.101.105/32", "172.16.101.106/32"]
    repl = sorted(line.split()[3] for line in hba.splitlines() if line.startswith("host    replication"))
    assert repl == ["172.16.101.101/32", "172.16.101.102/32"]
    assert "trust" not in "".join(line for line in hba.splitlines() if line.startswith("host"))
    repmgr = text(bundle, "sql_2", "/etc/omnileads/postgresql/repmgr.conf")
    assert "node_id=2" in repmgr and "pg_bindir=" not in repmgr  # the image's PATH, not a stand-in path
    pgpass = bundle.host("sql_1").file("/etc/omnileads/postgresql/pgpass")
    assert pgpass.mode == 0o600 and pgpass.secret


def test_replication_bootstrap_hooks_never_reclone_and_carry_no_secret(make_tenant: MakeTenant) -> None:
    tenant = make_tenant("ha", vars={"postgres_password": "pg-Secret-771"})
    bundle = render_tenant(tenant)
    main, backup = unit(bundle, "sql_1", "postgresql"), unit(bundle, "sql_2", "postgresql")
    assert "primary register" in " ".join(main.post_start)
    clone = " ".join(backup.pre_start)
    # the clone only ever goes into an empty volume, from the main node's own address
    assert 'PG_VERSION" ]; then exit 0; fi' in clone and "standby clone" in clone and "-h 172.16.101.101" in clone
    assert "standby register" in " ".join(backup.post_start)
    assert unit(bundle, "sql_1", "repmgr").after == ("postgresql",)
    repmgr_pw = (tenant.folder / ".omldeploy/secrets.yml").read_text().split("repmgr_password: ")[1].split()[0]
    activate_args = json.dumps([u.__dict__ for h in bundle.hosts for u in h.units], default=str)
    assert repmgr_pw not in activate_args and "pg-Secret-771" not in activate_args


def test_keepalived_follows_health_and_writes_the_state(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ha"))
    sql = text(bundle, "sql_1", "/etc/omnileads/keepalived.conf")
    assert "track_file" not in sql and "track_process" not in sql
    rw = sql.split("_PG_RW {")[1].split("vrrp_instance")[0]
    assert "chk_pg_primary" in rw and "unicast_peer" not in rw
    assert "echo $2 >" in rw  # keepalived appends INSTANCE name STATE prio: $2 is the state under sh -c
    voice = text(bundle, "voice_1", "/etc/omnileads/keepalived.conf")
    assert "oml_check.py tcp 127.0.0.1 5038 Asterisk" in voice
    transition = text(bundle, "voice_1", "/usr/local/bin/oml_ha_transition")
    assert "/run/omnileads/keepalived/VOICE.reloaded" not in transition  # not in the watched folder
    units = [f.path for f in bundle.host("sql_1").files if f.kind == "hostunit"]
    assert not any("pg-role" in u for u in units)
    assert "--pid=host" not in text(bundle, "sql_1", "/etc/systemd/system/keepalived.service")


def test_unicast_vrrp_names_the_pair_member_only(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ha", vars={"ha_vrrp_unicast": True}))
    conf = text(bundle, "haproxy_2", "/etc/omnileads/keepalived.conf")
    assert "unicast_src_ip 172.16.101.108" in conf
    peers = conf.split("unicast_peer {")[1].split("}")[0].split()
    assert peers == ["172.16.101.107"]


def test_sentinel_runs_as_the_image_runs_it(make_tenant: MakeTenant) -> None:
    bundle = render_tenant(make_tenant("ha"))
    service = text(bundle, "voice_1", "/etc/systemd/system/sentinel.service")
    assert "sh -c" not in service and "redis-sentinel /data/sentinel.conf" in service
    seed = " ".join(unit(bundle, "voice_1", "sentinel").pre_start)
    assert "cmp -s" in seed  # the learned state is kept unless the rendered file changed


def test_haproxy_binds_low_ports_as_the_images_user(make_tenant: MakeTenant) -> None:
    service = text(render_tenant(make_tenant("ha")), "haproxy_1", "/etc/systemd/system/haproxy.service")
    assert "--cap-add=NET_BIND_SERVICE" in service and "--user" not in service


def _check_module() -> ModuleType:
    wire = str(CHECK.parents[1] / "postgresql")  # deployed beside the check script on data nodes
    if wire not in sys.path:
        sys.path.insert(0, wire)
    spec = importlib.util.spec_from_file_location("oml_check", CHECK)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_tcp_check_wants_the_banner() -> None:
    mod = _check_module()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = srv.accept()
            conn.sendall(b"Asterisk Call Manager/5.0.1\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    assert mod.main(["tcp", "127.0.0.1", str(port), "Asterisk"]) == 0
    assert mod.main(["tcp", "127.0.0.1", str(port), "Nope"]) == 1
    srv.close()
    assert mod.main(["tcp", "127.0.0.1", str(port)]) == 1  # nothing listens any more
    assert mod.main(["pg", "primary", "u", "db"]) == 1  # no PostgreSQL socket here: not healthy


def test_roles_are_sticky_and_the_holder_check_ignores_a_stale_state(make_tenant: MakeTenant, tmp_path: Path) -> None:
    """VOICE, HAPROXY and CRON give +60 to the node that is MASTER (50 + 60 > 100: a returning main
    does not take the role back); the bonus counts only a state written by this run of keepalived."""
    bundle = render_tenant(make_tenant("ha"))
    for host, instance in (("voice_2", "VOICE"), ("haproxy_2", "HAPROXY"), ("app_2", "CRON")):
        conf = text(bundle, host, "/etc/omnileads/keepalived.conf")
        check = f"chk_{instance.lower()}_holder"
        assert f"state /run/omnileads/keepalived/{instance}.state MASTER" in conf.split(f"vrrp_script {check}")[1]
        assert check in conf.split(f"_{instance} {{")[1] and "priority 50" in conf
    assert "_holder" not in text(bundle, "sql_1", "/etc/omnileads/keepalived.conf")
    mod = _check_module()
    state = tmp_path / "VOICE.state"
    state.write_text("MASTER\n")
    assert mod.main(["state", str(state), "MASTER"]) == 0
    assert mod.main(["state", str(state), "BACKUP"]) == 1
    assert mod.main(["state", str(tmp_path / "none.state"), "MASTER"]) == 1
    os.utime(state, (mod.started_at() - 60, mod.started_at() - 60))  # left by an earlier keepalived run
    assert mod.main(["state", str(state), "MASTER"]) == 1
