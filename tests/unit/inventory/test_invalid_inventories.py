"""Invalid inventories, each a small mutation of a bundled example, and the exact problem each one reports.

Every case names the layout it starts from, the mutations, the problem key it must report and a fragment
of the message. Unless a case lists the other keys its mutation rightly cascades into (`others`), the
reported error keys must be exactly `{key}`: a mutation must not drown the operator in side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from omldeploy.catalog.releases import find_release
from omldeploy.inventory.problems import InventoryError
from tests.unit.inventory.conftest import (
    Mutation,
    TenantDir,
    build,
    del_group,
    del_host,
    del_var,
    describe,
    edit,
    errors,
    insert_after,
    replace,
    set_group,
    set_host,
    set_var,
    text,
)

VERSIONS = ("omnileads_version", "websockets_version", "nginx_version", "kamailio_version", "asterisk_version",
            "rtpengine_version", "postgres_version")
SMTP = "django.core.mail.backends.smtp.EmailBackend"
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


@dataclass(frozen=True)
class Case:
    layout: str
    mutations: tuple[Mutation, ...]
    key: str
    fragments: tuple[str, ...]
    others: frozenset[str] = frozenset()  # further error keys the mutation rightly causes
    exact: bool = True  # False: only require `key` (a mutation that breaks everything after it)
    line: int | str | None = None  # the line, or a text whose (first) line in the built inventory it is
    files: dict[str, bytes] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # message fragments that must NOT appear for `key`


def case(
    case_id: str, layout: str, mutations: Mutation | tuple[Mutation, ...], key: str, fragment: str | tuple[str, ...],
    **kw: Any,
) -> Any:
    muts = mutations if isinstance(mutations, tuple) else (mutations,)
    frags = fragment if isinstance(fragment, tuple) else (fragment,)
    if "others" in kw:
        kw["others"] = frozenset(kw["others"])
    return pytest.param(Case(layout, muts, key, frags, **kw), id=case_id)


def _add_host(host: str, values: dict[str, Any], group: str | None = None) -> Mutation:
    def fn(data: dict[str, Any]) -> None:
        where = data["all"] if group is None else data["all"]["children"][group]
        where["hosts"][host] = values

    return edit(fn, f"add host {host}")


def _drop_host(group: str, host: str) -> Mutation:
    return edit(lambda d: d["all"]["children"][group]["hosts"].pop(host), f"drop {host}")


def _seven_versions_blank(data: dict[str, Any]) -> None:
    for key in VERSIONS:
        data["all"]["vars"][key] = None


DEEP = "[" * 200 + "]" * 200

CASES = [
    # ---------------------------------------------------------------- YAML syntax and document shape
    case("yaml-tab-indent", "aio", replace("    TZ:", "\tTZ:"), "(yaml)", ("not valid YAML", "'\\t'"),
         line="\tTZ:"),
    case("yaml-bad-indent", "aio", replace("      omni_ip_lan: 10.10.10.2", "     omni_ip_lan: 10.10.10.2"),
         "(yaml)", "not valid YAML", line="     omni_ip_lan"),
    case("yaml-unclosed-quote", "aio", replace("TZ: America/Argentina/Cordoba", 'TZ: "America/Argentina/Cordoba'),
         "(yaml)", "not valid YAML"),
    case("yaml-unclosed-flow-mapping", "ait",
         replace("""google_maps_center: '{ "lat": -31.416668, "lng": -64.183334 }'""",
                 """google_maps_center: { "lat": -31.416668"""), "(yaml)", "not valid YAML"),
    case("yaml-two-documents", "aio", text("all: {}\n---\nall: {}\n"), "(yaml)", "single document"),
    case("yaml-merge-key", "aio", insert_after("  vars:", "    <<: {TZ: UTC}"), "(yaml)", "merge keys (<<)",
         line="<<:"),
    case("yaml-complex-key", "aio", insert_after("  vars:", "    ? [a, b]\n    : 1"), "(yaml)",
         "mapping keys must be plain names"),
    case("yaml-vault-tag", "aio",
         replace("postgres_password: CHANGE-ME-postgres",
                 "postgres_password: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n      61626364"),
         "all.vars.postgres_password", ("encrypted with Ansible Vault", "no vault password given"),
         line="postgres_password: !vault"),
    case("yaml-unknown-tag", "aio", replace("TZ: America/Argentina/Cordoba", "TZ: !secret UTC"),
         "(yaml)", "could not determine a constructor for the tag '!secret'", line="TZ: !secret"),
    case("yaml-python-tag", "aio", replace("TZ: America/Argentina/Cordoba", "TZ: !!python/name:os.system"),
         "(yaml)", "not valid YAML"),
    case("yaml-impossible-date", "aio", insert_after("  vars:", "    restore_file_timestamp: 2023-13-45"), "(yaml)",
         "cannot read the value '2023-13-45'", line="2023-13-45"),
    case("yaml-huge-integer", "aio", replace("shm_size: 64", "shm_size: " + "9" * 5000), "(yaml)",
         "cannot read the value", line="shm_size: 999"),
    case("yaml-bad-explicit-int", "aio", replace("pkg_size: 8", "pkg_size: !!int eight"), "(yaml)",
         "cannot read the value 'eight'"),
    case("yaml-bad-explicit-bool", "aio", replace("enterprise_edition: false", "enterprise_edition: !!bool maybe"),
         "(yaml)", "cannot read the value 'maybe'"),
    case("yaml-nested-too-deep", "aio", text("all:\n  vars:\n    x: " + DEEP + "\n"), "(yaml)", "nested deeper"),
    case("yaml-recursion-bomb", "aio", text("- " * 1500 + "x\n"), "(yaml)", "nested deeper"),
    case("empty-file", "aio", text("# nothing here\n"), "(file)", "the inventory is empty", others={"all.hosts"}),
    case("not-a-mapping-list", "aio", text("- omnileads_aio\n- 10.10.10.2\n"), "(file)", "must be a YAML mapping",
         others={"all.hosts"}),
    case("not-a-mapping-scalar", "aio", text("just some text\n"), "(file)", "must be a YAML mapping",
         others={"all.hosts"}),
    case("missing-all-group", "aio", replace("all:", "tenant:"), "all", "no `all:` group", exact=False, line=1),
    case("all-is-a-list", "aio", text("all:\n  - omnileads_aio\n"), "all", "a group must be a mapping",
         others={"all.hosts"}),
    case("unknown-group-section", "aio", replace("  vars:", "  var:"), "all.var", "unknown group section",
         exact=False, line="  var:"),
    case("unknown-group-section-in-child", "ha", replace("      vars:\n        postgres_host_ha",
                                                         "      variables:\n        postgres_host_ha"),
         "all.children.omnileads_data.variables", "unknown group section",
         others={"sql_1.ha_vip_nic", "sql_2.ha_vip_nic"}),
    case("hosts-is-a-list", "aio", edit(lambda d: d["all"].update(hosts=["omnileads_aio"])), "all.hosts",
         "`hosts` must be a mapping", others={"data_host", "voice_host", "application_host"}),
    case("host-vars-not-a-mapping", "aio", edit(lambda d: d["all"]["hosts"].update(omnileads_aio="10.10.10.2")),
         "all.hosts.omnileads_aio", "host variables must be a mapping",
         others={"data_host", "voice_host", "application_host", "all.hosts"}),
    case("no-hosts", "aio", edit(lambda d: d["all"].update(hosts=None)), "all.hosts", "no hosts in the inventory",
         others={"data_host", "voice_host", "application_host"}),
    # ---------------------------------------------------------------- unknown variables and scope
    case("typo-postgres_pasword", "aio", replace("postgres_password:", "postgres_pasword:"), "postgres_pasword",
         "did you mean `postgres_password`?", others={"postgres_password"}, line="postgres_pasword:"),
    case("typo-bucket_ur", "cloud", replace("bucket_url:", "bucket_ur:"), "bucket_ur",
         "did you mean `bucket_url`?", others={"s3_http_admin_pass"}),
    case("typo-lowercase-tz", "aio", replace("TZ:", "tz:"), "tz", "did you mean `TZ`?", others={"TZ"}),
    case("unknown-var-no-hint", "aio", set_var("frobnicate_level", 3), "frobnicate_level", "unknown variable",
         absent=("did you mean",)),
    case("unknown-host-var", "aio", set_host("omnileads_aio", "omni_ip_lna", "10.10.10.2"),
         "omnileads_aio.omni_ip_lna", "did you mean `omni_ip_lan`?"),
    case("unknown-group-var", "ha", set_group("omnileads_voice", "ha_vip_nick", "eth0"), "voice_1.ha_vip_nick",
         "did you mean `ha_vip_nic`?", others={"voice_2.ha_vip_nick"}),
    case("tenant-key-at-host-level", "aio", set_host("omnileads_aio", "TZ", "UTC"), "omnileads_aio.TZ",
         "tenant-wide setting; write it once under all.vars"),
    case("tenant-key-in-group-vars", "ha", set_group("omnileads_app", "infra_env", "lan"), "app_1.infra_env",
         "tenant-wide setting", others={"app_2.infra_env"}),
    case("host-key-under-all-vars", "aio", set_var("omni_ip_lan", "10.10.10.2"), "omni_ip_lan",
         "per-host setting"),
    case("ha_vip_nic-under-all-vars", "ha", set_var("ha_vip_nic", "eth0"), "ha_vip_nic", "per-host setting"),
    # ---------------------------------------------------------------- type errors, one per kind
    case("ip-bad-octet", "cloud", set_var("omni_ip_wan", "300.1.1.1"), "omni_ip_wan", "is not an IPv4 address"),
    case("ip-host-level", "ait", set_host("omnileads_voice", "omni_ip_lan", "10.10.10"),
         "omnileads_voice.omni_ip_lan", "is not an IPv4 address", others={"voice_host"}),
    case("ip-redis_ip_main-hostname", "ha", set_var("redis_ip_main", "app-1.lan"), "redis_ip_main",
         "is not an IPv4 address"),
    case("host-with-space", "aio", set_var("dialer_host", "wombat dialer"), "dialer_host",
         "is not an IP address or host name"),
    case("host-dotted-digits", "ha", set_var("postgres_host", "10.1.2"), "postgres_host",
         "is not an IP address or host name", absent=("missing",)),
    case("int-word", "aio", set_var("postgres_port", "five"), "postgres_port", "must be a number"),
    case("int-negative", "aio", set_var("shm_size", -64), "shm_size", "must not be negative"),
    case("int-float", "aio", set_var("SCA", 3.5), "SCA", "must be a number"),
    case("int-bool", "aio", set_var("ECCTL", True), "ECCTL", "must be a number"),
    case("int-host-level", "ha", set_group("omnileads_data", "netprefix", "slash24"), "sql_1.netprefix",
         "must be a number", others={"sql_2.netprefix"}),
    case("bool-maybe", "aio", set_var("enterprise_edition", "maybe"), "enterprise_edition", "must be true or false"),
    case("bool-two", "cloud", set_var("postgres_ssl", 2), "postgres_ssl", "must be true or false"),
    case("enum-infra_env", "aio", set_var("infra_env", "wan"), "infra_env", "is not one of the allowed values"),
    case("enum-certs", "aio", set_var("certs", "letsencrypt"), "certs", "is not one of the allowed values"),
    case("enum-callrec_device", "ait", set_var("callrec_device", "nfs"), "callrec_device",
         "is not one of the allowed values"),
    case("enum-podman_unit_style", "aio", set_var("podman_unit_style", "docker"), "podman_unit_style",
         "is not one of the allowed values"),
    case("enum-ha_rol", "ha", set_host("sql_1", "ha_rol", "primary"), "sql_1.ha_rol",
         "is not one of the allowed values", absent=("missing",)),
    case("url-ftp", "cloud", set_var("bucket_url", "ftp://sfo3.digitaloceanspaces.com"), "bucket_url",
         "is not a bucket URL", others={"s3_http_admin_pass"}),
    case("url-no-scheme", "ha", set_var("bucket_url", "172.16.101.3:9000"), "bucket_url", "is not a bucket URL",
         absent=("missing",)),
    case("email", "ha", set_var("ha_notification_email", "noc-at-example.com"), "ha_notification_email",
         "is not an e-mail address"),
    case("cidr", "ha", set_group("omnileads_data", "netaddr", "172.16.101.0/33"), "sql_1.netaddr",
         "is not a network", others={"sql_2.netaddr"}),
    case("nic", "ha", set_group("omnileads_voice", "ha_vip_nic", "eth0 eth1"), "voice_1.ha_vip_nic",
         "is not a network interface name", others={"voice_2.ha_vip_nic"}, absent=("missing",)),
    case("tz", "aio", set_var("TZ", "Mars/Olympus_Mons"), "TZ", "is not a known time zone", absent=("missing",)),
    case("version-tag-colon", "aio", set_var("asterisk_version", "230508:01"), "asterisk_version",
         "is not a valid image tag"),
    case("version-tag-space", "ha", set_var("omnileads_version", "1.27 .1"), "omnileads_version",
         "is not a valid image tag"),
    case("str-multiline", "aio", set_var("google_maps_api_key", "line one\nline two"), "google_maps_api_key",
         "must be on one line"),
    case("str-mapping", "aio", set_var("ami_user", {"name": "omnileads"}), "ami_user",
         "must be a single value, not a mapping or list"),
    case("str-list", "aio", set_var("bucket_name", ["a", "b"]), "bucket_name", "not a mapping or list"),
    # ---------------------------------------------------------------- present but empty
    case("empty-dialer_host", "aio", insert_after("infra_env: lan", "    dialer_host:"), "dialer_host",
         "is present but empty", line="dialer_host:"),
    case("empty-quoted-TZ", "aio", set_var("TZ", ""), "TZ", "is present but empty", absent=("missing",)),
    case("empty-whitespace-user", "aio", set_var("postgres_user", "   "), "postgres_user", "is present but empty"),
    case("empty-image-version", "aio", set_var("asterisk_version", None), "asterisk_version",
         "is present but empty", absent=("missing",)),
    case("ha-seed-blank-versions", "ha", edit(_seven_versions_blank), "omnileads_version", "is present but empty",
         others=set(VERSIONS)),
    case("empty-host-omni_ip_lan", "aio", set_host("omnileads_aio", "omni_ip_lan", None),
         "omnileads_aio.omni_ip_lan", "is present but empty"),
    case("empty-ansible_host", "aio", set_host("omnileads_aio", "ansible_host", None), "omnileads_aio.ansible_host",
         "is empty or not a single address"),
    # ---------------------------------------------------------------- missing required keys
    case("missing-postgres_password", "aio", del_var("postgres_password"), "postgres_password",
         "missing: this setting is required"),
    case("missing-TZ", "ait", del_var("TZ"), "TZ", "missing: this setting is required"),
    case("missing-certs-and-callrec", "aio", (del_var("certs"), del_var("callrec_device")), "certs", "missing",
         others={"callrec_device"}),
    case("missing-bucket-keys", "cloud", (del_var("bucket_access_key"), del_var("bucket_secret_key")),
         "bucket_access_key", "missing", others={"bucket_secret_key"}),
    case("missing-minio-admin-pass", "aio", del_var("s3_http_admin_pass"), "s3_http_admin_pass",
         "needs its admin password"),
    case("missing-image-version", "ait", del_var("asterisk_version"), "asterisk_version",
         "missing: the image tag must be set"),
    case("missing-postgres_version-local-db", "aio", del_var("postgres_version"), "postgres_version",
         "missing: the image tag"),
    case("missing-omni_ip_lan", "ait", del_host("omnileads_voice", "omni_ip_lan"), "omnileads_voice.omni_ip_lan",
         "missing: every host needs its private (LAN) address", others={"voice_host"}),
    case("ha-missing-redis_ip_main", "ha", del_var("redis_ip_main"), "redis_ip_main",
         "missing: required in a high-availability layout"),
    case("ha-missing-voice_host", "ha", del_var("voice_host"), "voice_host", "missing: required in a high-avail"),
    # ---------------------------------------------------------------- Jinja expressions
    case("jinja-undefined-name", "aio", set_var("data_host", "{{ no_such_var }}"), "data_host", "cannot resolve"),
    case("jinja-no-such-host", "ait", set_var("data_host", "{{ hostvars['no_such_host'].omni_ip_lan }}"),
         "data_host", "no host named 'no_such_host'"),
    case("jinja-no-such-hostvar", "aio", set_var("voice_host", "{{ hostvars['omnileads_aio'].omni_ip_wan }}"),
         "voice_host", "hostvars['omnileads_aio'] has no variable 'omni_ip_wan'"),
    case("jinja-cycle", "aio", (set_var("voice_host", "{{ application_host }}"),
                                set_var("application_host", "{{ voice_host }}")),
         "voice_host", "refer to each other in a loop", others={"application_host"}),
    case("jinja-self-reference", "aio", set_var("TZ", "{{ TZ }}"), "TZ", "loop: TZ -> TZ"),
    case("jinja-unclosed", "aio", set_var("data_host", "{{ hostvars['omnileads_aio'].omni_ip_lan "), "data_host",
         "invalid expression"),
    case("jinja-bad-block", "aio", set_var("TZ", "{% if %}UTC{% endif %}"), "TZ", "invalid expression"),
    case("jinja-host-var-in-tenant-value", "aio", set_var("data_host", "{{ omni_ip_lan }}"), "data_host",
         "is a host variable; a tenant-wide value cannot use it directly"),
    case("jinja-sandbox", "aio", set_var("shm_size", "{{ ''.__class__.__mro__ }}"), "shm_size",
         "expression not allowed"),
    case("jinja-division-by-zero", "aio", set_var("SCA", "{{ 1 // 0 }}"), "SCA", "cannot resolve"),
    case("jinja-resolves-to-bad-type", "aio", set_var("postgres_port", "{{ 'five' }}"), "postgres_port",
         "must be a number"),
    case("jinja-host-level", "aio", set_host("omnileads_aio", "omni_ip_lan", "{{ nope }}"),
         "omnileads_aio.omni_ip_lan", "cannot resolve", others={"data_host", "voice_host", "application_host"}),
    case("jinja-connection-var", "aio", set_host("omnileads_aio", "ansible_host", "{{ nope }}"),
         "omnileads_aio.ansible_host", "cannot resolve"),
    # ---------------------------------------------------------------- duplicate keys
    case("duplicate-different-value", "aio", insert_after("infra_env: lan", "    TZ: UTC"), "all.vars.TZ",
         "written twice with different values", line="TZ: America"),
    case("duplicate-host-var", "ait", insert_after("omni_ip_lan: 10.10.10.3", "      omni_ip_lan: 10.10.10.9"),
         "all.hosts.omnileads_voice.omni_ip_lan", "written twice with different values", line="10.10.10.9"),
    # ---------------------------------------------------------------- PostgreSQL rules
    case("postgres_ssl-without-host", "aio", set_var("postgres_ssl", True), "postgres_ssl",
         "postgres_host is not set"),
    case("postgres_out-true-without-host", "ait", set_var("postgres_out", True), "postgres_out",
         "is true but postgres_host is not set"),
    case("postgres_out-false-with-host", "cloud", set_var("postgres_out", False), "postgres_out",
         "is false but postgres_host points at an external server"),
    case("postgres_ha-without-ro-host", "cloud", set_var("postgres_ha", True), "postgres_ha",
         "postgres_ro_host (the read-only endpoint) is not set"),
    case("postgres-port-out-of-range", "aio", set_var("postgres_port", 70000), "postgres_port", "is not a TCP port"),
    case("cloud-ro-equals-rw", "cloud", (set_var("postgres_ha", True),
                                         set_var("postgres_ro_host", "private-oml-pgsql.db.example.com")),
         "postgres_ro_host", "equals postgres_host"),
    # ---------------------------------------------------------------- high availability
    case("ha-without-bucket_url", "ha", del_var("bucket_url"), "bucket_url", "high availability does not deploy"),
    case("ha-ro-vip-equals-rw-vip", "ha", set_var("postgres_ro_host", "172.16.101.201"), "postgres_ro_host",
         "the read-only VIP must differ from the read-write VIP"),
    case("ha-redis_ip_main-on-voice_2", "ha", set_var("redis_ip_main", "172.16.101.104"), "redis_ip_main",
         ("must be the LAN address of an app node", "voice_2's address")),
    case("ha-vip-is-a-host-address", "ha", set_var("voice_host", "172.16.101.103"), "voice_host",
         "is a virtual IP but equals host voice_1's address"),
    case("ha-two-roles-one-vip", "ha", set_var("voice_host", "172.16.101.204"), "application_host",
         "uses the same VIP as voice_host"),
    case("ha-one-data-host", "ha", _drop_host("omnileads_data", "sql_2"), "omnileads_data",
         "needs exactly two data hosts"),
    case("ha-three-app-hosts", "ha",
         _add_host("app_3", {"ansible_host": "172.16.101.109", "omni_ip_lan": "172.16.101.109", "ha_rol": "backup"},
                   "omnileads_app"), "omnileads_app", "needs exactly two app hosts"),
    case("ha-missing-ha_rol", "ha", del_host("voice_1", "ha_rol"), "voice_1.ha_rol",
         "missing: every HA host needs its initial role"),
    case("ha-two-mains", "ha", set_host("voice_2", "ha_rol", "main"), "omnileads_voice",
         "needs one ha_rol main and one ha_rol backup"),
    case("ha-missing-ha_vip_nic", "ha", del_group("omnileads_haproxy", "ha_vip_nic"), "haproxy_1.ha_vip_nic",
         "missing: the interface that carries the VIPs", others={"haproxy_2.ha_vip_nic"}),
    case("ha-netprefix-out-of-range", "ha", set_group("omnileads_voice", "netprefix", 33), "voice_1.netprefix",
         "is not an IPv4 prefix length", others={"voice_2.netprefix"}),
    case("ha-app_port-out-of-range", "ha", set_group("omnileads_haproxy", "app_port", 70000), "haproxy_1.app_port",
         "is not a TCP port", others={"haproxy_2.app_port"}),
    # ---------------------------------------------------------------- certificates
    case("certs-custom-without-files", "aio", set_var("certs", "custom"), "certs",
         ("cert.pem does not exist", "key.pem does not exist")),
    case("certs-custom-key-missing", "ait", set_var("certs", "custom"), "certs", "key.pem does not exist",
         files={"cert.pem": CERT_PEM}, absent=("cert.pem does not exist", "not a PEM")),
    case("certs-custom-not-pem", "aio", set_var("certs", "custom"), "certs",
         ("is not a PEM certificate", "is not a PEM private key"),
         files={"cert.pem": b"hello\n", "key.pem": CERT_PEM}),
    # ---------------------------------------------------------------- addresses and layout
    case("duplicate-omni_ip_lan", "ait", set_host("omnileads_voice", "omni_ip_lan", "10.10.10.2"),
         "omnileads_voice.omni_ip_lan", "same address as host omnileads_data"),
    case("duplicate-ssh-target", "ait", set_host("omnileads_app", "ansible_host", "10.10.10.3"),
         "omnileads_app.ansible_host", "same SSH target as host omnileads_voice"),
    case("ssh-port-out-of-range", "aio", set_host("omnileads_aio", "ansible_ssh_port", 99999),
         "omnileads_aio.ansible_ssh_port", "is not a TCP port"),
    case("ssh-port-word", "aio", set_host("omnileads_aio", "ansible_ssh_port", "ssh"),
         "omnileads_aio.ansible_ssh_port", "is not a TCP port"),
    case("ait-two-data-hosts", "ait", (del_host("omnileads_voice", "omlvoice"),
                                       set_host("omnileads_voice", "omldata", True)),
         "omldata", "exactly one data host", others={"omlvoice"}),
    case("ait-no-app-host", "ait", del_host("omnileads_app", "omlapp"), "omlapp", "exactly one app host"),
    case("aio-mixed-with-ait", "aio",
         _add_host("omnileads_data", {"omldata": True, "ansible_host": "10.10.10.3", "omni_ip_lan": "10.10.10.3"}),
         "omlaio", "mixes an all-in-one host with data/voice/app hosts"),
    case("two-aio-hosts", "aio",
         _add_host("omnileads_aio2", {"omlaio": True, "ansible_host": "10.10.10.3", "omni_ip_lan": "10.10.10.3"}),
         "omlaio", "more than one all-in-one host"),
    case("no-role-markers", "aio", del_host("omnileads_aio", "omlaio"), "all.hosts", "no host carries a role marker"),
    case("ait-data_host-wrong-host", "ait", set_var("data_host", "10.10.10.3"), "data_host",
         "points at 10.10.10.3, but the host with that role has omni_ip_lan 10.10.10.2"),
    case("aio-application_host-wrong", "aio", set_var("application_host", "10.10.10.99"), "application_host",
         "points at 10.10.10.99"),
    case("cloud-private-host-no-wan", "aio", set_var("infra_env", "cloud"), "omni_ip_wan",
         "missing: infra_env is cloud and host omnileads_aio's ansible_host (10.10.10.2) is not a public address"),
    case("cloud-test-net-no-wan", "cloud", del_var("omni_ip_wan"), "omni_ip_wan", "is not a public address"),
    # ---------------------------------------------------------------- catalog, bucket and misc settings
    case("unknown-release", "aio", set_var("omnileads_release", "9.9.9"), "omnileads_release",
         "is not in the bundled release catalog"),
    case("bucket-name-uppercase", "aio", set_var("bucket_name", "OMniLeads_Bucket"), "bucket_name",
         "is not a valid S3 bucket name"),
    case("bucket-name-too-short", "cloud", set_var("bucket_name", "ab"), "bucket_name", "not a valid S3 bucket name"),
    case("restore-timestamp-path", "aio", set_var("restore_file_timestamp", "../../etc/passwd"),
         "restore_file_timestamp", "must be a backup id"),
    case("restore-timestamp-space", "ait", set_var("restore_file_timestamp", "backup 2023"), "restore_file_timestamp",
         "must be a backup id"),
    case("google_maps_center-not-json", "aio", set_var("google_maps_center", "{ lat: -31.4, lng: -64.1 }"),
         "google_maps_center", "is not valid JSON"),
    case("smtp-without-email_host", "aio", set_var("email_backend", SMTP), "email_host",
         "the SMTP e-mail backend needs email_host"),
    case("zero-shm_size", "aio", set_var("shm_size", 0), "shm_size", "must be greater than zero"),
    case("registry-with-scheme", "aio", set_var("container_image_registry", "https://docker.io"),
         "container_image_registry", "is not a registry address"),
    case("registry-with-space", "ha", set_var("container_image_registry", "my registry"), "container_image_registry",
         "is not a registry address"),
]

CASE_IDS = [p.id for p in CASES]
CLI_SAMPLE = {
    "yaml-tab-indent", "missing-all-group", "typo-postgres_pasword", "tenant-key-at-host-level", "tz",
    "empty-dialer_host", "jinja-no-such-host", "yaml-vault-tag", "ha-redis_ip_main-on-voice_2",
    "certs-custom-without-files", "aio-mixed-with-ait", "yaml-recursion-bomb", "ha-seed-blank-versions",
    "duplicate-different-value",
}


def _line(inventory_text: str, where: int | str) -> int:
    if isinstance(where, int):
        return where
    for number, line in enumerate(inventory_text.splitlines(), start=1):
        if where in line:
            return number
    raise AssertionError(f"{where!r} not in the inventory")


def _write(tenant_dir: Any, c: Case) -> tuple[TenantDir, str]:
    inventory_text = build(c.layout, *c.mutations)
    return tenant_dir(inventory_text, files=c.files), inventory_text


def test_enough_cases() -> None:
    assert len(CASES) >= 70
    assert len(set(CASE_IDS)) == len(CASE_IDS)
    assert set(CASE_IDS) >= CLI_SAMPLE


@pytest.mark.parametrize("c", CASES)
def test_invalid_inventory_reports_the_key(tenant_dir: Any, c: Case) -> None:
    td, inventory_text = _write(tenant_dir, c)
    problems = td.problems()
    errs = errors(problems)
    shown = describe(problems)
    assert errs, shown
    mine = [p for p in errs if p.key == c.key]
    assert mine, f"no error for key {c.key!r}:\n{shown}"
    for fragment in c.fragments:
        assert any(fragment in p.message for p in mine), f"{fragment!r} not in the {c.key} messages:\n{shown}"
    for fragment in c.absent:
        assert not any(fragment in p.message for p in mine), f"unexpected {fragment!r} for {c.key}:\n{shown}"
    if c.exact:
        assert {p.key for p in errs} == {c.key} | c.others, shown
    else:
        assert c.others <= {p.key for p in errs}, shown
    if c.line is not None:
        assert any(p.line == _line(inventory_text, c.line) for p in mine), shown
    for p in errs:
        assert p.message.strip(), shown
        assert p.file == str(td.inventory)


@pytest.mark.parametrize("c", [p for p in CASES if p.id in CLI_SAMPLE])
def test_cli_validate_exits_2_with_file_and_key(tenant_dir: Any, c: Case) -> None:
    td, _ = _write(tenant_dir, c)
    result = td.validate()
    assert result.code == 2, result.err
    assert str(td.inventory) in result.err
    assert f": {c.key}: " in result.err
    assert "error(s): nothing was changed." in result.err
    assert "Traceback" not in result.err + result.out
    assert "internal error" not in result.err


@pytest.mark.parametrize("layout", ["aio", "ait", "cloud", "ha"])
def test_all_problems_at_once(tenant_dir: Any, layout: str) -> None:
    """Five independent mistakes in one file: all five are reported in one pass, whatever the layout."""
    text_ = build(
        layout,
        set_var("TZ", "Mars/Olympus_Mons"),
        set_var("postgres_port", "five"),
        set_var("bucket_name", "Bad_Bucket"),
        set_var("postgres_pasword", "x"),
        set_var("google_maps_center", "{lat: 1}"),
    )
    td = tenant_dir(text_)
    errs = errors(td.problems())
    assert {p.key for p in errs} == {"TZ", "postgres_port", "bucket_name", "postgres_pasword", "google_maps_center"}
    assert len(errs) == 5
    result = td.validate()
    assert result.code == 2
    assert "5 error(s)" in result.err
    for key in ("TZ", "postgres_port", "bucket_name", "postgres_pasword", "google_maps_center"):
        assert f": {key}: " in result.err


def test_problem_format_names_file_line_found_and_allowed(tenant_dir: Any) -> None:
    inv = build("aio", replace("infra_env: lan", "infra_env: wan"))
    td = tenant_dir(inv)
    (p,) = errors(td.problems())
    assert p.format() == (f"{td.inventory}:{_line(inv, 'infra_env: wan')}: error: infra_env: is not one of the "
                          "allowed values (found: 'wan') (allowed: cloud, lan)")


def test_missing_inventory_file(tmp_path: Any) -> None:
    from omldeploy.inventory import load_tenant

    with pytest.raises(InventoryError) as info:
        load_tenant(tmp_path, "t1")
    assert [p.key for p in info.value.problems] == ["(file)"]
    assert "not found" in info.value.problems[0].message


# ---------------------------------------------------------------------------- valid edge cases


def test_examples_load_without_warnings(tenant_dir: Any) -> None:
    for layout in ("aio", "ait", "cloud", "ha"):
        tenant = tenant_dir(build(layout), name=layout).load()
        assert tenant.warnings == ()
        assert tenant.layout.shape.value == ("ait" if layout == "cloud" else layout)


def test_google_maps_api_key_null_is_the_text_null(tenant_dir: Any) -> None:
    tenant = tenant_dir(build("aio")).load()
    assert "google_maps_api_key: NULL" in build("aio")
    assert tenant.settings["google_maps_api_key"] == "NULL"


def test_version_keeps_the_literal_text(tenant_dir: Any) -> None:
    inv = build("aio", replace("asterisk_version: 230508.01", "asterisk_version: 230210.10"))
    tenant = tenant_dir(inv).load()
    assert tenant.versions["asterisk_version"] == "230210.10"
    assert tenant.settings["asterisk_version"] == "230210.10"


def test_password_with_leading_zero_stays_text(tenant_dir: Any) -> None:
    inv = build("aio", replace("postgres_password: CHANGE-ME-postgres", "postgres_password: 0123"))
    tenant = tenant_dir(inv).load()
    assert tenant.settings["postgres_password"] == "0123"


def test_release_instead_of_seven_versions_explicit_key_wins(tenant_dir: Any) -> None:
    def use_release(data: dict[str, Any]) -> None:
        for key in VERSIONS:
            del data["all"]["vars"][key]
        data["all"]["vars"]["omnileads_release"] = "1.27.1"
        data["all"]["vars"]["asterisk_version"] = "230204.01"

    tenant = tenant_dir(build("ait", edit(use_release))).load()
    release = find_release("1.27.1")
    assert release is not None
    assert tenant.versions["asterisk_version"] == "230204.01"
    assert release.tags["asterisk_version"] != "230204.01"
    for key in VERSIONS:
        if key != "asterisk_version":
            assert tenant.versions[key] == release.tags[key], key


def test_marker_false_still_counts_with_a_warning(tenant_dir: Any) -> None:
    tenant = tenant_dir(build("ait", set_host("omnileads_app", "omlapp", False))).load()
    assert "app" in tenant.host("omnileads_app").roles
    assert any("omnileads_app.omlapp" in w and "is false" in w for w in tenant.warnings)


def test_duplicate_key_with_same_value_is_a_warning(tenant_dir: Any) -> None:
    tenant = tenant_dir(build("aio", insert_after("infra_env: lan", "    TZ: America/Argentina/Cordoba"))).load()
    assert tenant.settings["TZ"] == "America/Argentina/Cordoba"
    assert any("all.vars.TZ" in w and "written twice with the same value" in w for w in tenant.warnings)


def test_top_level_groups_besides_all(tenant_dir: Any) -> None:
    extra = "monitoring:\n  hosts:\n    omnileads_app:\n  vars:\n    netprefix: 24\n"
    td = tenant_dir(build("ait") + extra)
    tenant = td.load()
    app = tenant.host("omnileads_app")
    assert "monitoring" in app.groups
    assert app.vars["netprefix"] == 24
    assert tenant.host("omnileads_data").vars.get("netprefix") is None
    assert td.validate().code == 0


def test_external_db_needs_no_postgres_version(tenant_dir: Any) -> None:
    tenant = tenant_dir(build("cloud", del_var("postgres_version"))).load()
    assert tenant.layout.external_db
    assert not tenant.settings.has("postgres_version")


def test_valid_edge_cases_validate_with_exit_0(tenant_dir: Any) -> None:
    inv = build("aio", replace("asterisk_version: 230508.01", "asterisk_version: 230210.10"),
                replace("postgres_password: CHANGE-ME-postgres", "postgres_password: 0123"))
    result = tenant_dir(inv).validate()
    assert result.code == 0, result.err
    assert "valid" in result.out
    assert "Traceback" not in result.err


def test_warnings_do_not_fail_validation(tenant_dir: Any) -> None:
    td = tenant_dir(build("ait", set_host("omnileads_app", "omlapp", False), set_var("email_smtp_relay", True)))
    tenant = td.load()
    assert any("email_smtp_relay" in w and "has no effect" in w for w in tenant.warnings)
    result = td.validate()
    assert result.code == 0, result.err
    assert "warning:" in result.err
