"""The GWG paper's sampling experiments (Grathwohl et al., 2021, section 5), CPU-sized.

    python scripts/gwg_sampling.py ising [--size 10 --sigma 0.1 --steps 5000 --chains 32]
    python scripts/gwg_sampling.py potts [--size 10 --colors 4 --sigma 0.1 ...]
    python scripts/gwg_sampling.py fhmm  [--length 100 --sources 10 ...]

`ising` / `potts`: a periodic lattice model (the official scripts' ``sigma``: zoo's coupling is
``2 sigma``, see `zoo.ebm.lattice_ising`) sampled by each sampler from uniformly random states.
Reported at several step counts: the effective sample size per coordinate of each chain
(Geyer's estimator on every coordinate's trace after a burn-in fraction, averaged over
coordinates; the official ``--ess_statistic dims``), and the log10 mean squared error of each
chain's running mean against the exact mean (0 spins / uniform colours by symmetry at zero
field; the official ``get_log_rmse``). `fhmm`: posterior inference in a random factorial HMM,
the reconstruction error ``sum_t (W X_t + W0 - y_t)^2`` vs steps. One sampler step is one
proposal (one coordinate for Gibbs), as in the paper's per-step comparison.

Samplers: ``gibbs`` (random scan), ``gwg`` / ``gwg-N`` (N changes per proposal), ``hb-B-R``
(Hamming ball, block B, radius R), ``bg-B`` (block Gibbs), ``mh`` (uniform MH), ``dmala``.
"""

from __future__ import annotations

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from zoo import samplers
from zoo.ebm import FHMM, effective_sample_size, lattice_ising, lattice_potts


def make_sampler(name: str, categorical: bool) -> samplers.AbstractSampler:
    """A sampler from its experiment name (see the module docstring)."""
    parts = name.split("-")
    if parts[0] == "gibbs":
        return samplers.CategoricalGibbs() if categorical else samplers.RandomScanGibbs()
    if parts[0] == "gwg":
        n = int(parts[1]) if len(parts) > 1 else 1
        return samplers.CategoricalGWG(num_changes=n) if categorical else samplers.GWG(num_flips=n)
    if parts[0] == "hb":
        return samplers.HammingBall(block_size=int(parts[1]), radius=int(parts[2]))
    if parts[0] == "bg":
        return samplers.EnumeratedBlockGibbs(block_size=int(parts[1]))
    if parts[0] == "mh":
        return samplers.CategoricalUniformMH() if categorical else samplers.UniformMH()
    if parts[0] == "dmala":
        return samplers.DMALA(step_size=float(parts[1]) if len(parts) > 1 else 0.2)
    raise SystemExit(f"unknown sampler {name!r}: use gibbs, gwg[-N], hb-B-R, bg-B, mh or dmala[-STEP]")


def run_chains(sampler, target, x0, steps: int, thin: int, key) -> tuple[np.ndarray, float, float]:
    """Saved states ``(steps / thin, chains, ...)``, seconds per step (after compiling) and mean hops."""
    run = eqx.filter_jit(lambda s, x, k: samplers.run(s, target, x, num_steps=steps, thin=thin, save=True,
                                                      batched=True, key=k))
    compiled = run.lower(sampler, x0, key).compile()
    t0 = time.perf_counter()
    result = jax.block_until_ready(compiled(sampler, x0, key))
    return np.asarray(result.samples), (time.perf_counter() - t0) / steps, float(jnp.mean(result.info["hops"]))


def lattice_report(args, categorical: bool) -> list[dict]:
    coupling = 2 * args.sigma
    if categorical:
        target = lattice_potts(args.size, args.colors, coupling)
        d, k = args.size**2, args.colors
        exact_mean = 1.0 / k
    else:
        target = lattice_ising(args.size, coupling)
        d, k = args.size**2, 2
        exact_mean = 0.5
    key = jax.random.key(args.seed)
    v0 = jax.random.randint(jax.random.fold_in(key, 0), (args.chains, d), 0, k)
    x0 = jax.nn.one_hot(v0, k) if categorical else v0.astype(jnp.float32)
    rows = []
    for name in args.samplers.split(","):
        sampler = make_sampler(name, categorical)
        xs, sec, hops = run_chains(sampler, target, x0, args.steps, args.thin, jax.random.fold_in(key, 2))
        xs = xs.reshape(xs.shape[0], args.chains, -1)  # (saved, chains, coordinates)
        for horizon in sorted({int(h) for h in args.report.split(",")} | {args.steps}):
            if horizon > args.steps:
                continue
            t = xs[: horizon // args.thin]
            kept = t[int(args.burn_in * len(t)):]
            ess = np.array([effective_sample_size(kept[:, c]).mean() for c in range(args.chains)])
            mse = np.mean((t.mean(0) - exact_mean) ** 2, axis=-1)
            rows.append({
                "sampler": name, "steps": horizon, "ess_mean": float(ess.mean()), "ess_std": float(ess.std()),
                "log10_mse_mean": float(np.mean(np.log10(mse))), "log10_mse_std": float(np.std(np.log10(mse))),
                "ms_per_step": 1000 * sec, "ess_per_s": float(ess.mean()) / (sec * horizon * (1 - args.burn_in)),
                "hops": hops,
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def fhmm_report(args) -> list[dict]:
    key = jax.random.key(args.seed)
    k_model, k_x, k_y, k_init, k_run = jax.random.split(key, 5)
    model = FHMM.random(args.length, args.sources, sigma=args.obs_sigma, key=k_model)
    x_true = model.sample_x(key=k_x)
    y = model.sample_y(x_true, key=k_y)
    post = model.posterior(y)
    x0 = jax.vmap(lambda kk: model.sample_x(key=kk))(jax.random.split(k_init, args.chains)).reshape(args.chains, -1)
    rows = []
    truth = float(model.reconstruction_error(y, x_true))
    for name in args.samplers.split(","):
        xs, sec, hops = run_chains(make_sampler(name, False), post, x0, args.steps, args.thin, k_run)
        err = jax.vmap(jax.vmap(lambda x: model.reconstruction_error(y, x.reshape(args.length, args.sources))))
        e = np.asarray(err(jnp.asarray(xs)))  # (saved, chains)
        for horizon in sorted({int(h) for h in args.report.split(",")} | {args.steps}):
            if horizon > args.steps:
                continue
            final = e[horizon // args.thin - 1]
            rows.append({"sampler": name, "steps": horizon, "recon_mean": float(final.mean()),
                         "recon_std": float(final.std()), "recon_truth": truth, "ms_per_step": 1000 * sec,
                         "hops": hops})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict], fields: list[str]) -> str:
    out = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[f]:.3g}" if isinstance(r[f], float) else str(r[f]) for f in fields) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=["ising", "potts", "fhmm"])
    p.add_argument("--size", type=int, default=10, help="lattice side (D = size^2)")
    p.add_argument("--sigma", type=float, default=0.1, help="the official coupling scale (zoo's is 2 sigma)")
    p.add_argument("--colors", type=int, default=4, help="Potts colours K")
    p.add_argument("--length", type=int, default=100, help="FHMM time steps N")
    p.add_argument("--sources", type=int, default=10, help="FHMM binary chains K")
    p.add_argument("--obs-sigma", type=float, default=0.5)
    p.add_argument("--samplers", default=None, help="comma-separated names (see the module docstring)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--report", default="1000,2000", help="also report these step counts")
    p.add_argument("--thin", type=int, default=1)
    p.add_argument("--chains", type=int, default=32)
    p.add_argument("--burn-in", type=float, default=0.1, help="fraction of each trace dropped before the ESS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    if args.steps % args.thin:
        raise SystemExit("--steps must be a multiple of --thin")
    if args.experiment == "fhmm":
        args.samplers = args.samplers or "gibbs,gwg,gwg-3,hb-10-1,bg-2"
        rows = fhmm_report(args)
        fields = ["sampler", "steps", "recon_mean", "recon_std", "recon_truth", "ms_per_step", "hops"]
    else:
        default = "gibbs,gwg,mh,dmala" if args.experiment == "potts" else "gibbs,gwg,gwg-3,hb-10-1,bg-2,dmala"
        args.samplers = args.samplers or default
        rows = lattice_report(args, categorical=args.experiment == "potts")
        fields = ["sampler", "steps", "ess_mean", "ess_std", "log10_mse_mean", "ms_per_step", "ess_per_s", "hops"]
    print(markdown(rows, fields))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
