"""zoo vs DISCS (`google-research/discs`, JAX) on the same model and chains: GWG and path auxiliary.

    ../venv-discs/bin/python scripts/bench_discs.py --model ising            # DISCS's lattice Ising
    ../venv-discs/bin/python scripts/bench_discs.py --model rbm              # zoo's 784x500 rbm-mnist
    ../venv-discs/bin/python scripts/bench_discs.py --model rbm --chains 20 --steps 2000 --thin 10 --repeats 3

DISCS (a checkout at `--discs`, default ``../official/discs`` next to the repository) is imported
unchanged into this process, so both libraries run on the same JAX / XLA build and the same CPU.
It was written for JAX 0.3.25, flax 0.6 and TensorFlow 2.11; four compatibility settings are made
around its modules before they are imported, none a change to its code:

- empty stand-ins for ``tensorflow`` and ``tensorboard.plugins.hparams.api``: ``discs/common/utils.py``
  imports ``clu.metric_writers``, which imports them for TensorBoard summaries that sampling never writes;
- ``pickle5`` is the standard ``pickle`` (the backport DISCS's graph loaders import; Python >= 3.8 has it);
- ``jnp.clip(x, a_min=, a_max=)``: the keywords were removed from JAX (now ``min`` / ``max``), a wrapper maps them;
- ``jax.tree_map`` (removed from JAX) is ``jax.tree.map``.

Its other imports need ``ml_collections``, ``flax``, ``clu`` and ``python-sat`` (a benchmark-only
environment: ``python -m venv --system-site-packages ../venv-discs`` and ``pip install --no-deps
ml_collections flax clu python-sat rich`` there; never in the main environment).

Models (checked to give the same log-density on the initial chains before timing):

- ``ising``: DISCS's ``models/ising.py`` (open-boundary lattice, ``lambdaa``, a random field plus the
  ``mu`` inner/outer field) and ``zoo.ebm.IsingTarget(J = lambdaa * A, h = -b)``, the same law.
- ``rbm``: DISCS's ``BinaryRBM`` holding the weights of zoo's ``rbm-mnist`` checkpoint, and its ``target()``.

Samplers, one step = one proposal for every chain (DISCS's chains are a batch; zoo's are vmapped):

- ``gwg``: DISCS ``BinaryGWGSampler`` (``num_flips=1``, ``adaptive=False``, ``SQRT`` balancing) vs
  ``zoo.samplers.GWG()`` (temperature 2): the same algorithm, so the acceptance rates must agree.
- ``pas``: DISCS ``PAFSNoReplacement`` (``num_flips=L``, ``adaptive=False``: L distinct positions drawn
  without replacement) vs ``zoo.samplers.PathAuxiliary(path_length=L)`` (the paper's path of L draws
  with replacement): two variants of the path auxiliary proposal, compared as each library's sampler.

Per step: steps/s of every chain advancing one step, compile excluded, in `--repeats` interleaved
rounds (zoo, DISCS in a `lax.scan`, DISCS as its own runner drives it: one jitted step per Python
call), medians. Per effective sample: the ESS per chain of a fixed random projection of the state
(Geyer, `zoo.ebm.effective_sample_size`) over `--steps` steps saved every `--thin`, after a burn-in
of `--burn-in` steps from the same initial chains; seconds per effective sample = 1 / (ESS per
second) with each sampler's own median step time. Ratios are DISCS time / zoo time (above 1: zoo faster).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import sys
import types
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _timing import interleaved_medians

import zoo
from zoo import samplers
from zoo.ebm import IsingTarget, effective_sample_size, lattice_coupling


REPO = Path(__file__).resolve().parents[1]


def import_discs(path: str):
    """DISCS's modules (imported unchanged, after the settings in the module docstring), or a reason why not."""
    if not (Path(path) / "discs" / "samplers" / "gwg.py").is_file():
        return None, f"no DISCS checkout at {path} (expected discs/samplers/gwg.py there; pass --discs)"
    for name in ("tensorflow", "tensorboard", "tensorboard.plugins", "tensorboard.plugins.hparams",
                 "tensorboard.plugins.hparams.api"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules.setdefault("pickle5", pickle)
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map
    clip = jnp.clip
    if getattr(clip, "__name__", "") != "_clip_with_a_keywords":

        def _clip_with_a_keywords(x, min=None, max=None, *, a_min=None, a_max=None):
            return clip(x, a_min if min is None else min, a_max if max is None else max)

        jnp.clip = _clip_with_a_keywords
    sys.path.insert(0, str(Path(path).resolve()))
    try:
        import ml_collections
        from discs.models import ising, rbm
        from discs.samplers import gwg, path_auxiliary
    except Exception as e:  # noqa: BLE001 - report any import failure as the reason
        return None, (f"importing DISCS from {path} failed: {type(e).__name__}: {e} (it needs ml_collections, "
                      "flax, clu and python-sat; see the module docstring)")
    return types.SimpleNamespace(ml_collections=ml_collections, ising=ising, rbm=rbm, gwg=gwg,
                                 path_auxiliary=path_auxiliary), None


def discs_config(mods, model: dict, sampler: dict):
    return mods.ml_collections.ConfigDict({"model": model, "sampler": sampler})


def build_models(mods, args, rbm_model=None):
    """``(discs model, its params, zoo target, initial chains (N, D) float32, DISCS state shape)``."""
    key = jax.random.PRNGKey(args.seed)
    if args.model == "ising":
        cfg = discs_config(mods, dict(shape=(args.size, args.size), num_categories=2, lambdaa=args.lambdaa,
                                      mu=args.mu, init_sigma=args.init_sigma, name="ising"), {})
        model = mods.ising.build_model(cfg)
        params = model.make_init_params(jax.random.fold_in(key, 1))
        J = args.lambdaa * jnp.asarray(lattice_coupling(args.size, periodic=False))
        target = IsingTarget(J, -params["params"][2].reshape(-1))
        x0 = model.get_init_samples(jax.random.fold_in(key, 2), args.chains).reshape(args.chains, -1)
        shape = (args.size, args.size)
    else:
        d, h = rbm_model.config.visible, rbm_model.config.hidden
        cfg = discs_config(mods, dict(name="rbm", num_visible=d, num_hidden=h, num_categories=2, shape=(d,)), {})
        model = mods.rbm.BinaryRBM(cfg.model)
        params = {"b_v": jnp.asarray(rbm_model.b), "b_h": jnp.asarray(rbm_model.c), "w": jnp.asarray(rbm_model.W)}
        target = rbm_model.target()
        p = jax.nn.sigmoid(rbm_model.base_logits)
        x0 = jax.random.bernoulli(jax.random.fold_in(key, 2), p[None, :], (args.chains, d))
        shape = (d,)
    x0 = jnp.asarray(x0, jnp.float32)
    ours = jax.vmap(target)(x0)
    theirs = model.forward(params, x0.reshape((-1,) + shape))
    err = float(jnp.max(jnp.abs(ours - theirs)) / jnp.max(jnp.abs(ours)))
    print(f"DISCS {args.model} vs zoo on the initial chains: max relative difference of log p {err:.1e}", flush=True)
    if err > 1e-4:
        raise SystemExit(f"DISCS's model does not reproduce zoo's (relative difference {err:.1e}); not timing it")
    return model, params, target, x0, shape


def discs_sampler(mods, name: str, args):
    cfg = discs_config(mods, dict(shape=(1,), num_categories=2), {})
    if name == "gwg":
        cfg.sampler = mods.ml_collections.ConfigDict(
            dict(name="gwg", num_flips=1, adaptive=False, balancing_fn_type="SQRT"))
        return mods.gwg.build_sampler(cfg)
    cfg.sampler = mods.ml_collections.ConfigDict(
        dict(name="path_auxiliary", use_fast_path=True, num_flips=args.path_length, adaptive=False,
             balancing_fn_type="SQRT", approx_with_grad=True))
    return mods.path_auxiliary.build_sampler(cfg)


def zoo_sampler(name: str, args) -> samplers.AbstractSampler:
    if name == "gwg":
        return samplers.GWG()
    return samplers.PathAuxiliary(path_length=args.path_length, random_length=args.random_length)


class DiscsChains:
    """DISCS's step on a batch of chains: a `lax.scan` loop, its runner's per-step loop and saved projections."""

    def __init__(self, sampler, model, params, shape):
        self.sampler, self.model, self.params, self.shape = sampler, model, params, shape
        self.step = jax.jit(functools.partial(sampler.step, model=model))  # as discs/experiment/sampling.py

    def init(self, x0):
        return x0.reshape((-1,) + self.shape).astype(jnp.int32), self.sampler.make_init_state(jax.random.PRNGKey(0))

    @functools.partial(jax.jit, static_argnums=(0, 5, 6))
    def scan(self, x, state, params, key, steps: int, thin: int, proj=None):
        """`steps` steps; with `proj`, the projections of the states every `thin` steps ``(steps / thin, N)``."""

        def one(carry, k):
            x, s = carry
            x, s, acc = self.sampler.step(self.model, k, x, params, s)
            return (x, s), acc

        def block(carry, k):
            carry, acc = jax.lax.scan(one, carry, jax.random.split(k, thin))
            x = carry[0].reshape(carry[0].shape[0], -1).astype(jnp.float32)
            return carry, (None if proj is None else x @ proj, jnp.mean(acc))

        carry, (ys, acc) = jax.lax.scan(block, (x, state), jax.random.split(key, steps // thin))
        return carry, ys, jnp.mean(acc)

    def loop(self, x, state, key, steps: int):
        for i in range(steps):
            x, state, _ = self.step(rng=jax.random.fold_in(key, i), x=x, model_param=self.params, state=state)
        return jax.block_until_ready(x)


@eqx.filter_jit
def zoo_run(sampler, target, x0, key, steps, thin, save):
    return samplers.run(sampler, target, x0, num_steps=steps, thin=thin, save=save, batched=True, key=key)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--discs", default=str(REPO.parent / "official" / "discs"), help="a google-research/discs checkout")
    p.add_argument("--model", choices=["ising", "rbm"], default="ising")
    p.add_argument("--size", type=int, default=50, help="Ising lattice side (DISCS's default 50)")
    p.add_argument("--lambdaa", type=float, default=0.5, help="Ising coupling (DISCS's high-temperature 0.5)")
    p.add_argument("--mu", type=float, default=0.5)
    p.add_argument("--init-sigma", type=float, default=1.5)
    p.add_argument("--rbm", default="rbm-mnist", help="zoo RBM checkpoint for --model rbm")
    p.add_argument("--samplers", default="gwg,pas", help="comma-separated: gwg, pas")
    p.add_argument("--path-length", type=int, default=3, help="L of both path auxiliary samplers")
    p.add_argument("--random-length", action="store_true",
                   help="zoo's path auxiliary draws L uniformly from 1..2 path_length - 1 (DISCS's stays at L)")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--timing-steps", type=int, default=500)
    p.add_argument("--loop-steps", type=int, default=100, help="steps per round of DISCS's per-step runner loop")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10000, help="steps for the ESS (after burn-in)")
    p.add_argument("--burn-in", type=int, default=1000)
    p.add_argument("--thin", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.steps % args.thin or args.timing_steps <= 0:
        raise SystemExit("--steps must be a multiple of --thin and --timing-steps positive")

    # zoo's checkpoint first: the tensorflow stand-in would confuse the checkpoint reader's optional-import checks
    rbm_model = zoo.load(args.rbm) if args.model == "rbm" else None
    mods, why = import_discs(args.discs)
    print(f"JAX {jax.__version__}, {jax.devices()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()}",
          flush=True)
    if mods is None:
        print(f"DISCS not timed: {why}")
        return 1
    model, params, target, x0, shape = build_models(mods, args, rbm_model)
    d = x0.shape[1]
    print(f"model {args.model} (D = {d}), {args.chains} chains; DISCS from {args.discs}", flush=True)
    key = jax.random.PRNGKey(args.seed + 1)
    proj = jax.random.normal(jax.random.fold_in(key, 7), (d,))
    results: dict = {"model": args.model, "chains": args.chains, "jax": jax.__version__,
                     "load_average_start": os.getloadavg()}
    names = args.samplers.split(",")
    if any(n not in ("gwg", "pas") for n in names):
        raise SystemExit(f"unknown sampler in {args.samplers!r}: use gwg and/or pas")
    ours = {n: zoo_sampler(n, args) for n in names}
    theirs = {n: DiscsChains(discs_sampler(mods, n, args), model, params, shape) for n in names}
    xd, sd = {}, {}
    fns, steps = {}, {}  # steps per round, for steps/s
    rounds = iter(range(10**9))
    for n in names:
        xd[n], sd[n] = theirs[n].init(x0)
        # compile (excluded from the timings)
        jax.block_until_ready(zoo_run(ours[n], target, x0, key, args.timing_steps, args.timing_steps, False).final)
        jax.block_until_ready(theirs[n].scan(xd[n], sd[n], params, key, args.timing_steps, args.timing_steps)[0])
        theirs[n].loop(xd[n], sd[n], key, 2)

        def run_zoo(n=n):
            k = jax.random.fold_in(key, next(rounds))
            jax.block_until_ready(zoo_run(ours[n], target, x0, k, args.timing_steps, args.timing_steps, False).final)

        def run_discs_scan(n=n):
            k = jax.random.fold_in(key, next(rounds))
            jax.block_until_ready(theirs[n].scan(xd[n], sd[n], params, k, args.timing_steps, args.timing_steps)[0])

        def run_discs_loop(n=n):
            theirs[n].loop(xd[n], sd[n], jax.random.fold_in(key, next(rounds)), args.loop_steps)

        fns.update({f"zoo_{n}": run_zoo, f"discs_scan_{n}": run_discs_scan, f"discs_loop_{n}": run_discs_loop})
        steps.update({f"zoo_{n}": args.timing_steps, f"discs_scan_{n}": args.timing_steps,
                      f"discs_loop_{n}": args.loop_steps})
    med = interleaved_medians(fns, args.repeats).per_second(steps)  # all samplers of both libraries in every round
    print("steps/s (medians of interleaved rounds): " + ", ".join(f"{k} {v:.0f}" for k, v in med.items()), flush=True)
    for name in names:
        # ESS of a random projection, after a burn-in, from the same initial chains
        k_ess = jax.random.fold_in(key, 10**6)
        res = zoo_run(ours[name], target, x0, k_ess, args.burn_in + args.steps, args.thin, True)
        trace_zoo = np.asarray(res.samples)[args.burn_in // args.thin:] @ np.asarray(proj)
        acc_zoo = float(jnp.mean(res.info["accept_prob"]))
        _, trace_discs, acc_discs = theirs[name].scan(xd[name], sd[name], params, k_ess, args.burn_in + args.steps,
                                                      args.thin, proj)
        trace_discs = np.asarray(trace_discs)[args.burn_in // args.thin:]
        row = {}
        for who, trace, rate, acc in (("zoo", trace_zoo, med[f"zoo_{name}"], acc_zoo),
                                      ("discs", trace_discs, med[f"discs_scan_{name}"], float(acc_discs))):
            ess = effective_sample_size(trace)
            ess_per_s = float(np.sum(ess)) / (args.steps / rate)
            row[who] = {"steps_per_s": rate, "ess_per_chain": float(np.mean(ess)), "ess_per_s": ess_per_s,
                        "s_per_effective_sample": 1 / ess_per_s, "accept": acc}
        loop = med[f"discs_loop_{name}"]
        row["discs"]["runner_loop_steps_per_s"] = loop
        row["ratio_per_step"] = row["zoo"]["steps_per_s"] / row["discs"]["steps_per_s"]
        row["ratio_per_step_vs_runner"] = row["zoo"]["steps_per_s"] / loop
        row["ratio_per_effective_sample"] = row["zoo"]["ess_per_s"] / row["discs"]["ess_per_s"]
        results[name] = row
        z, t = row["zoo"], row["discs"]
        print(f"{name}: zoo {z['steps_per_s']:.0f} steps/s, DISCS {t['steps_per_s']:.0f} steps/s in a scan "
              f"({loop:.0f} steps/s as its runner calls it) -> zoo {row['ratio_per_step']:.2f}x per step "
              f"({row['ratio_per_step_vs_runner']:.1f}x vs the runner)", flush=True)
        print(f"{name}: ESS/chain zoo {z['ess_per_chain']:.1f}, DISCS {t['ess_per_chain']:.1f} (of "
              f"{args.steps // args.thin} saved); acceptance zoo {z['accept']:.3f}, DISCS {t['accept']:.3f}; "
              f"seconds per effective sample zoo {z['s_per_effective_sample']:.2e}, DISCS "
              f"{t['s_per_effective_sample']:.2e} -> zoo {row['ratio_per_effective_sample']:.2f}x per effective sample",
              flush=True)
    if "gwg" in results and "pas" in results:
        g, q = results["gwg"]["zoo"], results["pas"]["zoo"]
        print(f"zoo path auxiliary (L = {args.path_length}) vs zoo GWG, same run: "
              f"{q['steps_per_s'] / g['steps_per_s']:.2f}x steps/s, "
              f"{q['ess_per_chain'] / g['ess_per_chain']:.2f}x ESS per step, "
              f"{q['ess_per_s'] / g['ess_per_s']:.2f}x ESS/s")
    results["load_average_end"] = os.getloadavg()
    print(f"load average at the end: {os.getloadavg()} (the CPU is shared)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
