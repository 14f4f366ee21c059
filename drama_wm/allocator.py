"""Keep freed CPU tensor memory mapped in the process (glibc malloc settings), so new tensors skip page faults.

PyTorch's CPU tensors come straight from ``malloc``. With glibc's defaults a tensor of a few megabytes is either
``mmap``-ed fresh or carved from heap memory that was handed back to the kernel when the previous one was freed;
either way every page of the new tensor is faulted in again on first touch. The cpu_demo agent allocates and frees
such tensors (the [256, 8, 32, 16] dream state, [4096, 255] critic logits, ...) thousands of times per second, and on
one core the page faults cost as much as the arithmetic: a [4096, 128] RMSNorm took 1.6 ms with the defaults and
0.15 ms with the settings below.

:func:`keep_freed_memory` raises the mmap threshold to glibc's maximum (32 MB: smaller blocks come from the heap)
and the trim threshold (up to that much free memory stays at the top of the heap instead of going back to the
kernel). Values computed are unchanged; the price is a resident set that stays near its peak. It is process-wide,
applies to later allocations only, and does nothing where glibc's ``mallopt`` is not available.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc caps the mmap threshold at HEAP_MAX_SIZE / 2 = 32 MB on 64-bit systems
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 512 * 1024 * 1024
#: set to 0 to leave malloc's settings alone
ENV_SWITCH = "DRAMA_WM_KEEP_FREED_MEMORY"

_applied = False


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Apply the malloc settings once per process; returns whether they are in effect.

    Skipped (False) on non-Linux systems, without glibc, or when the environment variable
    ``DRAMA_WM_KEEP_FREED_MEMORY`` is ``0``.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(ENV_SWITCH, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    _applied = ok
    return ok


__all__ = ["keep_freed_memory"]
