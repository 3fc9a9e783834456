"""ResNet EBM GWG transitions on XLA:CPU: the old straight-line code (`run_unrolled`, removed)
against the shared driver `zoo.samplers.run` with ``unroll`` 1 (a plain `lax.scan`) and k
(``unroll >= steps`` compiles to straight-line code, no loop), and, for ``--steps > 10``, the
old and new host loops over jitted 10-step chunks.

Times, in one run, ``--steps`` GWG transitions of ``--chains`` chains (default: one PCD
update of the `ebm/resnet-binarized-mnist` preset, 32 chains x 10 steps) with every
variant jitted, reports compile time and the median of ``--reps`` timed runs, and checks
that all variants give finite states.

    nice -n 10 python scripts/bench_ebm_unroll.py                 # one PCD update
    nice -n 10 python scripts/bench_ebm_unroll.py --steps 40 --unroll 1 10 40
"""

from __future__ import annotations

import argparse
import json
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import zoo
from zoo import samplers


def old_run_unrolled(sampler, target, x0, num_steps, *, key):
    """The removed `zoo.ebm.run_unrolled`: `num_steps` batched transitions as straight-line code."""
    state = jax.vmap(sampler.init, in_axes=(None, 0))(target, x0)
    x = x0
    for k in jax.random.split(key, num_steps):
        keys = jax.random.split(k, x.shape[0])
        x, state, _ = jax.vmap(lambda x, s, kk: sampler.step(target, x, s, key=kk))(x, state, keys)
    return x


@eqx.filter_jit
def old(model, x0, key, num_steps):
    return old_run_unrolled(model.sampler(), model.target(), x0, num_steps, key=key)


def old_chunked(model, x0, key, num_steps, chunk=10):
    """The removed ResNet EBM sampling path: a host loop over jitted chunks of `chunk`
    straight-line steps (the GWG state restarted per chunk)."""
    x = x0
    for i, start in enumerate(range(0, num_steps, chunk)):
        x = old(model, x, jax.random.fold_in(key, i), min(chunk, num_steps - start))
    return x


@eqx.filter_jit
def new(model, x0, key, num_steps, unroll):
    return samplers.run(model.sampler(), model.target(), x0, num_steps=num_steps, key=key, batched=True,
                        unroll=unroll).final


def new_chunked(model, x0, key, num_steps, chunk=10):
    """The ResNet EBM's sampling / AIS path on CPU now: a host loop over jitted chunks of
    `chunk` fully unrolled steps of the shared driver."""
    x = x0
    for i, start in enumerate(range(0, num_steps, chunk)):
        n = min(chunk, num_steps - start)
        x = new(model, x, jax.random.fold_in(key, i), n, n)
    return x


def timed(fn, reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    assert bool(jnp.all(jnp.isfinite(out)))
    return compile_s, float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--chains", type=int, default=32)
    p.add_argument("--unroll", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    model = zoo.load("ebm-gwg-binarized-mnist")
    key = jax.random.key(0)
    x0 = jax.random.bernoulli(key, jax.nn.sigmoid(model.base_logits)[None, :], (args.chains, model.dim))
    x0 = x0.astype(jnp.float32)
    transitions = args.steps * args.chains
    rows = []
    c, t = timed(lambda: old(model, x0, key, args.steps), args.reps)
    rows.append({"variant": "old straight-line (run_unrolled)", "compile_s": c, "run_s": t})
    if args.steps > 10:
        c, t = timed(lambda: old_chunked(model, x0, key, args.steps), args.reps)
        rows.append({"variant": "old host loop of 10-step chunks", "compile_s": c, "run_s": t})
    for u in args.unroll:
        c, t = timed(lambda u=u: new(model, x0, key, args.steps, u), args.reps)
        rows.append({"variant": f"samplers.run unroll={u}", "compile_s": c, "run_s": t})
    if args.steps > 10:
        c, t = timed(lambda: new_chunked(model, x0, key, args.steps), args.reps)
        rows.append({"variant": "samplers.run, host loop of 10-step chunks", "compile_s": c, "run_s": t})
    base = rows[0]["run_s"]
    print(f"ResNet EBM ({zoo.num_params(model):,} params), {args.chains} chains x {args.steps} GWG steps, "
          f"{jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f}")
    for r in rows:
        r["chain_steps_per_s"] = transitions / r["run_s"]
        r["time_vs_old"] = r["run_s"] / base
        print(f"  {r['variant']:34s} compile {r['compile_s']:6.1f} s  run {r['run_s'] * 1e3:8.1f} ms  "
              f"{r['chain_steps_per_s']:8.0f} chain-steps/s  time {r['time_vs_old']:.2f}x old")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
