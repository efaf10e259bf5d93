"""Every form a secret takes in what omldeploy prints or logs, so redaction catches all of them.

A component may write a password URL-encoded (a DSN), JSON- or shell-escaped (a config, a command), and
the stage arguments carry whole files in base64: redacting only the raw text let those forms through.
"""

from __future__ import annotations

import base64
import json
import shlex
from urllib.parse import quote, quote_plus

#: Below this length a value would match unrelated text everywhere; such values are not redacted.
MIN_LEN = 4
#: A base64 fragment shorter than this is too likely to occur by chance.
MIN_B64 = 8


def encoded_forms(secret: str) -> set[str]:
    """The raw secret and its encoded forms (each at least MIN_LEN characters)."""
    if len(secret) < MIN_LEN:
        return set()
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        shlex.quote(secret),
        secret.replace("'", "'\"'\"'"),
        secret.replace("'", "'\\''"),
        # double-quoted shell / env / YAML
        secret.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`"),
        secret.replace("\\", "\\\\").replace('"', '\\"'),
    }
    forms |= _base64_fragments(secret.encode())
    return {f for f in forms if len(f) >= MIN_LEN}


def _base64_fragments(data: bytes) -> set[str]:
    """The part of the base64 text that depends on the secret only, at each of the 3 alignments it can
    have inside a larger base64 blob (a file in the stage arguments)."""
    out = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        start = 4 if shift else 0  # the first quantum mixes in the preceding bytes
        end = 4 * ((shift + len(data)) // 3)  # the last partial quantum mixes in the following ones
        fragment = encoded[start:end]
        if len(fragment) >= MIN_B64:
            out.add(fragment)
    for variant in (base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()):
        if len(variant) >= MIN_B64:
            out.add(variant)
    return out
