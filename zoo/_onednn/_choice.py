"""Which kernels run a convolution: oneDNN's or XLA's, chosen per shape by timing both once on this
machine (as cuDNN's benchmark mode does on GPUs).

Neither is faster everywhere: on the 2-core test machine oneDNN's are faster on most of NCSN's MNIST
layers (64-128 channels) and slower on some of its CIFAR-10 layers (256 channels at 16x16, 1x1
convolutions). So when XLA:CPU lowers one of zoo's convolution primitives, with its final shapes
(after `vmap` folded batches in), `prefer_onednn` runs both kernels on random operands of those
shapes (a warm-up and five interleaved rounds, medians) and keeps the faster: remembered for the
process and in ``cache_dir()/onednn/choices.json`` (keyed by CPU model, jaxlib version, the handlers'
source (`kernels_id`: changed kernels are timed afresh), the threads both libraries run on (`threads`: a
single-threaded process, e.g. a profile, times its own choices), kernel, shapes and geometry), so each shape is
timed once per machine, thread setting and kernel version. Choices are only as good as the state of the machine
they were timed in: on the 2-core test machine, choices timed while other jobs ran made the NCSN MNIST training
step 9% slower than choices timed on a quiet machine (mostly XLA's kernels instead of oneDNN's); delete
``choices.json`` to time them again. ``ZOO_ONEDNN=1`` skips the timing and
always takes oneDNN's (the tests do, to be deterministic); ``ZOO_ONEDNN=0`` never builds them.
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


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 products in hardware (AVX512-BF16 or AMX-BF16): oneDNN's bfloat16
    kernels are fast there; elsewhere bfloat16 convolutions stay on XLA's kernels."""
    flags = set(_cpuinfo().get("flags", "").split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@functools.cache
def kernels_id() -> str:
    """A short hash of the handlers' source (``conv.cc``): part of each stored choice's key."""
    from ._build import SOURCE

    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]


def threads() -> str:
    """The threads the two kernels run on here, as they go into a stored choice's key: OpenMP's (oneDNN's;
    ``OMP_NUM_THREADS``, else the CPUs this process may run on) and XLA:CPU's (``XLA_FLAGS``
    ``intra_op_parallelism_threads``, or 1 with ``--xla_cpu_multi_thread_eigen=false``, else those CPUs)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
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


def _time(candidates: dict[str, Any], args: tuple) -> dict[str, float]:
    for f in candidates.values():
        jax.block_until_ready(f(*args))  # compile + warm-up
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(_ROUNDS):
        for name, f in candidates.items():
            t = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


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
    stored = _read()
    if key not in stored:
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
        ms = _time(candidates, args)
        stored[key] = {"onednn_ms": round(ms["onednn"], 4), "xla_ms": round(ms["xla"], 4),
                       "onednn": ms["onednn"] < ms["xla"]}  # fmt: skip
        atomic_write_text(_file(), json.dumps(dict(_read(), **{key: stored[key]}), indent=1, sort_keys=True))
    _memo[key] = bool(stored[key]["onednn"])
    return _memo[key]
