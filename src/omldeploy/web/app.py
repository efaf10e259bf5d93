"""The dashboard's web application: three read-only pages, plain HTML, no JavaScript.

- `/` every tenant in one table (health, versions, drift, last operation, backup and proof ages,
  certificates), rows needing attention highlighted and listed with their reasons; `?state=` filters
  (attention, healthy, unhealthy, unreachable, invalid, busy, drift), `?q=` matches names; the recent
  operations of the whole fleet below.
- `/tenant/<name>` one tenant: its hosts and units as the hosts reported them, what needs attention,
  its last operations with where their time went.
- `/healthz` for a load balancer or a probe.

Only GET (and HEAD) exist: nothing can be changed from here. Every value on a page comes from the fleet
survey (redacted with the tenant's secrets) or the ledgers (redacted when written), and Jinja escapes it.
With a token, a request carries it as `Authorization: Bearer <token>` or once as `?token=`, which sets
an HttpOnly cookie and redirects to the same page without it (so it stays out of history and logs).
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, make_response, redirect, render_template, request

from omldeploy.apply.timing import describe
from omldeploy.ops import fleet as fleet_op
from omldeploy.web.snapshot import Fleet, tenant_operations

COOKIE = "omldeploy_dashboard"
STATES = ("all", "attention", "healthy", "unhealthy", "unreachable", "invalid", "busy", "drift")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def matches(row: fleet_op.Row, state: str) -> bool:
    health = row.health.lower()
    return {
        "all": True,
        "attention": bool(row.attention),
        "healthy": health == "healthy",
        "unhealthy": health == "unhealthy",
        "unreachable": health in ("unreachable", "timeout"),
        "invalid": health == "invalid",
        "busy": health == "busy",
        "drift": bool(row.drift),
    }.get(state, True)


def age(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    s = max(0.0, time.time() - epoch)
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 7200:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def create_app(fleet: Fleet, token: str | None = None) -> Flask:
    app = Flask(__name__)
    app.jinja_env.globals.update(age=age, STATES=STATES)

    @app.before_request
    def _guard() -> Any:
        if request.method not in ("GET", "HEAD"):
            abort(405)
        if token is None or request.path == "/healthz" or request.path.startswith("/static/"):
            return None
        given = request.args.get("token")
        if given is not None and hmac.compare_digest(given.encode(), token.encode()):
            rest = {k: v for k, v in request.args.items() if k != "token"}
            resp = make_response(redirect(request.path + (f"?{urlencode(rest)}" if rest else ""), code=303))
            resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure)
            return resp
        bearer = request.headers.get("Authorization", "")
        offered = bearer[7:] if bearer.startswith("Bearer ") else request.cookies.get(COOKIE, "")
        if offered and hmac.compare_digest(offered.encode(), token.encode()):
            return None
        return Response("a token is required: open the address given by `omldeploy dashboard` "
                        "(?token=...) or send 'Authorization: Bearer <token>'\n", status=401,
                        mimetype="text/plain")

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.update(HEADERS)
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        snap = fleet.current()
        return Response("ok\n" if snap.taken else "starting\n", mimetype="text/plain")

    @app.get("/")
    def index() -> str:
        snap = fleet.current()
        state = request.args.get("state", "all")
        if state not in STATES:
            state = "all"
        q = request.args.get("q", "")[:100]
        rows = [r for r in snap.rows if matches(r, state) and q.lower() in r.tenant.lower()]
        counts = {s: sum(1 for r in snap.rows if matches(r, s)) for s in STATES}
        return render_template("index.html", snap=snap, rows=rows, state=state, q=q, counts=counts,
                               progress=fleet.progress, root=str(fleet.root))

    @app.get("/tenant/<name>")
    def tenant(name: str) -> str:
        snap = fleet.current()
        row = snap.row(name)  # only names the survey found: a URL never reaches the file system
        if row is None:
            abort(404)
        ops = [(rec, describe(rec.extra.get("timings")) if isinstance(rec.extra, dict)
                and rec.extra.get("timings") else []) for rec in tenant_operations(fleet.root, row.tenant)]
        return render_template("tenant.html", snap=snap, row=row, ops=ops)

    return app
