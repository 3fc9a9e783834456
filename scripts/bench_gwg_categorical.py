"""Speed of categorical Gibbs-with-Gradients on a 20x20 lattice Potts model (K = 4 and K = 10).

For each K: steps per second of `zoo.samplers.CategoricalGWG` (all chains advanced one step; a
jitted `lax.scan` of `--steps` steps, compile excluded, best of `--repeats`), with categorical
random-scan Gibbs alongside for scale. With ``--official PATH`` (a checkout of
`wgrathwohl/GWG_release`) and torch installed, the official `DiffSamplerMultiDim` is timed on
its own `LatticePottsModel` with the same size, colours, coupling and number of chains (its
modules imported unchanged, one `sampler.step` per step) and the ratio is printed; otherwise
the script says it skipped that part and why.

    python scripts/bench_gwg_categorical.py [--chains 100 --steps 1000 --official ../GWG_release]
    python scripts/bench_gwg_categorical.py --chains 8 --steps 20 --repeats 1   # smoke run

The official ``sigma`` is used for both (zoo's lattice coupling is ``2 sigma``: the same law).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp

from zoo import samplers
from zoo.ebm import lattice_potts


@eqx.filter_jit
def _run(sampler, target, x0, key, num_steps):
    return samplers.run(sampler, target, x0, num_steps=num_steps, key=key, batched=True).final


def time_zoo(sampler, target, x0, steps: int, repeats: int) -> float:
    """Steps per second (every chain advanced one step), best of `repeats`, compile excluded."""
    key = jax.random.key(0)
    compiled = _run.lower(sampler, target, x0, key, steps).compile()
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(sampler, target, x0, jax.random.fold_in(key, r), steps))
        best = min(best, time.perf_counter() - t0)
    return steps / best


def time_official(path: str, size: int, k: int, sigma: float, chains: int, steps: int, repeats: int):
    """Steps per second of the official DiffSamplerMultiDim, or ``(None, reason)``."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    sys.path.insert(0, path)
    try:
        import rbm as official_rbm  # the official modules, unchanged
        import samplers as official_samplers
    except Exception as e:  # noqa: BLE001 - any import failure of a foreign checkout is reported, not raised
        return None, f"importing the official modules from {path} failed: {type(e).__name__}: {e}"
    torch.manual_seed(0)
    model = official_rbm.LatticePottsModel(size, k, sigma)
    sampler = official_samplers.DiffSamplerMultiDim(size * size, 1, approx=True, temp=2.0)
    x = model.init_sample(chains)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            x = sampler.step(x.detach(), model).detach()
        best = min(best, time.perf_counter() - t0)
    return steps / best, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--colors", default="4,10")
    p.add_argument("--sigma", type=float, default=0.1, help="the official coupling (zoo's is 2 sigma)")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--official-steps", type=int, default=100, help="steps per timing of the official sampler")
    p.add_argument("--official", default=None, help="a checkout of wgrathwohl/GWG_release to time as well")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    rows = []
    for k in (int(c) for c in args.colors.split(",")):
        target = lattice_potts(args.size, k, 2 * args.sigma)
        v0 = jax.random.randint(jax.random.key(1), (args.chains, args.size**2), 0, k)
        x0 = jax.nn.one_hot(v0, k, dtype=jnp.float32)
        row = {"K": k, "chains": args.chains,
               "zoo_gwg_steps_per_s": time_zoo(samplers.CategoricalGWG(), target, x0, args.steps, args.repeats),
               "zoo_gibbs_steps_per_s": time_zoo(samplers.CategoricalGibbs(), target, x0, args.steps, args.repeats)}
        if args.official:
            sps, why = time_official(args.official, args.size, k, args.sigma, args.chains, args.official_steps,
                                     args.repeats)
            if sps is None:
                print(f"K={k}: official timing skipped: {why}")
            else:
                row["official_gwg_steps_per_s"] = sps
                row["speedup_vs_official"] = row["zoo_gwg_steps_per_s"] / sps
        else:
            print(f"K={k}: official timing skipped: no --official PATH given")
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.size}x{args.size} lattice Potts, {args.chains} chains, {jax.devices()[0].platform}")
    for r in rows:
        line = (f"K={r['K']:>3}: zoo categorical GWG {r['zoo_gwg_steps_per_s']:9.1f} steps/s, "
                f"zoo categorical Gibbs {r['zoo_gibbs_steps_per_s']:9.1f} steps/s")
        if "official_gwg_steps_per_s" in r:
            line += f", official GWG {r['official_gwg_steps_per_s']:.1f} steps/s ({r['speedup_vs_official']:.1f}x)"
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
