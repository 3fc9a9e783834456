"""Chains in groups, one execution each, all at once (`zoo.samplers.run`'s ``groups``), against one execution.

On a CPU, `zoo.samplers.run` called outside `jit` runs batched chains as one group per core, each group its own
executions of one compiled program, from host threads at once. This times what a user gets, ``model.sample(n,
sampler=..., key=)`` called eagerly (the default), against the same call under `jax.jit` (where ``groups`` has no
effect: one execution of all the chains), interleaved round by round (medians; compile excluded), and says whether
the two gave the same samples (the same keys: equal up to float rounding, which can send a draw the other way now
and then). With ``--memory``, a thread samples glibc's heap (``mallinfo2``: bytes in use) during one more grouped
call per model and prints its peak growth: bounded, since concurrent executions run in pieces of a few hundred
transitions (XLA:CPU holds some memory per loop iteration until such an execution ends).

    python scripts/bench_groups.py                                   # the bundled EBMs, their default samplers
    python scripts/bench_groups.py --models rbm-mnist:gwg --steps 20000 --memory
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import threading

import equinox as eqx
import jax
import numpy as np
from _timing import interleaved_medians, jax_cores

import zoo
from zoo import samplers


DEFAULT_MODELS = "rbm-mnist:gwg,rbm-mnist,potts-lattice-8x8-k3,ebm-categorical-mnist-k4,ebm-gwg-binarized-mnist:gwg:50"


class _HeapWatch:
    """Samples glibc's heap in use (``mallinfo2().uordblks``) every `every` seconds on a thread; `peak` - `start` is
    the growth. None where the C library has no ``mallinfo2`` (not glibc >= 2.33)."""

    def __init__(self, every: float = 0.1):
        class MallInfo2(ctypes.Structure):
            _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                        "fsmblks", "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL(None)
        self.fn = getattr(libc, "mallinfo2", None)
        if self.fn is not None:
            self.fn.restype = MallInfo2
        self.every, self.peak, self.start, self._stop = every, 0, 0, threading.Event()

    def in_use(self) -> int:
        return self.fn().uordblks

    def __enter__(self):
        self.start = self.peak = self.in_use()

        def watch():
            while not self._stop.wait(self.every):
                self.peak = max(self.peak, self.in_use())

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.in_use())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help="comma-separated NAME[:SAMPLER[:STEPS]] (a zoo.samplers.SAMPLERS name, empty for the model's "
                        "default; steps per call, default --steps)")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000, help="sampler steps per call (the models' `sample_steps`)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--memory", action="store_true", help="also the heap's peak growth during one grouped call")
    args = p.parse_args(argv)
    print(f"{jax_cores()} CPU cores, JAX {jax.__version__} on {jax.default_backend()}; {args.chains} chains; load "
          f"average (1, 5, 15 min) {os.getloadavg()}", flush=True)
    if args.memory and _HeapWatch().fn is None:
        raise SystemExit("--memory reads glibc's mallinfo2, which this C library does not have")
    for spec in args.models.split(","):
        name, sampler_name, steps = (spec.split(":") + ["", ""])[:3]
        model = zoo.replace_config(zoo.load(name), sample_steps=int(steps) if steps else args.steps)
        sampler = samplers.SAMPLERS.get(sampler_name)() if sampler_name else model.default_sampler()
        n = args.chains

        def grouped(key, model=model, sampler=sampler):
            return jax.block_until_ready(model.sample(n, sampler=sampler, key=key))

        one = eqx.filter_jit(lambda m, s, key: m.sample(n, sampler=s, key=key),
                             compiler_options=dict(model.compiler_options()) or None)

        def single(key, model=model, sampler=sampler, one=one):
            return jax.block_until_ready(one(model, sampler, key))

        key = jax.random.key(0)
        a, b = np.asarray(grouped(key)), np.asarray(single(key))  # compiles both
        same = np.all(a.reshape(n, -1) == b.reshape(n, -1), axis=1)
        rnd = iter(range(1, 10**9))
        med = interleaved_medians({"groups": lambda: grouped(jax.random.key(next(rnd))),
                                   "one": lambda: single(jax.random.key(next(rnd)))}, args.repeats)
        line = (f"{spec:34s} {type(sampler).__name__:15s} {model.config.sample_steps:5d} steps: one execution "
                f"{med['one']:7.3f} s, in groups (the default) {med['groups']:7.3f} s -> "
                f"{med['one'] / med['groups']:.2f}x; same samples in {same.sum()}/{n} chains")
        if args.memory:
            with _HeapWatch() as heap:
                grouped(jax.random.key(10**6))
            line += f"; heap in use during a grouped call: +{(heap.peak - heap.start) / 2**20:.0f} MiB at most"
        print(line, flush=True)
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
