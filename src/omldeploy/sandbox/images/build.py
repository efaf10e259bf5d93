"""Build the test images of the catalog and push them to a sandbox's registry.

All images share the cached Debian layer and the payload layer (the minio image adds the weed
layer); each image differs only by its config (entrypoint role, CMD, env). Every catalog image is
pushed at its `default` and `alt` tags and as `<default>-broken` (refuses to start), and at every
`repository:tag` a catalogued release names for it.
"""

from __future__ import annotations

import time

from ...catalog.releases import ENTERPRISE_SUFFIX
from ..errors import SandboxError
from ..progress import say, step
from ..s3store import weed_binary
from ..state import SandboxState
from .baselayer import Layer, ensure_base_layer
from .catalog import CatalogImage, load_catalog, release_extras
from .oci import RegistryClient, image_config, manifest
from .payload import lego_layer, payload_layer, weed_layer
from .specs import BROKEN_SUFFIX, PATH, SPECS, ImageSpec, missing_spec


def _config_env(spec: ImageSpec, ref: str, broken: bool) -> list[str]:
    env = [f"PATH={PATH}", "LANG=C.UTF-8", f"SANDBOX_IMAGE={ref}"]
    env += [f"{k}={v}" for k, v in spec.env]
    if broken:
        env.append("SANDBOX_UNHEALTHY=start")
    return env


def tags_of(entry: CatalogImage) -> list[tuple[str, bool]]:
    """(tag, broken) pairs pushed for one catalog image. omlapp also gets its `-enterprise` tags (the
    broken one too):
    `enterprise_edition: true` (the seed's HA inventory) appends that suffix to the omlapp tag
    (components/context.py), and without them such an install cannot pull its first image."""
    tags = [(entry.default, False), (entry.alt, False), (entry.default + BROKEN_SUFFIX, True)]
    if entry.key == "omlapp":
        tags += [(entry.default + ENTERPRISE_SUFFIX, False), (entry.alt + ENTERPRISE_SUFFIX, False),
                 (entry.default + BROKEN_SUFFIX + ENTERPRISE_SUFFIX, True)]
    return tags


def targets_of(entry: CatalogImage) -> list[tuple[str, str, bool]]:
    """(repository, tag, broken) triples pushed for one catalog image: its own tags, then the
    `repository:tag` values releases name for it (e.g. library/postgres:14.9-bullseye)."""
    own = [(entry.repo, tag, broken) for tag, broken in tags_of(entry)]
    return own + [(repo, tag, False) for repo, tag in release_extras().get(entry.key, [])]


def build_and_push(st: SandboxState, only: list[str] | None) -> list[str]:
    """Ensure the layers are cached, push blobs and manifests; return the pushed references."""
    catalog = load_catalog()
    keys = list(catalog) if only is None else only
    unknown = [k for k in keys if k not in catalog]
    if unknown:
        raise SandboxError(f"unknown image key(s) {', '.join(unknown)}; known: {', '.join(catalog)}")
    # an alias (omlcron) is another tag key of an image built under its own key
    keys = list(dict.fromkeys(catalog[k].alias_of or k for k in keys))
    for key in keys:
        if key not in SPECS:
            say(f"WARNING: no sandbox stand-in for {key} ({catalog[key].repo}); its image only fails "
                "with a FATAL line saying so")
    base = ensure_base_layer()
    top = payload_layer()
    weed: Layer | None = None
    if any(SPECS.get(k, missing_spec(k)).needs_weed for k in keys):
        weed = weed_layer(weed_binary())
    lego: Layer | None = None
    if any(SPECS.get(k, missing_spec(k)).needs_lego for k in keys):
        lego = lego_layer()
    client = RegistryClient(st.net.registry)
    pushed: list[str] = []
    t0 = time.monotonic()
    with step(f"pushing {len(keys)} test images to {st.net.registry}"):
        for key in keys:
            entry, spec = catalog[key], SPECS.get(key, missing_spec(key))
            layers = ([base] + ([weed] if spec.needs_weed and weed is not None else [])
                      + ([lego] if spec.needs_lego and lego is not None else []) + [top])
            for repo in dict.fromkeys(r for r, _t, _b in targets_of(entry)):
                for layer in layers:
                    how = client.push_blob(repo, layer.digest, layer.size, layer=layer)
                    if how == "uploaded":
                        say(f"  uploaded layer {layer.path.name} ({layer.size / 1e6:.0f} MB) to {repo}")
            for repo, tag, broken in targets_of(entry):
                ref = f"{st.net.registry}/{repo}:{tag}"
                cfg = image_config(layers, entrypoint=["/usr/local/bin/oml-sandbox-entry", spec.role],
                                   cmd=list(spec.cmd), env=_config_env(spec, f"{repo}:{tag}", broken),
                                   workdir=spec.workdir, ports=spec.ports, volumes=spec.volumes,
                                   labels={"org.omldeploy.sandbox": "test-image",
                                           "org.omldeploy.sandbox.key": key, **spec.labels},
                                   user=spec.user, stop_signal=spec.stop_signal)
                client.push_blob(repo, cfg.digest, cfg.size, data=cfg.data)
                client.put_manifest(repo, tag, manifest(cfg, layers))
                pushed.append(ref)
    say(f"{len(pushed)} image references in {st.net.registry} ({time.monotonic() - t0:.1f}s)")
    return pushed
