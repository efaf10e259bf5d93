"""Host folders a container only reads are mounted read-only (issue 12, M6).

A container that can write into a folder host root also writes (certificates, the custom dialplan) could
plant a symlink there; the host module refuses to write through one (module_utils/omldeploy_safefs.py),
and a read-only mount keeps the container from planting it at all.
"""

from __future__ import annotations

import re

import pytest

from omldeploy.render.build import render_tenant
from tests.unit.conftest import MakeTenant

#: host folders omldeploy writes into that no component needs to write
READ_ONLY = ("/etc/omnileads/certs", "/etc/asterisk/custom")
VOLUME = re.compile(r"(?:^Volume=|--volume=)(\S+?)(?: \\)?$", re.M)


@pytest.mark.parametrize("layout", ["aio", "ait", "cloud", "ha", "ha_aio"])
def test_written_by_the_host_read_by_containers(make_tenant: MakeTenant, layout: str) -> None:
    bundle = render_tenant(make_tenant(layout))
    seen = 0
    for hb in bundle.hosts:
        for f in hb.files:
            if f.kind not in ("unit", "quadlet"):
                continue
            for spec in VOLUME.findall(f.content.decode()):
                source, _, rest = spec.partition(":")
                if source in READ_ONLY:
                    seen += 1
                    options = rest.partition(":")[2].split(",")
                    assert "ro" in options, f"{hb.host}:{f.path} mounts {source} writable: {spec}"
    assert seen, "no unit mounts these folders any more: update READ_ONLY"
