"""Which kernels run a convolution: oneDNN's or XLA's, chosen per shape by timing both once on this
machine (as cuDNN's benchmark mode does on GPUs).

Neither is faster everywhere: on the 2-core test machine oneDNN's are faster on most of NCSN's MNIST
layers (64-128 channels) and slower on some of its CIFAR-10 layers (256 channels at 16x16, 1x1
convolutions). So when XLA:CPU lowers one of zoo's convolution primitives, with its final shapes
(after `vmap` folded batches in), `prefer_onednn` runs both kernels on random operands of those
shapes (a warm-up and five interleaved rounds, the fastest of each) and keeps the faster: remembered for the
process and in ``cache_dir()/onednn/choices.json`` (keyed by CPU model, jaxlib version, the handlers'
source (`kernels_id`: changed kernels are timed afresh), the threads both libraries run on (`threads`: a
single-threaded process, e.g. a profile, times its own choices), kernel, shapes and geometry), so each shape is
timed once per machine, thread setting and kernel version. Choices are only as good as the state of the machine
they were timed in: on the 2-core test machine, choices timed while other jobs ran made the NCSN MNIST training
step 9% slower than choices timed on a quiet machine (mostly XLA's kernels instead of oneDNN's: oneDNN's threads
wait for each other at every barrier, so one busy core slows them all). So each timing also measures how busy other
processes kept this process's CPUs meanwhile (`busy_elsewhere`, from ``/proc/stat``); a choice timed while they kept
more than half a core busy on average is used by this process but stored as unsettled, and timed again by the next
process that compiles that shape, until a quiet timing settles it or, on a machine that is never quiet, the third.
Each kernel's time is the fastest of its rounds (interference only adds). Delete ``choices.json`` to time every shape
again. ``ZOO_ONEDNN=1`` skips the timing and always takes oneDNN's (the tests do, to be deterministic);
``ZOO_ONEDNN=0`` never builds them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from typing import Any

import jax
import numpy as np

from .._io import atomic_write_text, cache_dir


_ROUNDS = 5
_BUSY = 0.5  # cores other processes kept busy, on average, above which a timing is unsettled
_TRIES = 3  # timings of a shape before an unsettled choice is kept as it is
_memo: dict[str, bool] = {}


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                info[k.strip()] = v.strip()
    except OSError:
        pass
    return info


def _cpu_model() -> str:
    return _cpuinfo().get("model name", "unknown cpu")


def cpu_flags() -> str:
    """The first processor's instruction-set flags in /proc/cpuinfo ("" where there are none)."""
    return _cpuinfo().get("flags", "")


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 products in hardware (AVX512-BF16 or AMX-BF16): oneDNN's bfloat16
    kernels are fast there; elsewhere bfloat16 convolutions stay on XLA's kernels."""
    return bool(set(cpu_flags().split()) & {"avx512_bf16", "amx_bf16"})


@functools.cache
def kernels_id() -> str:
    """A short hash of the handlers' source (``conv.cc``): part of each stored choice's key."""
    from ._build import SOURCE

    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def threads() -> str:
    """The threads the two kernels run on here, as they go into a stored choice's key: OpenMP's (oneDNN's;
    ``OMP_NUM_THREADS``, else the CPUs this process may run on) and XLA:CPU's (``XLA_FLAGS``
    ``intra_op_parallelism_threads``, or 1 with ``--xla_cpu_multi_thread_eigen=false``, else those CPUs)."""
    cores = len(cpus())
    omp = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    flags = os.environ.get("XLA_FLAGS", "")
    xla = re.search(r"intra_op_parallelism_threads=(\d+)", flags)
    single = re.search(r"xla_cpu_multi_thread_eigen=(false|0)\b", flags, re.IGNORECASE)
    return (f"omp {int(omp) if omp.isdigit() and int(omp) > 0 else cores}, "
            f"xla {1 if single else int(xla.group(1)) if xla else cores}")


def _file():
    return cache_dir() / "onednn" / "choices.json"


def _read() -> dict[str, Any]:
    try:
        return json.loads(_file().read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: timed again (and rewritten)


def cpus() -> set[int]:
    """The CPUs this process may run on."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def _busy_ticks(cpus: set[int]) -> int | None:
    """The busy time so far of the CPUs `cpus`, all processes together, in clock ticks (``/proc/stat``); None
    where there is no such file."""
    busy = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                    v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                    busy += sum(v) - v[3] - v[4]
    except (OSError, ValueError):
        return None
    return busy


def busy_elsewhere(fn) -> tuple[Any, float]:
    """``(fn(), cores)``: what `fn` returns and how many of this process's CPUs other processes kept busy, on
    average, while it ran (CPU seconds per second: the CPUs' busy time less this process's own). 0 where the
    kernel does not say (no ``/proc/stat``)."""
    mine = cpus()
    before, own, wall = _busy_ticks(mine), time.process_time(), time.perf_counter()
    out = fn()
    after, own, wall = _busy_ticks(mine), time.process_time() - own, time.perf_counter() - wall
    if before is None or after is None or wall <= 0:
        return out, 0.0
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return out, max(0.0, ((after - before) / hz - own) / wall)


def _time(candidates: dict[str, Any], args: tuple) -> dict[str, float]:
    """Each candidate's time in ms: the fastest of `_ROUNDS` interleaved rounds, after a compile and a warm-up."""
    for f in candidates.values():
        jax.block_until_ready(f(*args))  # compile + warm-up
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(_ROUNDS):
        for name, f in candidates.items():
            t = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - t)
    return {name: min(t) * 1e3 for name, t in times.items()}


def prefer_onednn(target: str, shape_fn, reference, avals_in, params: dict[str, Any]) -> bool:
    """Whether the FFI `target` (oneDNN's kernel) should run this convolution: operand avals `avals_in`,
    geometry `params`; `shape_fn` gives its result's aval, `reference` is the same op on XLA's kernels."""
    if os.environ.get("ZOO_ONEDNN", "").strip().lower() in ("1", "always"):
        return True
    import jaxlib

    shapes = "x".join(a.str_short() for a in avals_in)  # e.g. float32[32,28,28,64]
    geometry = ",".join(f"{k}={params[k]}" for k in sorted(params))
    key = (f"{_cpu_model()} | jaxlib {jaxlib.__version__} | conv.cc {kernels_id()} | threads {threads()} | {target} | "
           f"{shapes} | {geometry}")
    if key in _memo:
        return _memo[key]
    entry = _read().get(key)
    tries = entry.get("unsettled", 0) if entry is not None else 0
    if entry is None or tries:  # never timed, or timed while other processes were busy: time it (again)
        from .._conv import conv_compiler_options
        from . import _attrs

        rng = np.random.default_rng(0)
        args = tuple(jax.numpy.asarray(rng.standard_normal(a.shape, np.float32), a.dtype) for a in avals_in)
        out = shape_fn(*avals_in, **params)
        ffi = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(out.shape, out.dtype))
        candidates = {
            "onednn": jax.jit(lambda a, b: ffi(a, b, **_attrs(**params))),
            "xla": jax.jit(functools.partial(reference, **params), compiler_options=dict(conv_compiler_options())),
        }
        ms, busy = busy_elsewhere(lambda: _time(candidates, args))
        entry = {"onednn_ms": round(ms["onednn"], 4), "xla_ms": round(ms["xla"], 4), "onednn": ms["onednn"] < ms["xla"],
                 "busy_elsewhere": round(busy, 3)}  # fmt: skip
        if busy > _BUSY and tries + 1 < _TRIES:
            entry["unsettled"] = tries + 1
        atomic_write_text(_file(), json.dumps(dict(_read(), **{key: entry}), indent=1, sort_keys=True))
    _memo[key] = bool(entry["onednn"])
    return _memo[key]
