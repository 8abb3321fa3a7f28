"""Freed memory kept for reuse instead of handed back to the operating system (glibc's malloc).

Why. A training step allocates the same arrays every time — each layer's LSTM cache, the gate
gradients, the logits and their gradient —, megabytes each, and frees them before the next step.
glibc serves blocks above its mmap threshold (128 KB at start, raised as such blocks are freed)
with fresh pages from the kernel, and hands free memory at the top of its heaps back once it
exceeds the trim threshold. Either way the next step's arrays land on pages the kernel must map
and zero again. Measured on 2 cores (``benchmarks/bench_malloc.py``: torch-rnn's char LM, B=50,
T=50, batch shards, each setting in fresh processes, alternated), page faults and milliseconds
per training step with glibc's defaults and with the settings below:

    H=64 L=1:    1,373 -> 0        7.02 -> 3.95 ms
    H=128 L=2:   6,311 -> 0       34.69 -> 27.16 ms
    H=512 L=1:   7,550 -> 0      147.30 -> 134.36 ms

What. On import of ``minilstm``, on Linux with glibc:

    mallopt(M_MMAP_THRESHOLD, 32 MB)    blocks up to 32 MB (the most glibc allows) from its heaps
    mallopt(M_TRIM_THRESHOLD, 256 MB)   up to 256 MB free at the top of a heap kept for reuse

The cost: the process keeps up to that much memory it freed (per heap, one per thread that
allocates) instead of returning it, so its resident size stays near its peak. Skipped when the
user has set glibc's own ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (theirs win),
and switched off with ``MINILSTM_MALLOC=system``. It applies to the whole process, so a
benchmark that runs PyTorch in the same process gives it the same allocator settings.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1       # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 256 * 2**20

_status: str | None = None


def keep_freed_memory() -> str:
    """Apply the settings above once per process; returns what was done, as a sentence."""
    global _status
    if _status is None:
        _status = _apply()
    return _status


def malloc_status() -> str:
    """What :func:`keep_freed_memory` did in this process ("" if it has not run)."""
    return _status or ""


def _apply() -> str:
    if os.environ.get("MINILSTM_MALLOC", "").strip().lower() == "system":
        return "system defaults (MINILSTM_MALLOC=system)"
    if not sys.platform.startswith("linux"):
        return "system defaults (not Linux)"
    if not _glibc_version():
        return "system defaults (not glibc)"
    user_set = [name for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_") if name in os.environ]
    if user_set:
        return f"system defaults ({', '.join(user_set)} set by the user)"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "system defaults (mallopt not found)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "system defaults (mallopt refused the settings)"
    return (f"freed memory kept for reuse (glibc {_glibc_version()}: mmap threshold "
            f"{MMAP_THRESHOLD >> 20} MB, trim threshold {TRIM_THRESHOLD >> 20} MB)")


def _glibc_version() -> str:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        return ""
    return value.split()[-1] if value.startswith("glibc") else ""
