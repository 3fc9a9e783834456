"""Sampler benchmark on the 784x500 RBM (the GWG paper's RBM experiment), 100 chains.

For GWG, random-scan Gibbs, uniform-flip MH and block Gibbs: steps per second (all chains
advanced one step; jitted `lax.scan`, compile excluded, median of `--repeats`), ESS per
chain and ESS per second of a fixed random projection of the state, and MMD (exponential
Hamming kernel) between the chains' states and ground-truth samples from a long block-Gibbs
run, at a few points along chains started from the data-mean Bernoulli. ESS is measured on
chains started from ground-truth samples (already stationary, so no burn-in is needed);
their final MMD to the ground truth checks that each sampler keeps the target invariant.

    python scripts/bench_gwg.py                      # the bundled rbm-mnist checkpoint
    python scripts/bench_gwg.py --model runs/rbm-mnist/model --steps 5000
    python scripts/bench_gwg.py --timing-only --official ../GWG_release   # side by side with the official code

With ``--official PATH`` (a checkout of `wgrathwohl/GWG_release`) and torch installed (a
benchmark-only dependency, in its own environment), the official PyTorch samplers run on the
same RBM (the checkpoint's weights copied into the official `BernoulliRBM`) from the same
initial chains, interleaved with ours round by round (`--repeats` rounds, medians; torch on
`--torch-threads` threads): `DiffSampler(approx=True, temp=2)` (rbm_sample.py's "gwg"),
`PerDimGibbsSampler(rand=True)` ("rand-gibbs") and `BernoulliRBM._gibbs_step` (block Gibbs).
The ratios printed are ours / official, both measured in this run. Without ``--official`` the
script says it skipped the official side; the figures quoted in the issue are printed,
labelled as quoted, and never used for a ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import zoo
from zoo import samplers
from zoo.ebm import effective_sample_size, mmd


QUOTED_OFFICIAL_STEPS_PER_S = {"gwg": 96.0, "gibbs": 454.0, "block_gibbs": 327.0}  # quoted in an issue, not measured


def parse_threads(text: str) -> list[int]:
    """``"2,1"`` -> ``[2, 1]``: the torch thread counts to time the official code with."""
    try:
        threads = [int(t) for t in text.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise SystemExit(f"--torch-threads wants a comma-separated list of positive integers, e.g. 2,1; got {text!r}")
    return threads


def official_rounds(step, steps: int, threads: list[int], torch) -> dict:
    """Entries for `interleaved_medians`: ``steps`` calls of ``step()`` with torch on each of `threads` threads."""

    def run():
        for _ in range(steps):
            step()

    def on(t):
        def setup():
            torch.set_num_threads(t)
            step()  # untimed warm-up at this thread count

        return setup

    return {f"official_{t}t": (run, steps, on(t)) for t in threads}


def import_official_gwg(path: str, threads: int):
    """``(torch, rbm, samplers)``: torch and the official GWG_release modules, imported unchanged from `path`,
    or ``(None, reason)`` when they cannot be imported.

    Two things are set around them, neither a change to their code: torch's distribution argument validation is
    turned off (the default of the torch 1.x the code was written for; torch >= 1.8 validates by default, which
    rejects the float32 softmax over 4000 categories as "not on the simplex" and costs time), and when torchvision
    is absent an empty stand-in is registered: the official ``utils.py`` imports it for its data loaders, which no
    sampler uses (torchvision must match the torch build, so it is not worth installing for this).
    """
    try:
        import torch
    except ImportError:
        return None, "torch is not installed (a benchmark-only dependency: install it in a separate environment)"
    torch.set_num_threads(threads)
    torch.distributions.Distribution.set_default_validate_args(False)
    if importlib.util.find_spec("torchvision") is None:
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        tv.utils = types.ModuleType("torchvision.utils")
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms, "torchvision.utils": tv.utils})
    if not os.path.isfile(os.path.join(path, "samplers.py")):
        return None, f"{path} is not a checkout of wgrathwohl/GWG_release (no samplers.py there)"
    sys.path.insert(0, os.path.abspath(path))
    try:
        import rbm as official_rbm  # the official modules, unchanged
        import samplers as official_samplers
    except Exception as e:  # noqa: BLE001 - any import failure of a foreign checkout is reported, not raised
        return None, (f"importing the official modules from {path} failed: {type(e).__name__}: {e} "
                      "(they need igraph, matplotlib, scikit-learn and tqdm next to torch)")
    return (torch, official_rbm, official_samplers), None


def make_sampler(name: str) -> samplers.AbstractSampler:
    """A sampler from its `--samplers` name."""
    fixed = {"gwg": samplers.GWG(), "gibbs": samplers.RandomScanGibbs(), "uniform_mh": samplers.UniformMH(),
             "block_gibbs": samplers.BlockGibbs()}
    head, _, arg = name.partition("-")
    if name in fixed:
        return fixed[name]
    if head == "gwg" and arg.isdigit():
        return samplers.GWG(num_flips=int(arg))
    if head == "pas" and arg.lstrip("r").isdigit():
        return samplers.PathAuxiliary(path_length=int(arg.lstrip("r")), random_length=arg.startswith("r"))
    raise SystemExit(f"unknown sampler {name!r}: use gwg, gwg-N, gibbs, uniform_mh, block_gibbs, pas-L or pas-rL")


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """``{name: median steps/s}`` of ``fns = {name: (run, steps)}`` or ``{name: (run, steps, setup)}``: each round
    runs every ``run()`` once, in turn (so a change of machine load hits all of them alike), after its untimed
    ``setup()`` if any; ``run()`` advances all chains `steps` steps."""
    rates: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (fn, steps, *setup) in fns.items():
            for f in setup:
                f()
            t = time.perf_counter()
            fn()
            rates[name].append(steps / (time.perf_counter() - t))
    return {name: float(np.median(r)) for name, r in rates.items()}


@eqx.filter_jit
def _run(sampler, target, x0, key, num_steps, thin, save):
    return samplers.run(sampler, target, x0, num_steps=num_steps, key=key, batched=True, thin=thin, save=save)


def official_setup(mods, model, x0: np.ndarray) -> dict:
    """The official samplers on the official `BernoulliRBM` holding `model`'s weights: ``{name: step}`` where
    ``step()`` advances the official chains (started at `x0`) one step; also checks that the two RBMs agree."""
    torch, official_rbm, official_samplers = mods
    d, h = model.config.visible, model.config.hidden
    with torch.no_grad():
        rbm = official_rbm.BernoulliRBM(d, h, data_mean=torch.sigmoid(torch.tensor(np.asarray(model.base_logits))))
        rbm.W.copy_(torch.tensor(np.asarray(model.W).T))  # official W is (hidden, visible)
        rbm.b_v.copy_(torch.tensor(np.asarray(model.b)))
        rbm.b_h.copy_(torch.tensor(np.asarray(model.c)))
        ours = np.asarray(jax.vmap(model.log_prob)(jnp.asarray(x0)))
        theirs = rbm(torch.tensor(x0)).numpy()
    err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(ours)))
    print(f"official BernoulliRBM vs ours on the initial chains: max relative difference of log p {err:.1e}",
          flush=True)
    if err > 1e-4:
        raise SystemExit(f"the official RBM does not reproduce ours (relative difference {err:.1e}); not timing it")
    official = {
        "gwg": official_samplers.DiffSampler(d, 1, fixed_proposal=False, approx=True, multi_hop=False, temp=2.0),
        "gibbs": official_samplers.PerDimGibbsSampler(d, rand=True),
    }
    chains = {name: torch.tensor(x0) for name in ("gwg", "gibbs", "block_gibbs")}

    def stepper(name):
        def step():
            if name == "block_gibbs":
                with torch.no_grad():
                    chains[name] = rbm._gibbs_step(chains[name])  # what BernoulliRBM.gibbs_sample repeats
            else:
                chains[name] = official[name].step(chains[name].detach(), rbm).detach()  # as rbm_sample.py
        return step

    return {name: stepper(name) for name in chains}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="rbm-mnist", help="an RBM checkpoint (name or folder)")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--steps", type=int, default=10000, help="steps per sampler for ESS / MMD")
    p.add_argument("--timing-steps", type=int, default=1000)
    p.add_argument("--thin", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5, help="timing rounds (interleaved with the official code)")
    p.add_argument("--truth-chains", type=int, default=600)
    p.add_argument("--truth-steps", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--samplers", default="gwg,gibbs,uniform_mh,block_gibbs",
                   help="comma-separated: gwg, gwg-N (N flips), gibbs, uniform_mh, block_gibbs, pas-L (path auxiliary, "
                   "L changes per path), pas-rL (path auxiliary, lengths uniform in 1..2L-1)")
    p.add_argument("--timing-only", action="store_true", help="skip ground truth, ESS and MMD")
    p.add_argument("--official", default=None, help="a checkout of wgrathwohl/GWG_release to time side by side")
    p.add_argument("--official-steps", type=int, default=100, help="official sampler steps per timing round")
    p.add_argument("--torch-threads", default="2,1", help="torch thread counts to time the official code with: "
                   "on a loaded machine one thread can be much faster than two (OpenMP threads wait for each other)")
    args = p.parse_args(argv)
    threads = parse_threads(args.torch_threads)

    model = zoo.load(args.model)
    target = model.target()
    d = model.config.visible
    key = jax.random.key(args.seed)
    k_init, k_truth, k_proj, k_run = jax.random.split(key, 4)

    def init(n, k):
        return jax.random.bernoulli(k, jax.nn.sigmoid(model.base_logits)[None, :], (n, d)).astype(jnp.float32)

    x0 = init(args.chains, k_init)
    print(f"RBM {d}x{model.config.hidden} from {args.model}; {args.chains} chains; devices: {jax.devices()}; "
          f"{os.cpu_count()} CPU cores; JAX {jax.__version__}; load average (1, 5, 15 min) {os.getloadavg()}",
          flush=True)
    official_steps, official_note = {}, None
    if args.official:
        mods, why = import_official_gwg(args.official, threads[0])
        if mods is None:
            official_note = f"official timing skipped: {why}"
        else:
            official_steps = official_setup(mods, model, np.asarray(x0))
            official_note = (f"official: {args.official} (GWG_release, imports unchanged), torch {mods[0].__version__}"
                             f" on {' and '.join(map(str, threads))} thread(s) (torch.set_num_threads), "
                             f"{args.official_steps} steps per round, {args.repeats} interleaved rounds, medians")
    else:
        official_note = "official timing skipped: no --official PATH given"
    print(official_note, flush=True)

    # The matmul roof: one (chains x H) @ (H x D) product per step, the cost floor of a GWG step
    # on an RBM (the gradient at the proposed point). Measured in this run, on this (shared) CPU.
    W = jnp.asarray(model.W)

    @jax.jit
    def roof(a):
        def body(c, _):
            g = jax.nn.sigmoid(c) @ W.T
            return c + 1e-6 * g[:, : c.shape[1]], None

        return jax.lax.scan(body, a, None, length=args.timing_steps)[0]

    a0 = jnp.zeros((args.chains, model.config.hidden))
    jax.block_until_ready(roof(a0))
    roof_per_s = interleaved_medians({"roof": (lambda: jax.block_until_ready(roof(a0)), args.timing_steps)},
                                     args.repeats)["roof"]
    print(f"matmul roof (one {args.chains}x{model.config.hidden}x{d} product per step): {roof_per_s:.0f} steps/s",
          flush=True)
    t0 = time.perf_counter()
    truth = None
    if not args.timing_only:
        x_truth = init(args.truth_chains, k_truth)
        truth = _run(samplers.BlockGibbs(), target, x_truth, k_truth, args.truth_steps, args.truth_steps, False).final
        truth = jax.block_until_ready(truth)
        print(f"ground truth: {args.truth_chains} block-Gibbs chains x {args.truth_steps} steps "
              f"({time.perf_counter() - t0:.1f}s)", flush=True)
    proj = jax.random.normal(k_proj, (d,))

    runs = {name: make_sampler(name) for name in args.samplers.split(",")}
    results: dict = {"matmul_roof_steps_per_s": roof_per_s, "official": official_note,
                     "load_average_start": os.getloadavg()}
    for name, sampler in runs.items():
        # timing: no saving, compile excluded, median of rounds, interleaved with the official sampler if any
        jax.block_until_ready(_run(sampler, target, x0, k_run, args.timing_steps, args.timing_steps, False).final)
        rnd = iter(range(10**9))

        def ours(sampler=sampler):
            k = jax.random.fold_in(k_run, next(rnd))
            jax.block_until_ready(_run(sampler, target, x0, k, args.timing_steps, args.timing_steps, False).final)

        fns = {"zoo": (ours, args.timing_steps)}
        if name in official_steps:
            fns.update(official_rounds(official_steps[name], args.official_steps, threads, mods[0]))
        med = interleaved_medians(fns, args.repeats)
        steps_per_s = med.pop("zoo")
        row = {"steps_per_s": steps_per_s, "vs_matmul_roof": steps_per_s / roof_per_s}
        ratio = ""
        if med:
            row.update({f"{k}_steps_per_s": v for k, v in med.items()})
            best = max(med, key=med.get)
            row["vs_official"] = steps_per_s / med[best]  # against the faster thread count
            ratio = "  official " + ", ".join(f"{v:.1f} ({k.split('_')[1]})" for k, v in med.items()) + \
                f" steps/s (measured) -> {row['vs_official']:.1f}x the faster"
        if name in QUOTED_OFFICIAL_STEPS_PER_S:
            row["quoted_official_steps_per_s"] = QUOTED_OFFICIAL_STEPS_PER_S[name]
        if args.timing_only:
            results[name] = row
            print(f"{name:12s} {steps_per_s:8.0f} steps/s  ({row['vs_matmul_roof']:.2f} of the matmul roof){ratio}",
                  flush=True)
            continue
        # convergence: MMD to the ground truth along chains from the base distribution
        res = _run(sampler, target, x0, k_run, args.steps, args.thin, True)
        xs = np.asarray(res.samples)  # (saved, chains, D)
        marks = sorted({max(1, len(xs) // 10), max(1, len(xs) // 2), len(xs)})
        mmds = {int(m * args.thin): float(mmd(jnp.asarray(xs[m - 1]), truth)) for m in marks}
        # mixing: ESS of a random projection along stationary chains (started at ground-truth samples)
        stat = _run(sampler, target, truth[: args.chains], jax.random.fold_in(k_run, 99), args.steps, args.thin, True)
        xs_stat = np.asarray(stat.samples)
        ess = effective_sample_size(xs_stat @ np.asarray(proj))  # per chain, in saved samples
        sec = args.steps / steps_per_s
        mmd_stationary = float(mmd(jnp.asarray(xs_stat[-1]), truth[args.chains :]))
        row.update({
            "ess_per_chain": float(np.mean(ess)),
            "ess_per_s": float(np.sum(ess) / sec),
            "mmd": mmds,
            "mmd_stationary_end": mmd_stationary,
            **{k: float(np.mean(v)) for k, v in res.info.items()},
        })
        row["accept_or_flip_prob"] = float(np.mean(res.info.get("accept_prob", res.info.get("flip_prob", np.nan))))
        results[name] = row
        print(f"{name:12s} {steps_per_s:8.0f} steps/s{ratio}  ESS/chain {row['ess_per_chain']:6.1f} "
              f"(of {len(xs)} saved)  ESS/s {row['ess_per_s']:8.1f}  MMD " +
              ", ".join(f"{k}: {v:.2e}" for k, v in mmds.items()) + f"  (stationary start: {mmd_stationary:.1e})",
              flush=True)
    if not args.timing_only and "gwg" in results and "gibbs" in results:
        g, gb = results["gwg"], results["gibbs"]
        print(f"GWG vs random-scan Gibbs (this run): {g['steps_per_s'] / gb['steps_per_s']:.2f}x steps/s, "
              f"{g['ess_per_s'] / max(gb['ess_per_s'], 1e-12):.2f}x ESS/s")
    if not official_steps:
        print("official figures QUOTED in an issue (not measured here, no ratio taken): " +
              ", ".join(f"{k} {v:.0f} steps/s" for k, v in QUOTED_OFFICIAL_STEPS_PER_S.items()))
    results["load_average_end"] = os.getloadavg()
    print(f"{official_note}\nload average at the end (1, 5, 15 min): {os.getloadavg()} (the CPU is shared)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
