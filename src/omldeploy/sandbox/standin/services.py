"""Entry points of the images that run REAL Debian services, shaped like the official images.

Each prepares what the official image's entrypoint prepares (data directory bootstrap, config from
environment) and then execs the real program, so the container's main process is the service.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import NoReturn

from .common import exit_on_term, fail, log, serve_http, set_role, sleep_forever

PGBIN = Path("/usr/lib/postgresql/15/bin")


def _exec(argv: list[str], user: str | None = None, *, announce: bool = True) -> NoReturn:
    """Replace this process with the real service (optionally dropping to a system user).

    A command given instead of the service (psql, openssl, ...) runs silently, so its output
    stays exactly what the command prints.
    """
    if announce:
        log("exec " + " ".join(argv))
    sys.stdout.flush()
    if user is not None:
        pw = pwd.getpwnam(user)
        os.initgroups(user, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        os.environ["HOME"] = pw.pw_dir
    exe = shutil.which(argv[0]) or argv[0]
    os.execv(exe, argv)


def _as_postgres(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    pw = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return subprocess.run(argv, preexec_fn=demote, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)


def postgres(args: list[str]) -> int:
    """Like the official image: bootstrap an empty PGDATA from POSTGRES_*, then exec postgres."""
    set_role("postgres-entry")
    if args and args[0] != "postgres" and not args[0].startswith("-"):
        _exec(args, announce=False)
    pg_args = args[1:] if args and args[0] == "postgres" else args
    sockets = Path("/run/postgresql")
    sockets.mkdir(parents=True, exist_ok=True)
    shutil.chown(sockets, "postgres", "postgres")
    pgdata = Path(os.environ.get("PGDATA") or "/var/lib/postgresql/data")
    pgdata.mkdir(parents=True, exist_ok=True)
    shutil.chown(pgdata, "postgres", "postgres")
    pgdata.chmod(0o700)
    if not (pgdata / "PG_VERSION").exists():
        rc = _initdb(pgdata)
        if rc:
            return rc
    if os.environ.get("POSTGRES_SSL", "").lower() in ("require", "on", "true", "1"):
        rc = _enable_ssl(pgdata)
        if rc:
            return rc
    _exec([str(PGBIN / "postgres"), "-D", str(pgdata), *pg_args], user="postgres")


def _initdb(pgdata: Path) -> int:
    password = os.environ.get("POSTGRES_PASSWORD", "")
    user = os.environ.get("POSTGRES_USER") or "postgres"
    db = os.environ.get("POSTGRES_DB") or user
    if not password and os.environ.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        return fail("database is uninitialized and POSTGRES_PASSWORD is not set (as the official image)")
    with tempfile.NamedTemporaryFile("w", delete=False, dir="/tmp") as pwf:
        pwf.write(password + "\n")
    shutil.chown(pwf.name, "postgres")
    log(f"initdb in {pgdata} for user {user}, database {db}")
    proc = _as_postgres([str(PGBIN / "initdb"), "-D", str(pgdata), f"--username={user}",
                         f"--pwfile={pwf.name}", "--auth-local=trust", "--auth-host=scram-sha-256",
                         "--encoding=UTF8"])
    os.unlink(pwf.name)
    if proc.returncode:
        return fail(f"initdb failed: {proc.stderr.strip()}")
    with (pgdata / "pg_hba.conf").open("a") as fh:
        fh.write("host all all all scram-sha-256\n")
    with (pgdata / "postgresql.conf").open("a") as fh:
        fh.write("listen_addresses = '*'\n")
    if db != "postgres":
        # -l: the temporary server must not inherit our pipes, or waiting for pg_ctl never ends
        start = _as_postgres([str(PGBIN / "pg_ctl"), "-D", str(pgdata), "-w", "-l", "/tmp/sandbox-initdb.log",
                              "-o",
                              "-c listen_addresses='' -c unix_socket_directories=/tmp", "start"])
        if start.returncode:
            return fail(f"temporary server did not start: {start.stderr.strip()}")
        made = _as_postgres(["psql", "-h", "/tmp", "-U", user, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                             "-c", f'CREATE DATABASE "{db}"'])
        _as_postgres([str(PGBIN / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
        if made.returncode:
            return fail(f"CREATE DATABASE {db} failed: {made.stderr.strip()}")
    return 0


def _enable_ssl(pgdata: Path) -> int:
    """POSTGRES_SSL=require: self-signed server cert, and only SSL connections over TCP."""
    crt, key = pgdata / "server.crt", pgdata / "server.key"
    if not crt.exists():
        proc = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                               "-subj", "/CN=sandbox-postgres", "-keyout", str(key), "-out", str(crt)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            return fail(f"openssl failed: {proc.stderr.strip()}")
        for f in (crt, key):
            shutil.chown(f, "postgres", "postgres")
        key.chmod(0o600)
    hba = pgdata / "pg_hba.conf"
    tcp_rules = ("host ", "hostssl ", "hostnossl ")
    lines = [ln for ln in hba.read_text().splitlines() if not ln.startswith(tcp_rules)]
    lines += ["hostssl all all all scram-sha-256", "hostnossl all all all reject"]
    hba.write_text("\n".join(lines) + "\n")
    conf = pgdata / "postgresql.conf"
    text = conf.read_text()
    if "ssl = on  # sandbox" not in text:
        conf.write_text(text + "ssl = on  # sandbox\n")
    log("SSL required for TCP connections (self-signed certificate)")
    return 0


def _own_data_by_redis() -> None:
    """What the official entrypoint does in /data: `find . ! -user redis -exec chown redis {} +`."""
    uid = pwd.getpwnam("redis").pw_uid
    for root, dirs, files in os.walk("/data"):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            if os.lstat(name).st_uid != uid:
                os.lchown(name, uid, -1)


def redis(args: list[str]) -> int:
    """omnileads/redis: redis-server bound to BIND_IP with /data, replica of MAIN when ROLE=replica.

    As the official image's entrypoint: redis-server runs as user redis (after handing /data to it),
    anything else given as the command (redis-sentinel CONF, redis-cli) runs as is, as root.
    """
    set_role("redis-entry")
    if args and args[0] in ("redis-sentinel", "redis-cli"):
        _exec(args, announce=False)
    if args and args[0] == "redis-server":
        _own_data_by_redis()
        _exec(args, user="redis", announce=False)
    bind = os.environ.get("BIND_IP") or "0.0.0.0"
    argv = ["redis-server", "--bind", *bind.replace(",", " ").split(), "--port", "6379", "--dir", "/data",
            "--protected-mode", "no", "--daemonize", "no", "--appendonly", "no"]
    if os.environ.get("ROLE") == "replica" and os.environ.get("MAIN"):
        argv += ["--replicaof", os.environ["MAIN"], "6379"]
        log(f"replica of {os.environ['MAIN']} (ROLE=replica)")
    _own_data_by_redis()
    _exec(argv + args, user="redis")


NGINX_CONF = """\
worker_processes 1;
error_log stderr warn;
pid /run/nginx.pid;
events {{ worker_connections 512; }}
http {{
  access_log /dev/stdout;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  # as the official nginx image (the base of omnileads/nginx): extra server blocks (ACME HTTP-01)
  include /etc/nginx/conf.d/*.conf;
  server {{
    listen 443 ssl;
    ssl_certificate {certs}/cert.pem;
    ssl_certificate_key {certs}/key.pem;
    location = /health {{
      default_type application/json;
      return 200 '{{"role":"nginx","ok":true,"stand_in":false,"image":"{image}"}}';
    }}
{extra}
    location / {{
      proxy_pass http://{django}:{wsgi};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-Proto https;
    }}
  }}
}}
"""


def nginx(args: list[str]) -> int:
    """omnileads/nginx: HTTPS on 443 with /etc/omnileads/certs, proxying to the app from env."""
    set_role("nginx-entry")
    if args and args[0] != "nginx":
        _exec(args, announce=False)
    certs = "/etc/omnileads/certs"
    for f in ("cert.pem", "key.pem"):
        if not Path(certs, f).exists():
            return fail(f"{certs}/{f} is missing (nginx serves HTTPS with it)")
    django = os.environ.get("DJANGO_HOSTNAME", "")
    if not django:
        return fail("DJANGO_HOSTNAME is not set")
    extra: list[str] = []

    def ws(path: str, host_var: str, port_var: str, default_port: str, scheme: str = "http") -> None:
        host = os.environ.get(host_var, "")
        if host:
            port = os.environ.get(port_var) or default_port
            extra.append(f"    location {path} {{\n      proxy_pass {scheme}://{host}:{port};\n"
                         "      proxy_http_version 1.1;\n      proxy_set_header Upgrade $http_upgrade;\n"
                         "      proxy_set_header Connection $connection_upgrade;\n    }")

    ws("/channels/", "DAPHNE_HOSTNAME", "ASGI_PORT", "8098")
    ws("/consumers/", "WEBSOCKETS_HOSTNAME", "WEBSOCKETS_PORT", "8000")
    ws("/ws", "KAMAILIO_HOSTNAME", "KAMAILIO_PORT", "14443", scheme="https")
    conf = NGINX_CONF.format(certs=certs, image=os.environ.get("SANDBOX_IMAGE", ""), extra="\n".join(extra),
                             django=django, wsgi=os.environ.get("WSGI_PORT") or "8099")
    Path("/etc/nginx/nginx.conf").write_text(conf)
    test = subprocess.run(["nginx", "-t"], capture_output=True, text=True, check=False)
    if test.returncode:
        return fail(f"nginx config rejected: {test.stderr.strip()}")
    _exec(["nginx", "-g", "daemon off;", *(args[1:] if args else [])])


def lego(args: list[str]) -> int:
    """goacme/lego: the real lego ACME client (Debian's build); arguments are lego's, as with the
    official image whose entrypoint is /lego."""
    set_role("lego")
    _exec(["/usr/local/bin/lego", *args], announce=False)


def haproxy(args: list[str]) -> int:
    """library/haproxy: same argument rules as the official entrypoint."""
    set_role("haproxy-entry")
    cfg = "/usr/local/etc/haproxy/haproxy.cfg"
    if not args:
        args = ["haproxy", "-f", cfg]
    if args[0].startswith("-"):
        args = ["haproxy", *args]
    if args[0] == "haproxy":
        if "-f" in args and not Path(args[args.index("-f") + 1]).exists():
            return fail(f"{args[args.index('-f') + 1]} not found (bind-mount the HAProxy config)")
        args = ["haproxy", "-W", "-db", *args[1:]]
    _exec(args)


def keepalived(args: list[str]) -> int:
    """osixia/keepalived: keepalived in the foreground with /etc/keepalived/keepalived.conf."""
    set_role("keepalived-entry")
    conf = "/etc/keepalived/keepalived.conf"
    if args and not args[0].startswith("-"):
        _exec(args, announce=False)
    if not args and not Path(conf).exists():
        return fail(f"{conf} not found (bind-mount the keepalived config)")
    _exec(["keepalived", *(args or ["--dont-fork", "--log-console", "-f", conf])])


def exporter(binary: str, args: list[str]) -> int:
    """Prometheus exporters and Prometheus itself: exec the Debian binary with the given flags."""
    set_role(binary + "-entry")
    if args and not args[0].startswith("-"):
        _exec(args, announce=False)
    _exec([binary, *args])


def prometheus(args: list[str]) -> int:
    defaults = ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
    if not args and not Path("/etc/prometheus/prometheus.yml").exists():
        Path("/etc/prometheus/prometheus.yml").write_text(
            "global: {scrape_interval: 15s}\nscrape_configs: []\n")
    return exporter("prometheus", args or defaults)


MINIO_PORTS = ("-master.port=19333", "-volume.port=18080", "-filer.port=18888", "-admin.ui=false",
               "-webdav=false", "-master.telemetry=false", "-master.telemetry.url=http://127.0.0.1:9/")


def minio(args: list[str]) -> int:
    """minio/minio stand-in: SeaweedFS S3 on :9000 with MINIO_ROOT_USER/PASSWORD, data in /data.

    Accepts MinIO's `server DIR [--address ADDR] [--console-address ADDR]`; the console address
    gets a small placeholder page.
    """
    set_role("minio")
    exit_on_term()
    if args and args[0] == "minio":
        args = args[1:]
    if not args or args[0] != "server":
        return fail(f"expected `server DIR [--console-address ADDR]`, got {args!r}")
    rest = args[1:]
    data_dir, address, console = "/data", ":9000", ""
    i = 0
    while i < len(rest):
        a = rest[i]
        if a in ("--address", "--console-address") and i + 1 < len(rest):
            if a == "--address":
                address = rest[i + 1]
            else:
                console = rest[i + 1]
            i += 2
            continue
        if not a.startswith("-"):
            data_dir = a
        i += 1
    user, password = os.environ.get("MINIO_ROOT_USER", ""), os.environ.get("MINIO_ROOT_PASSWORD", "")
    if len(user) < 3 or len(password) < 8:
        return fail("MINIO_ROOT_USER (>= 3 chars) and MINIO_ROOT_PASSWORD (>= 8 chars) must be set, "
                    "as MinIO requires")
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    conf = Path("/tmp/sandbox-s3.json")
    identity = {"name": "root", "credentials": [{"accessKey": user, "secretKey": password}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
    conf.write_text(json.dumps({"identities": [identity]}))
    port = address.rpartition(":")[2] or "9000"
    if console:
        host, _, cport = console.rpartition(":")
        try:
            serve_http(host or "0.0.0.0", int(cport), {
                "*": lambda: (200, "MinIO console placeholder (sandbox: S3 is SeaweedFS)\n")})
        except (OSError, ValueError) as exc:
            return fail(f"cannot listen on console address {console}: {exc}")
    weed = subprocess.Popen(["weed", "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
                             f"-s3.port={port}", f"-s3.config={conf}", *MINIO_PORTS])
    log(f"SeaweedFS S3 on :{port} for MINIO_ROOT_USER={user}, data in {data_dir}")

    def watch() -> None:
        rc = weed.wait()
        fail(f"weed exited with {rc}")
        os._exit(rc or 1)

    threading.Thread(target=watch, daemon=True).start()
    sleep_forever()
    return 0


def mc(args: list[str]) -> int:
    """`mc` (MinIO client) stand-in, run with `podman exec` inside the minio stand-in container.

    Supports what omldeploy uses: `mb [--ignore-existing] ALIAS/BUCKET`, `admin user add ALIAS AK` (SK on stdin)
    and `admin policy attach ALIAS readwrite --user AK`, with the alias from `MC_HOST_<ALIAS>`
    (http://USER:PASSWORD@HOST:PORT). Wrong admin credentials fail as MinIO would. Buckets and users
    are made with `weed shell` (s3.bucket.create, s3.configure), which the S3 server applies live.
    """
    set_role("mc")
    from urllib.parse import unquote, urlsplit

    def alias_of(target: str) -> tuple[str, str]:
        name, _, rest = target.partition("/")
        url = os.environ.get(f"MC_HOST_{name}", "")
        if not url:
            raise SystemExit(fail(f"mc: alias {name!r} is not configured (MC_HOST_{name} unset)"))
        parts = urlsplit(url)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        if (user, password) != (os.environ.get("MINIO_ROOT_USER"), os.environ.get("MINIO_ROOT_PASSWORD")):
            raise SystemExit(fail(f"mc: <ERROR> Unable to authenticate alias {name}: "
                                  "The Access Key Id you provided does not exist in our records."))
        return name, rest

    def weed_shell(command: str) -> str:
        proc = subprocess.run(["weed", "shell", "-master=127.0.0.1:19333", "-filer=127.0.0.1:18888"],
                              input=command + "\n",
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise SystemExit(fail(f"mc: weed shell failed: {proc.stderr.strip()[-300:]}"))
        return proc.stdout

    words = [a for a in args if not a.startswith("--")]
    flags = {a for a in args if a.startswith("--")}
    if words[:1] == ["mb"] and len(words) == 2:
        _, bucket = alias_of(words[1])
        if not bucket:
            return fail("mc: mb needs ALIAS/BUCKET")
        if bucket in weed_shell("s3.bucket.list").split():
            if "--ignore-existing" in flags:
                print(f"Bucket `{words[1]}` already exists.")
                return 0
            return fail(f"mc: <ERROR> Unable to make bucket `{words[1]}`. Your previous request to create "
                        "the named bucket succeeded and you already own it.")
        weed_shell(f"s3.bucket.create -name {bucket}")
        print(f"Bucket created successfully `{words[1]}`.")
        return 0
    if words[:3] == ["admin", "user", "add"] and len(words) == 6:
        # real mc accepts it, but a secret on an argv is visible to every user of the host: the stand-in
        # refuses it so that the e2e runs catch a regression (omldeploy passes it on stdin)
        return fail("mc stand-in: the secret key was given on the command line; pass it on stdin")
    if words[:3] == ["admin", "user", "add"] and len(words) == 5:
        alias_of(words[3])
        ak, sk = words[4], sys.stdin.readline().rstrip("\n")
        if len(ak) < 3 or len(sk) < 8:
            return fail("mc: <ERROR> access key must be 3+ and secret key 8+ characters")
        weed_shell(f"s3.configure -access_key={ak} -secret_key={sk} -user={ak} "
                   "-actions=Read,Write,List,Tagging -apply")
        print(f"Added user `{ak}` successfully.")
        return 0
    if words[:3] == ["admin", "policy", "attach"] and len(words) >= 5:
        alias_of(words[3])
        print(f"Attached Policies: [{words[4]}]")
        return 0
    return fail(f"mc stand-in: unsupported command {' '.join(args)!r}")
