"""A local ACME server for the e2e tier: Debian's `pebble` (the ACME test server from Let's Encrypt)
and `pebble-challtestsrv` (its DNS), on the sandbox bridge address of the controller.

Pebble runs in the controller's own network namespace, bound only to the bridge address, so only
that sandbox's hosts reach it and nothing listens on the machine's other addresses. Its DNS answers
every A query with the web host's address, so the tenant's fqdn resolves without touching any real
DNS; HTTP-01 is then validated by fetching `http://<fqdn>/.well-known/acme-challenge/<token>` from the
host's nginx, exactly as Let's Encrypt would. Pebble's own HTTPS certificate comes from a throwaway
CA made here; the tenant trusts it through `acme_server_ca.pem` (LEGO_CA_CERTIFICATES in lego).

Pebble issues from a fresh root and intermediate on every start (management API `/intermediates/0`),
so a certificate served by nginx can be checked to be this pebble's.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACME_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_PORT = 8053
CHALLTESTSRV_MANAGEMENT_PORT = 8055


@dataclass
class AcmeServer:
    address: str  # the bridge address pebble listens on
    work: Path
    ca_pem: bytes  # trust for pebble's HTTPS (API and management)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def directory(self) -> str:
        return f"https://{self.address}:{ACME_PORT}/dir"

    def intermediate(self) -> x509.Certificate:
        """The intermediate this pebble signs with (fresh on every pebble start)."""
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        url = f"https://{self.address}:{MANAGEMENT_PORT}/intermediates/0"
        with urllib.request.urlopen(url, timeout=10, context=ctx) as resp:
            return x509.load_pem_x509_certificate(resp.read())

    def logs(self) -> str:
        return "".join((self.work / f).read_text(errors="replace")[-3000:] for f in ("pebble.log", "dns.log")
                       if (self.work / f).exists())

    def stop(self) -> None:
        """Stop our own processes, by the handles we started them with."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs.clear()
        shutil.rmtree(self.work, ignore_errors=True)


def _https_identity(address: str) -> tuple[bytes, bytes, bytes]:
    """(ca_pem, cert_pem, key_pem): a throwaway CA and pebble's HTTPS certificate for `address`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omldeploy e2e pebble HTTPS CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def _wait_port(address: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.args[0]} is not listening on {address}:{port} after {timeout:.0f}s")


def start(address: str, web_host_ip: str) -> AcmeServer:
    """Pebble (ACME on :14000, management on :15000) and its DNS (every name -> web_host_ip) on `address`."""
    for program in ("pebble", "pebble-challtestsrv"):
        if shutil.which(program) is None:
            raise RuntimeError(f"{program} is missing: apt-get install pebble (.ci/e2e-setup.sh)")
    work = Path(tempfile.mkdtemp(prefix="omldeploy-e2e-pebble-"))
    ca_pem, cert_pem, key_pem = _https_identity(address)
    (work / "cert.pem").write_bytes(cert_pem)
    (work / "key.pem").write_bytes(key_pem)
    (work / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"{address}:{ACME_PORT}", "managementListenAddress": f"{address}:{MANAGEMENT_PORT}",
        "certificate": str(work / "cert.pem"), "privateKey": str(work / "key.pem"),
        "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    server = AcmeServer(address, work, ca_pem)
    try:
        with open(work / "dns.log", "wb") as log:
            dns = subprocess.Popen(["pebble-challtestsrv", "-dns01", f"{address}:{DNS_PORT}",
                                    "-management", f"{address}:{CHALLTESTSRV_MANAGEMENT_PORT}", "-http01", "",
                                    "-https01", "", "-tlsalpn01", "", "-defaultIPv4", web_host_ip,
                                    "-defaultIPv6", ""], stdout=log, stderr=subprocess.STDOUT)
        server.procs.append(dns)
        _wait_port(address, CHALLTESTSRV_MANAGEMENT_PORT, dns)
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        with open(work / "pebble.log", "wb") as log:
            pebble = subprocess.Popen(["pebble", "-config", str(work / "pebble.json"), "-dnsserver",
                                       f"{address}:{DNS_PORT}"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                      cwd=work)
        server.procs.append(pebble)
        _wait_port(address, ACME_PORT, pebble)
    except BaseException:
        server.stop()
        raise
    return server
