"""Guard against a test host moving the whole machine's clock.

The first settimeofday(NULL, tz) after the machine boots makes the kernel warp the real-time clock
by tz's offset (meant for RTCs kept in local time). A host that sets a non-UTC timezone through
systemd-timedated would trigger it with its offset. Hosts boot without CAP_SYS_TIME, and before
booting any host the harness consumes that one-time warp itself with a zero offset.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from .errors import SandboxError


class _Timezone(ctypes.Structure):
    _fields_ = [("tz_minuteswest", ctypes.c_int), ("tz_dsttime", ctypes.c_int)]


def consume_clock_warp() -> None:
    """Call settimeofday(NULL, {0, 0}); harmless when repeated (only the first call can warp)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    tz = _Timezone(0, 0)
    if libc.settimeofday(None, ctypes.byref(tz)) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"settimeofday(NULL, tz=0) failed with errno {err}; the sandbox needs root")
