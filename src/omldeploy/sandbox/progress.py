"""Progress lines with elapsed times, so an operator can see where the minutes of a cold build go."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_T0 = time.monotonic()


def say(message: str) -> None:
    """Print one progress line on stderr, prefixed with seconds since the program started."""
    print(f"[sandbox {time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Announce a long step and report how long it took (also when it fails)."""
    say(f"{what} ...")
    t0 = time.monotonic()
    ok = False
    try:
        yield
        ok = True
    finally:
        say(f"{what}: {'done' if ok else 'FAILED'} in {time.monotonic() - t0:.1f}s")
