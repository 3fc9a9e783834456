"""glibc's allocator set to keep large freed blocks for reuse (Linux): `zoo train`'s default, opt-in
(``ZOO_MALLOC=1``) where zoo is imported as a library.

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
(`M_TRIM_THRESHOLD`): the next execution reuses the freed block, with no faults (tests/test_malloc.py).

Alone it costs memory: the block that a program's first execution frees lies in the middle of the heap (its
compilation and that execution leave small live allocations above it), and the next execution, rather than reuse it,
takes a second block from the heap's top; the two then stay resident (`malloc_info`: a free chunk of the scratch's
size beside a free top of the same size). And JAX's dispatch thread frees an execution's scratch just after its
outputs are ready, so a next call made at once sometimes allocates before that free and takes another block. Peak
RSS of the NCSN training steps rose 0.4-0.8 GiB (cards/ncsn-bench.md, "Stop 24"). So the setting also runs JAX's CPU
executions on the calling thread (``jax_cpu_enable_async_dispatch`` off: the scratch is free when the call returns;
the NCSN training step is as fast), and `settle`, called once after a program's first execution, returns the
stranded memory to the system (`malloc_trim`): the executions that follow take their scratch from the top of the
heap, each reusing the last one's block (usually: the order in which XLA's threads allocate can still strand a
block now and then, seen with a 128 MiB temporary in fresh processes). With both, the NCSN training steps fault
nothing and peak below glibc's defaults (cards/ncsn-bench.md, "Stop 25"). zoo's loops settle after their first
step: `zoo.fit`, `zoo.samplers.run`'s host loop (progress bars) and `zoo.batch_map`.

Where it is on: `zoo train` sets it by default (its process runs one training loop of zoo's; ``ZOO_MALLOC=0`` turns
it off); the other commands and a program that imports zoo as a library opt in with ``ZOO_MALLOC=1``, as it holds
for every library in the process (one arena for all threads; up to 2 GiB of freed memory kept; JAX's CPU executions
synchronous). Sampling gains no time from it (its scratch per step is small), and the one arena slows compilation:
`zoo sample ncsn-mnist` from an empty cache took 30.9-31.4 s with it against 29.1 s without (cards/ncsn-bench.md,
"Stop 25"). It takes effect for threads that have not allocated yet, so it is applied when zoo is imported, before
JAX starts its backend; set later it changes nothing already running.
"""

from __future__ import annotations

import os
import sys
import time
import warnings


# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_TRIM = 2**31 - 1  # mallopt takes an int: 2 GiB

_applied = False
_libc = None


def keep_freed_memory() -> bool:
    """Set glibc's allocator as the module doc says, once; whether it is set (False off Linux or on another C
    library)."""
    global _applied, _libc
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
    if _applied:
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
        _libc = libc
        import jax

        # An execution's scratch is freed by the thread that ran it, just after its outputs are ready; dispatched on
        # JAX's own thread, the next call can start first and take a second block (the module doc). On the calling
        # thread, the scratch is free before the call returns. (Read when JAX starts its CPU backend.)
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    return _applied


def settle(wait: float = 0.05) -> bool:
    """After a program's first execution, with `keep_freed_memory` applied: wait `wait` seconds (JAX's dispatch
    thread frees an execution's temporaries just after its outputs are ready) and return the heap's free memory to
    the system (`malloc_trim`), so that the executions that follow reuse one block from the heap's top (the module
    doc). Costs the next execution one fault per page of its scratch. Whether it trimmed (False when the setting
    is off: glibc's defaults need nothing)."""
    if _libc is None:
        return False
    time.sleep(wait)
    _libc.malloc_trim(0)
    return True


def applied() -> bool:
    """Whether `keep_freed_memory` set glibc's allocator in this process."""
    return _applied


def _is_zoo_train() -> bool:
    """Whether this process is `zoo train` (pip's console script, ``bin/zoo``, and its first argument), by
    ``sys.argv``: the script imports `zoo._cli`, hence this module, before its own code runs."""
    argv = getattr(sys, "argv", None) or [""]
    return os.path.basename(argv[0]).removesuffix(".exe") == "zoo" and argv[1:2] == ["train"]


_setting = os.environ.get("ZOO_MALLOC", "").strip().lower()
if _setting in ("1", "on") or (_setting == "" and _is_zoo_train()):
    keep_freed_memory()  # zoo/__init__.py imports this module before anything that imports JAX
elif _setting not in ("", "0", "off"):
    warnings.warn(f"ZOO_MALLOC={_setting!r} is not one of 1, on, 0, off: glibc's allocator keeps its defaults "
                  "(ZOO_MALLOC=1 sets it to reuse large freed blocks: zoo/_malloc.py)", stacklevel=1)
