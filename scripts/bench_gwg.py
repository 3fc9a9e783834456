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

The timed chains are `zoo.samplers.run` called as a user calls it (outside `jit`, `run` jitting
itself), with its defaults: on a CPU the chains run as one group per core, each group its own
execution, all at once (`run`'s ``groups``). A sampler name with ``@gN`` (e.g. ``gwg@g1``, one
execution of all the chains) sets ``groups=N``. Data-parallel chains: ``--cpu-devices N`` splits
the CPU into N JAX devices, and a sampler name with ``@dp`` (e.g. ``gwg@dp``) runs the same
sampler with the chains sharded over them (`zoo.samplers.run(sharding=...)`). Either way each
chain keeps its keys: the ESS and MMD rows are those of the sampler's chains in one execution.

Roofs: every sampler's steps/s is also given as a fraction of its own roof, ``steps/s x
products per step / (products/s of a plain jnp.dot of the same shapes)``, the products being
``chains x H`` by ``H x D`` (2 chains*H*D FLOPs each) and the dot timed in the same interleaved
rounds (float32; bfloat16 inputs with float32 accumulation for ``gwg-bf16``). Products per step:
zoo's GWG 1 (the gradient at the proposed point; the current point's is carried over), block
Gibbs 2; the official GWG 6 (a forward and a backward product for each of its two gradients, a
forward product for each of its two log-densities), its Gibbs 2, its block Gibbs 2. zoo's
random-scan Gibbs and uniform MH multiply no matrices (O(chains x H) per step): no roof. With
``--official`` the official sampler is also set against torch's own roof (`torch.mm` of the same
shapes on the same thread count). ``--official-process`` also times the official GWG sampler in a
process of its own (`_gwg_release.py` run as a worker: no JAX imported there, the same weights and
initial chains), in the same interleaved rounds: torch beside JAX in one process is not torch alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _gwg_release import import_gwg_release  # no JAX: bench_pcd's official worker imports it too
from _timing import Commanded, allocator_note, interleaved_medians, parse_threads
from jax.sharding import NamedSharding, PartitionSpec

import zoo
from zoo import samplers
from zoo.ebm import effective_sample_size, mmd


QUOTED_OFFICIAL_STEPS_PER_S = {"gwg": 96.0, "gibbs": 454.0, "block_gibbs": 327.0}  # quoted in an issue, not measured
OFFICIAL_PRODUCTS = {"gwg": 6, "gibbs": 2, "block_gibbs": 2}  # chains x H x D products per official step
OFFICIAL_FOR = {"gwg": "gwg", "gwg-bf16": "gwg", "gibbs": "gibbs", "block_gibbs": "block_gibbs"}


def official_rounds(step, steps: int, threads: list[int], torch, prefix: str = "official") -> dict:
    """Entries ``(run, setup)`` for `_timing.interleaved_medians`: ``steps`` calls of ``step()`` with torch on each
    of `threads` threads."""

    def run():
        for _ in range(steps):
            step()

    def on(t):
        def setup():
            torch.set_num_threads(t)
            step()  # untimed warm-up at this thread count

        return setup

    return {f"{prefix}_{t}t": (run, on(t)) for t in threads}


def jax_dot_roof(W: jax.Array, chains: int, dtype, steps: int):
    """``run()`` doing `steps` plain ``jnp.dot`` products ``(chains x H) @ (H x D)`` (`W` is ``D x H``) in a
    compiled loop, in `dtype` (float32; or bfloat16 inputs, float32 accumulation, W^T stored as
    `RBMTarget.with_grad_dtype` stores it). Each product feeds the next through a negligible update, so XLA can
    neither hoist nor drop it."""
    f32 = jnp.dtype(dtype) == jnp.float32
    w = W if f32 else jnp.asarray(W.T, dtype)  # the layouts zoo's GWG uses
    h = W.shape[1]

    @jax.jit
    def loop(s):
        def body(s, _):
            g = jnp.dot(s, w.T) if f32 else jnp.dot(s, w, preferred_element_type=jnp.float32)
            return s + (1e-30 * g[:, :h]).astype(s.dtype), None

        return jax.lax.scan(body, s, None, length=steps)[0]

    s0 = jnp.full((chains, h), 0.5, dtype)
    jax.block_until_ready(loop(s0))
    return lambda: jax.block_until_ready(loop(s0))


def torch_mm_step(torch, W: np.ndarray, chains: int):
    """``step()`` doing one ``torch.mm`` of the same shapes as zoo's product, float32 (torch's own roof)."""
    w = torch.tensor(np.ascontiguousarray(W.T))  # (H, D), the official BernoulliRBM's layout
    s = torch.full((chains, W.shape[1]), 0.5)

    def step():
        with torch.no_grad():
            torch.mm(s, w)

    return step


def import_official_gwg(path: str, threads: int):
    """``(torch, rbm, samplers)``: torch (on `threads` threads) and the official GWG_release modules, imported
    unchanged from `path` (`_gwg_release`), or ``(None, reason)`` when they cannot be imported."""
    mods, why = import_gwg_release(
        path, ("samplers", "rbm"), needs="igraph, matplotlib, scikit-learn and tqdm",
        no_torch="torch is not installed (a benchmark-only dependency: install it in a separate environment)",
    )
    if mods is None:
        return None, why
    torch, official_samplers, official_rbm = mods
    torch.set_num_threads(threads)
    return (torch, official_rbm, official_samplers), None


def make_sampler(name: str, target):
    """``(sampler, target, products per step)`` from a `--samplers` name; ``gwg-bf16`` runs GWG on `target`
    with its gradient's product in bfloat16 (`RBMTarget.with_grad_dtype`)."""
    fixed = {"gwg": (samplers.GWG(), 1), "gibbs": (samplers.RandomScanGibbs(), 0),
             "uniform_mh": (samplers.UniformMH(), 0), "block_gibbs": (samplers.BlockGibbs(), 2)}
    head, _, arg = name.partition("-")
    if name in fixed:
        return fixed[name][0], target, fixed[name][1]
    if name == "gwg-bf16":
        return samplers.GWG(), target.with_grad_dtype(jnp.bfloat16), 1
    if head == "gwg" and arg.isdigit():
        return samplers.GWG(num_flips=int(arg)), target, 1
    if head == "pas" and arg.lstrip("r").isdigit():
        return samplers.PathAuxiliary(path_length=int(arg.lstrip("r")), random_length=arg.startswith("r")), target, 1
    raise SystemExit(
        f"unknown sampler {name!r}: use gwg, gwg-bf16, gwg-N, gibbs, uniform_mh, block_gibbs, pas-L or pas-rL")


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
    p.add_argument("--samplers", default="gwg,gwg-bf16,gibbs,uniform_mh,block_gibbs",
                   help="comma-separated: gwg, gwg-bf16 (GWG, gradient product in bfloat16), gwg-N (N flips), gibbs, "
                   "uniform_mh, block_gibbs, pas-L (path auxiliary, L changes per path), pas-rL (path auxiliary, "
                   "lengths uniform in 1..2L-1); a suffix @gN times it in N groups (run's groups=N; @g1: one "
                   "execution), @dp over the --cpu-devices")
    p.add_argument("--timing-only", action="store_true", help="skip ground truth, ESS and MMD")
    p.add_argument("--official", default=None, help="a checkout of wgrathwohl/GWG_release to time side by side")
    p.add_argument("--official-steps", type=int, default=100, help="official sampler steps per timing round")
    p.add_argument("--official-process", action="store_true",
                   help="with --official: also time the official GWG sampler in a process of its own (no JAX there; "
                        "the same weights and chains), interleaved with the rest")
    p.add_argument("--torch-threads", default="2,1", help="torch thread counts to time the official code with: "
                   "on a loaded machine one thread can be much faster than two (OpenMP threads wait for each other)")
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="split the CPU into N JAX devices, for the data-parallel samplers (names ending in @dp)")
    args = p.parse_args(argv)
    threads = parse_threads(args.torch_threads)
    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # before the backend starts

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
    print(allocator_note(zoo._malloc.applied()), flush=True)
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
    alone = None  # the official GWG sampler in a process of its own
    if args.official_process and official_steps:
        tmp = tempfile.mkdtemp(prefix="bench_gwg_")
        np.savez(os.path.join(tmp, "weights.npz"), W=np.asarray(model.W), b=np.asarray(model.b),
                 c=np.asarray(model.c), base_logits=np.asarray(model.base_logits), x0=np.asarray(x0))
        alone = Commanded([sys.executable, "-u", os.path.join(os.path.dirname(__file__), "_gwg_release.py"),
                           "--official", args.official, "--weights", os.path.join(tmp, "weights.npz")],
                          "BENCH_GWG ", "official GWG")
        ready = alone.read()  # the worker has read the weights
        shutil.rmtree(tmp)
        if "error" in ready:
            raise SystemExit(f"the official worker failed: {ready['error']}")
        print(f"official GWG also in its own process (torch {ready['torch']}, no JAX there)", flush=True)

    # The roofs: plain products of the shapes of one GWG step's, timed in the same rounds as each sampler.
    h = model.config.hidden
    gflop = 2 * args.chains * h * d / 1e9  # one (chains x H) @ (H x D) product
    roofs = {"float32": jax_dot_roof(jnp.asarray(model.W), args.chains, jnp.float32, args.timing_steps),
             "bfloat16": jax_dot_roof(jnp.asarray(model.W), args.chains, jnp.bfloat16, args.timing_steps)}
    print(f"one product = {args.chains}x{h} @ {h}x{d} = {gflop * 1e3:.1f} MFLOP; roofs: plain jnp.dot of that "
          "shape (float32; bfloat16 inputs with float32 accumulation), torch.mm float32 for the official code",
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

    runs = {name: make_sampler(name.partition("@")[0], target) for name in args.samplers.split(",")}
    sharding = NamedSharding(zoo.data_mesh(), PartitionSpec("data"))
    results: dict = {"gflop_per_product": gflop, "official": official_note, "load_average_start": os.getloadavg()}
    for name, (sampler, tgt, products) in runs.items():
        # timing: no saving, compile excluded, median of rounds, interleaved with the roof and the official sampler;
        # `run` called eagerly, as a user calls it (it jits itself, cached): its default groups, or `@gN` N groups;
        # `@dp`: the chains sharded over the devices
        base, _, how = name.partition("@")
        shard = sharding if how == "dp" else None
        if how not in ("", "dp") and not (how[:1] == "g" and how[1:].isdigit() and int(how[1:]) > 0):
            raise SystemExit(f"{name}: a sampler name ends in nothing, @dp or @gN (N groups), not @{how}")
        groups = int(how[1:]) if how.startswith("g") else None
        if shard is not None and (len(jax.devices()) < 2 or args.chains % len(jax.devices())):
            raise SystemExit(f"{name}: give --cpu-devices N >= 2 dividing --chains {args.chains}")
        rnd = iter(range(10**9))

        def ours(sampler=sampler, tgt=tgt, shard=shard, groups=groups):
            k = jax.random.fold_in(k_run, next(rnd))
            jax.block_until_ready(samplers.run(sampler, tgt, x0, num_steps=args.timing_steps, key=k, batched=True,
                                               thin=args.timing_steps, sharding=shard, groups=groups).final)

        ours()  # compile + warm-up
        roof_dtype = "bfloat16" if base == "gwg-bf16" else "float32"
        fns = {"zoo": ours}
        if products:
            fns["roof"] = roofs[roof_dtype]
        steps = dict.fromkeys(fns, args.timing_steps)  # per round, for steps/s
        off = OFFICIAL_FOR.get(base)
        if off in official_steps:
            mm = torch_mm_step(mods[0], np.asarray(model.W), args.chains)
            for prefix, step, n in (("official", official_steps[off], args.official_steps),
                                    ("torchmm", mm, 10 * args.official_steps)):
                rounds = official_rounds(step, n, threads, mods[0], prefix=prefix)
                fns.update(rounds)
                steps.update(dict.fromkeys(rounds, n))
            if alone is not None and off == "gwg":
                for t in threads:
                    fns[f"alone_{t}t"] = lambda t=t: alone.ask(f"run {args.official_steps} {t}")
                    steps[f"alone_{t}t"] = args.official_steps
        med = interleaved_medians(fns, args.repeats).per_second(steps)
        steps_per_s = med.pop("zoo")
        row = {"steps_per_s": steps_per_s, "products_per_step": products}
        line = f"{name:12s} {steps_per_s:8.0f} steps/s"
        if products:
            roof = med.pop("roof")
            row.update({"roof_dtype": roof_dtype, "roof_products_per_s": roof, "roof_gflop_per_s": roof * gflop,
                        "fraction_of_roof": steps_per_s * products / roof})
            line += (f" ({row['fraction_of_roof']:.2f} of its roof: {products} product(s)/step, {roof_dtype} jnp.dot "
                     f"{roof * gflop:.0f} GFLOP/s)")
        else:
            line += " (no matrix product per step: no roof)"
        torch_mm = {k: med.pop(k) for k in list(med) if k.startswith("torchmm")}
        own = {k: med.pop(k) for k in list(med) if k.startswith("alone")}
        if med:
            n_off = OFFICIAL_PRODUCTS[off]
            for k, v in med.items():
                t = k.split("_")[1]
                row[f"{k}_steps_per_s"] = v
                row[f"{k}_fraction_of_torch_roof"] = v * n_off / torch_mm[f"torchmm_{t}"]
                row[f"torch_mm_{t}_gflop_per_s"] = torch_mm[f"torchmm_{t}"] * gflop
                if products and roof_dtype == "float32":  # the same float32 product, timed by jnp.dot
                    row[f"{k}_fraction_of_jax_roof"] = v * n_off / row["roof_products_per_s"]
            best = max(med, key=med.get)
            row["vs_official"] = steps_per_s / med[best]  # against the faster thread count
            line += "\n             official " + "; ".join(
                f"{v:.1f} steps/s on {k.split('_')[1]} ({n_off} products/step: {row[k + '_fraction_of_torch_roof']:.2f}"
                f" of torch.mm's {torch_mm['torchmm_' + k.split('_')[1]] * gflop:.0f} GFLOP/s)"
                for k, v in med.items()) + f" (measured) -> zoo {row['vs_official']:.1f}x the faster"
        if own:
            best = max(own, key=own.get)
            row.update({f"official_own_process_{k.split('_')[1]}_steps_per_s": v for k, v in own.items()})
            row["vs_official_own_process"] = steps_per_s / own[best]
            line += ("\n             official in its own process " + "; ".join(
                f"{v:.1f} steps/s on {k.split('_')[1]}" for k, v in own.items())
                + f" (measured) -> zoo {row['vs_official_own_process']:.1f}x the faster")
        if name in QUOTED_OFFICIAL_STEPS_PER_S:
            row["quoted_official_steps_per_s"] = QUOTED_OFFICIAL_STEPS_PER_S[name]
        if args.timing_only:
            results[name] = row
            print(line, flush=True)
            continue
        # convergence: MMD to the ground truth along chains from the base distribution
        res = _run(sampler, tgt, x0, k_run, args.steps, args.thin, True)
        xs = np.asarray(res.samples)  # (saved, chains, D)
        marks = sorted({max(1, len(xs) // 10), max(1, len(xs) // 2), len(xs)})
        mmds = {int(m * args.thin): float(mmd(jnp.asarray(xs[m - 1]), truth)) for m in marks}
        # mixing: ESS of a random projection along stationary chains (started at ground-truth samples)
        stat = _run(sampler, tgt, truth[: args.chains], jax.random.fold_in(k_run, 99), args.steps, args.thin, True)
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
        print(f"{line}\n             ESS/chain {row['ess_per_chain']:6.1f} "
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
    if alone is not None:
        print(f"official worker's peak RSS: {alone.close().get('peak_rss_mib', float('nan')):.0f} MiB")
    results["load_average_end"] = os.getloadavg()
    print(f"{official_note}\nload average at the end (1, 5, 15 min): {os.getloadavg()} (the CPU is shared)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
