"""Giving memory back to the system after big mail (glibc only; elsewhere a no-op).

Freed memory does not leave the process by itself. CPython hands big objects to the C
allocator, and glibc serves a block from its heaps unless it is at least the "mmap
threshold", which it raises to the size of the biggest block freed so far (up to 32 MiB):
after one 10 MB message, every later block of up to 10 MB comes from the heaps, and what is
freed there mostly stays in the process. Measured with ``bench/memory.py`` (eight 12 MB
messages at once): 119 MB resident after the burst on a 41 MB base with glibc's defaults,
64 MB with ``malloc_trim`` alone, 44 MB with the threshold fixed at 1 MiB and the trim.

So the SMTP proxy fixes the threshold (``return_big_blocks``: blocks of 1 MiB or more are
mapped alone and unmapped when freed; small mail never has blocks that big) and trims the
heaps once the last big message in flight is done (``release_free_memory``).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

# blocks of this size or more are mapped alone, and unmapped when freed
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's <malloc.h>


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # a name this system does not know: not glibc
        return False


@cache
def _libc() -> ctypes.CDLL | None:
    if not is_glibc():
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@cache
def return_big_blocks() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` (once); False where there is none."""
    libc = _libc()
    return libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


def release_free_memory() -> bool:
    """Return the free pages of the C heaps to the system; False where there is no way to."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
