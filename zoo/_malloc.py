"""Opt-in (``ZOO_MALLOC=1``, Linux): glibc's allocator set to keep large freed blocks for reuse.

XLA:CPU allocates each execution's temporary buffer afresh and frees it at the end: one block of the program's
whole scratch (1 GiB for NCSN's MNIST training step at batch 32). JAX dispatches executions on its own thread,
and glibc gives such threads a secondary arena, which serves a block that large only by `mmap` and returns it by
`munmap` when freed, whatever `M_MMAP_THRESHOLD` says. So every step faults the block's pages in again from the
kernel, zeroed: 262,000 page faults and 0.45 s of system time per MNIST training step on the 2-core test machine
(PyTorch, which allocates per operation on the calling thread, faults a few thousand times per step at most). On a
virtual machine with free page reporting (the test machine: KVM, `page_reporting`) it can cost far more: memory that
stays freed for a second or two is handed back to the host, and faulting it in again took up to 3-4 s of system time
per step when the steps did not follow each other at once.

`keep_freed_memory` sets one arena for every thread (`M_ARENA_MAX`), large blocks from the heap instead of `mmap`
(`M_MMAP_MAX` 0) and the heap returned to the system only above 2 GiB of free memory at its top
(`M_TRIM_THRESHOLD`): the next execution reuses the freed block, with no faults (tests/test_malloc.py). Measured on
the 2-core test machine (cards/ncsn-bench.md, "Stop 24"): the NCSN training steps 7-14% faster (MNIST ngf 64, batch
32; CIFAR-10 ngf 128, batch 16), but their peak RSS 0.4-0.8 GiB higher: a freed block in the middle of the heap
is split by the small allocations that follow, so the heap ends up holding about two of them. Hence opt-in. It
takes effect for threads that have not allocated yet, so it is applied when zoo is imported, before JAX starts its
backend; set later it changes nothing already running.
"""

from __future__ import annotations

import os
import sys
import warnings


# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_TRIM = 2**31 - 1  # mallopt takes an int: 2 GiB

_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's allocator as the module doc says, once; whether it is set (False off Linux or on another C
    library)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes.util  # here, not at `import zoo`: only an opt-in process needs it

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only (musl has no mallopt parameters of these numbers)  # noqa: B018
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _applied = all(mallopt(p, v) == 1 for p, v in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM)))
    return _applied


def applied() -> bool:
    """Whether `keep_freed_memory` set glibc's allocator in this process."""
    return _applied


_setting = os.environ.get("ZOO_MALLOC", "").strip().lower()
if _setting in ("1", "on"):
    keep_freed_memory()  # zoo/__init__.py imports this module before anything that imports JAX
elif _setting not in ("", "0", "off"):
    warnings.warn(f"ZOO_MALLOC={_setting!r} is not one of 1, on, 0, off: glibc's allocator keeps its defaults "
                  "(ZOO_MALLOC=1 sets it to reuse large freed blocks: zoo/_malloc.py)", stacklevel=1)
