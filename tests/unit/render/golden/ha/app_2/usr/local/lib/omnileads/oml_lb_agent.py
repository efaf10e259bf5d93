#!/usr/bin/python3
"""HAProxy agent for one HA app node: tells the balancers whether to send this node traffic.

HAProxy asks it every second (`agent-check` on each app server). The answer is the content of the state
file (`up ready` when there is none; `maint` while the node is drained). omldeploy's activate writes
`maint` before it restarts anything on the node, waits until every balancer has asked since (the agent
records who was told what, in `seen_dir`), restarts, waits for health, and writes `up ready` again.
So a rolling upgrade sends no request to a node that is restarting, instead of waiting for HAProxy's
health checks to notice the failures.

Only the configured balancers get an answer. Python standard library only: it runs on the host.

    oml_lb_agent.py CONFIG.json   {"address", "port", "state_file", "seen_dir", "peers": [ip, ...]}
"""

from __future__ import annotations

import json
import os
import socketserver
import sys
from typing import Any


def load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        conf: dict[str, Any] = json.load(fh)
    return conf


def state(conf: dict[str, Any]) -> str:
    try:
        with open(conf["state_file"], encoding="utf-8") as fh:
            return fh.read().strip() or "up ready"
    except OSError:
        return "up ready"


def record(conf: dict[str, Any], peer: str, told: str) -> None:
    """Atomically note what `peer` was told; its write time is when."""
    os.makedirs(conf["seen_dir"], exist_ok=True)
    path = os.path.join(conf["seen_dir"], peer)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(told + "\n")
    os.replace(tmp, path)


def serve(conf: dict[str, Any]) -> None:
    peers = set(conf["peers"])

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            peer = str(self.client_address[0])
            if peer not in peers:
                return
            told = state(conf)
            try:
                self.request.sendall((told + "\n").encode())
            except OSError:
                return
            record(conf, peer, told)

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server((conf["address"], int(conf["port"])), Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: oml_lb_agent.py CONFIG.json")
    serve(load(sys.argv[1]))
