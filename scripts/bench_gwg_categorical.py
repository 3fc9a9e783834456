"""Speed of categorical Gibbs-with-Gradients on a 20x20 lattice Potts model (K = 4 and K = 10).

For each K: steps per second of `zoo.samplers.CategoricalGWG` (all chains advanced one step; a
jitted `lax.scan` of `--steps` steps, compile excluded), with categorical random-scan Gibbs
alongside for scale. With ``--official PATH`` (a checkout of `wgrathwohl/GWG_release`) and
torch installed (a benchmark-only dependency, in its own environment), the official
`DiffSamplerMultiDim(approx=True, temp=2)` (potts_sample.py's "gwg") runs on its own
`LatticePottsModel` with the same size, colours and coupling, from the same initial chains (its
modules imported unchanged, one ``sampler.step`` per step, as potts_sample.py does), interleaved
with ours round by round (`--repeats` rounds, medians), with torch on each of `--torch-threads`
threads; the ratio printed is ours over the faster official figure. Without ``--official`` (or
without torch) the script says it skipped that part and why.

    python scripts/bench_gwg_categorical.py --official ../GWG_release   # the defaults: 100 chains
    python scripts/bench_gwg_categorical.py --chains 8 --steps 20 --repeats 1   # smoke run, ours only

The official ``sigma`` is used for both (zoo's lattice coupling is ``2 sigma``: the same law up
to a constant; the script checks that log-density differences agree before timing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _timing import allocator_note, interleaved_medians, parse_threads
from bench_gwg import import_official_gwg, official_rounds

from zoo import samplers
from zoo._malloc import applied as zoo_malloc_applied
from zoo.ebm import lattice_potts


@eqx.filter_jit
def _run(sampler, target, x0, key, num_steps):
    return samplers.run(sampler, target, x0, num_steps=num_steps, key=key, batched=True).final


def zoo_round(sampler, target, x0, steps: int):
    """A compiled run of `steps` steps (compile excluded) as a ``run()`` for `interleaved_medians`."""
    key = jax.random.key(0)
    compiled = _run.lower(sampler, target, x0, key, steps).compile()
    jax.block_until_ready(compiled(sampler, target, x0, key, steps))
    rounds = iter(range(10**9))

    def run():
        jax.block_until_ready(compiled(sampler, target, x0, jax.random.fold_in(key, next(rounds)), steps))

    return run


def official_step(mods, size: int, k: int, sigma: float, target, x0: np.ndarray):
    """``step()`` advancing the official sampler's chains (started at `x0`) one step on the official model,
    after checking that the official model's log-density differences match `target`'s."""
    torch, official_rbm, official_samplers = mods
    torch.manual_seed(0)
    model = official_rbm.LatticePottsModel(size, k, sigma)
    sampler = official_samplers.DiffSamplerMultiDim(size * size, 1, approx=True, temp=2.0)
    x1 = np.roll(x0, 1, axis=0)  # other states; f differs by a constant between the two codes
    ours = np.asarray(jax.vmap(target)(jnp.asarray(x0)) - jax.vmap(target)(jnp.asarray(x1)))
    with torch.no_grad():
        theirs = (model(torch.tensor(x0)) - model(torch.tensor(x1))).numpy()
    err = float(np.max(np.abs(ours - theirs)))
    print(f"K={k}: official LatticePottsModel vs ours: max |difference of log p differences| {err:.1e} "
          f"(log p differences up to {np.max(np.abs(ours)):.1f})", flush=True)
    if err > 1e-3 * max(1.0, float(np.max(np.abs(ours)))):
        raise SystemExit(f"the official Potts model does not reproduce ours (difference {err:.1e}); not timing it")
    chain = {"x": torch.tensor(x0)}

    def step():
        chain["x"] = sampler.step(chain["x"].detach(), model).detach()

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--colors", default="4,10")
    p.add_argument("--sigma", type=float, default=0.1, help="the official coupling (zoo's is 2 sigma)")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000, help="zoo steps per timing round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (medians are reported)")
    p.add_argument("--official-steps", type=int, default=20, help="official steps per timing round")
    p.add_argument("--official", default=None, help="a checkout of wgrathwohl/GWG_release to time as well")
    p.add_argument("--torch-threads", default="2,1", help="torch thread counts to time the official code with")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    threads = parse_threads(args.torch_threads)
    print(f"{args.size}x{args.size} lattice Potts, sigma {args.sigma}, {args.chains} chains; "
          f"{jax.devices()[0].platform}, {os.cpu_count()} CPU cores, JAX {jax.__version__}; "
          f"load average (1, 5, 15 min) {os.getloadavg()}", flush=True)
    print(allocator_note(zoo_malloc_applied()), flush=True)

    mods, note = None, "official timing skipped: no --official PATH given"
    if args.official:
        mods, why = import_official_gwg(args.official, threads[0])
        if mods is None:
            note = f"official timing skipped: {why}"
        else:
            note = (f"official: {args.official} (GWG_release DiffSamplerMultiDim on LatticePottsModel, imports "
                    f"unchanged), torch {mods[0].__version__} on {' and '.join(map(str, threads))} thread(s), "
                    f"{args.official_steps} steps per round; zoo {args.steps} steps per round; {args.repeats} "
                    "interleaved rounds, medians")
    print(note, flush=True)

    rows = []
    for k in (int(c) for c in args.colors.split(",")):
        target = lattice_potts(args.size, k, 2 * args.sigma)
        v0 = jax.random.randint(jax.random.key(1), (args.chains, args.size**2), 0, k)
        x0 = jax.nn.one_hot(v0, k, dtype=jnp.float32)
        fns = {
            "zoo_gwg": zoo_round(samplers.CategoricalGWG(), target, x0, args.steps),
            "zoo_gibbs": zoo_round(samplers.CategoricalGibbs(), target, x0, args.steps),
        }
        steps = dict.fromkeys(fns, args.steps)  # per round, for steps/s
        if mods is not None:
            step = official_step(mods, args.size, k, args.sigma, target, np.asarray(x0))
            official = official_rounds(step, args.official_steps, threads, mods[0])
            fns.update(official)
            steps.update(dict.fromkeys(official, args.official_steps))
        med = interleaved_medians(fns, args.repeats).per_second(steps)
        row = {"K": k, "chains": args.chains, **{f"{name}_steps_per_s": v for name, v in med.items()}}
        official = {name: v for name, v in med.items() if name.startswith("official")}
        if official:
            best = max(official, key=official.get)
            row["speedup_vs_official"] = med["zoo_gwg"] / official[best]
            row["speedup_vs_official_per_threads"] = {name: med["zoo_gwg"] / v for name, v in official.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{args.size}x{args.size} lattice Potts, {args.chains} chains, {jax.devices()[0].platform}; {note}")
    for r in rows:
        line = (f"K={r['K']:>3}: zoo categorical GWG {r['zoo_gwg_steps_per_s']:9.1f} steps/s, "
                f"zoo categorical Gibbs {r['zoo_gibbs_steps_per_s']:9.1f} steps/s")
        official = {name: v for name, v in r.items() if name.startswith("official")}
        if official:
            line += ", official GWG " + ", ".join(
                f"{v:.2f} ({name.split('_')[1]})" for name, v in official.items()
            ) + f" steps/s -> {r['speedup_vs_official']:.0f}x the faster"
        print(line)
    load = os.getloadavg()
    print(f"load average at the end (1, 5, 15 min): {load} (the CPU is shared)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "official": note, "load_average_end": load, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
