"""The app nodes' drain through HAProxy's agent, with the rendered pieces and real programs: the rendered
haproxy.cfg run by `haproxy`, the rendered agent (oml_lb_agent.py with its rendered lb-agent.json) on
each app node's address, and the host module's drain functions (module_utils/omldeploy_drain.py) run in
the app nodes' namespace as activate runs them. While one node is out (`maint`) every request through
the VIP reaches the other; put back, both serve again. Balancers not in the agent's list get no answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from omldeploy.components.nginx import AGENT, AGENT_CONF

from .test_rendered_configs import (  # noqa: F401  (rendered, netns: fixtures used by name)
    HA8,
    NetNSFactory,
    Rendered,
    cases,
    files_for,
    need,
    netns,
    rendered,
    renders,
    run,
    stop,
)

MODULE_UTILS = Path(__file__).resolve().parents[2] / "src/omldeploy/apply/ansible/module_utils"

# an HTTPS server answering with its own address: which app node served a request
WHO = r"""
import http.server, ssl, sys
ip, cert, key = sys.argv[1:4]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ip.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer((ip, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""

DRAIN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import omldeploy_drain as d
spec = json.loads(sys.argv[3])
print(json.dumps(d.take_out(spec) if sys.argv[2] == "out" else d.put_back(spec)))
"""


@pytest.mark.parametrize("rendered", cases(*HA8), indirect=True)
def test_a_drained_app_node_gets_no_request_and_comes_back(rendered: Rendered,  # noqa: F811
                                                           netns: NetNSFactory) -> None:  # noqa: F811
    haproxy = need("haproxy", "haproxy")
    curl = need("curl", "curl")
    ran = {(h, f.path) for h, f in files_for(rendered, "lb_agent")}
    assert ran == {(a.name, p) for a in rendered.tenant.with_role("app") for p in (AGENT, AGENT_CONF)}, ran
    host, f = files_for(rendered, "haproxy")[0]
    hap_lan = next(h.lan_ip for h in rendered.tenant.hosts if h.name == host)
    vip = rendered.tenant.settings.text("application_host")
    apps = sorted(rendered.tenant.with_role("app"), key=lambda h: h.ha_role != "main")
    conf = rendered.on_disk(host, f.path)
    conf.write_text(rendered.container_text(host, "haproxy", f.path))
    work = Path(tempfile.mkdtemp(prefix="omldeploy-it-drain-"))
    hap = netns([hap_lan, vip])
    lan = netns([a.lan_ip for a in apps])
    procs: list[subprocess.Popen[bytes]] = []
    drains: dict[str, dict[str, Any]] = {}
    try:
        hap.link(lan, "hap0", "lan0")
        lan.check(["ip", "route", "add", f"{hap_lan}/32", "dev", "lan0"])
        for a in apps:
            hap.check(["ip", "route", "add", f"{a.lan_ip}/32", "dev", "hap0"])
            certs = rendered.on_disk(a.name, "/etc/omnileads/certs")
            procs.append(subprocess.Popen(lan.cmd([sys.executable, "-c", WHO, a.lan_ip, str(certs / "cert.pem"),
                                                   str(certs / "key.pem")])))
            # the rendered agent and its rendered config; only its runtime folder moves into the test's
            agent_conf = json.loads(rendered.on_disk(a.name, AGENT_CONF).read_text())
            assert agent_conf["peers"] == sorted(h.lan_ip for h in rendered.tenant.with_role("haproxy"))
            runtime = work / a.name
            agent_conf.update(state_file=str(runtime / "state"), seen_dir=str(runtime / "seen"))
            (work / f"{a.name}.json").write_text(json.dumps(agent_conf))
            procs.append(subprocess.Popen(lan.cmd([sys.executable, str(rendered.on_disk(a.name, AGENT)),
                                                   str(work / f"{a.name}.json")])))
            hb = rendered.bundle.host(a.name)
            assert hb.drain is not None and hb.drain["peers"] == agent_conf["peers"]
            drains[a.name] = {**hb.drain, "state_file": agent_conf["state_file"], "seen_dir": agent_conf["seen_dir"],
                              "timeout": 5.0}
        with open(work / "haproxy.log", "wb") as fh:
            procs.append(subprocess.Popen(hap.cmd([haproxy, "-db", "-f", str(conf)]), stdout=fh,
                                          stderr=subprocess.STDOUT))
        ca = rendered.on_disk(host, "/etc/omnileads/certs/ca.pem")

        def served(n: int) -> list[str]:
            out = []
            for _ in range(n):
                res = run(hap.cmd([curl, "-sS", "--max-time", "3", "--cacert", str(ca), f"https://{vip}/"]))
                out.append(res.stdout.strip() or f"failed: {res.stderr.strip()}")
            return out

        def until_served_by(want: set[str], limit: float) -> list[str]:
            t0, last = time.monotonic(), []
            while time.monotonic() - t0 < limit:
                last = served(10)
                if set(last) == want:
                    return last
                time.sleep(0.2)
            raise AssertionError(f"requests not served by exactly {want} within {limit}s: {last}; haproxy log:\n"
                                 f"{(work / 'haproxy.log').read_text()[-1500:]}")

        both = {a.lan_ip for a in apps}
        until_served_by(both, 20)
        first, second = apps
        out = json.loads(run(lan.cmd([sys.executable, "-c", DRAIN, str(MODULE_UTILS), "out",
                                      json.dumps(drains[first.name])])).stdout)
        other = [ip for ip in drains[first.name]["peers"] if ip != hap_lan]  # its HAProxy is not running here
        assert out["told"] == [hap_lan] and out["not_told"] == other and out["seconds"] < 6, out
        # told means HAProxy has read `maint`: from now on no request reaches the drained node
        assert set(served(20)) == {second.lan_ip}
        back = json.loads(run(lan.cmd([sys.executable, "-c", DRAIN, str(MODULE_UTILS), "back",
                                       json.dumps(drains[first.name])])).stdout)
        assert back["told"] == [hap_lan], back
        until_served_by(both, 20)
        # a balancer the agent does not know gets no answer (nobody else may drain a node)
        probe = run(lan.cmd([sys.executable, "-c", "import socket,sys; s=socket.create_connection((sys.argv[1], "
                             "int(sys.argv[2])), 3); print(repr(s.recv(64)))", first.lan_ip,
                             str(json.loads((work / f'{first.name}.json').read_text())['port'])]))
        assert probe.stdout.strip() == "b''", probe.stdout + probe.stderr
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)
