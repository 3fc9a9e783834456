"""Sliced score matching benchmarks: (1) the cost of a training step of annealed SSM-VR vs DSM on the NCSN
MNIST config, (2) the score error of SSM- and DSM-trained toy score models against the kscore estimators
fitted on the same samples (the comparison of Zhou, Shi & Zhu, ICML 2020).

    python scripts/bench_ssm.py                                     # both parts, full NCSN MNIST preset
    python scripts/bench_ssm.py --ngf 4 --batch-size 4 --toy-steps 1500 --num-samples 1000   # small (~minutes)
    python scripts/bench_ssm.py --skip-ncsn --dims 2 10             # toy comparison only, more dimensions

Part 1 times one optimiser step (loss, gradient, Adam update; jitted; the median of ``--repeats`` calls
after one call that compiles, whose time is reported separately) for ``objective="dsm"`` and ``"ssm"``
(annealed SSM-VR, one Gaussian projection: the official code's ``algo: 'ssm'``) on the ``--preset``
config (``--ngf``/``--image-size``/``--batch-size`` shrink it), on random images. SSM-VR needs the
gradient of a vector-Jacobian product: about one more backward pass per step, and a much larger program
to compile.

Part 2: ``--num-samples`` points of a target with a known score (``toy:gmm8`` in 2-D, and a standard
Gaussian in each of ``--dims``), the relative score error ``sqrt(E||s - g||^2 / E||g||^2)`` at 2000 fresh
points of the target for: the toy MLP score model (the ``toy/gmm8`` preset's network and training
settings, EMA weights) trained by DSM, SSM and SSM-VR on the samples noised at ``--sigma`` (the noise
regularises SSM too: on the bare samples a flexible model drives the empirical objective to -inf), and
the kscore estimators (SSGE, nu-method, Stein) fitted on the same samples, each with its bandwidth chosen
by the held-out score-matching objective (`zoo.kscore.select`). The MLPs estimate the score of the noised
data: their error includes that bias.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import zoo
import zoo.kscore as ks
from zoo.toy import ToyScoreConfig


def _timed(fn, *args, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def ncsn_step_cost(args) -> dict:
    preset = zoo.get_preset(args.preset)
    changes = {k: v for k, v in (("ngf", args.ngf), ("image_size", args.image_size)) if v is not None}
    base = preset.config.replace(**changes)
    batch = args.batch_size or preset.train.batch_size
    x = jax.random.uniform(jax.random.key(0), (batch, *base.shape))
    opt = optax.adam(1e-3)
    out = {"preset": args.preset, "config": base.to_dict(), "batch_size": batch}
    for objective in ("dsm", "ssm"):
        model = base.replace(objective=objective).build(key=jax.random.key(1))
        params, static = eqx.partition(model, eqx.is_inexact_array)
        state = opt.init(params)

        @jax.jit
        def step(params, state, key):
            def loss(p):
                return eqx.combine(p, static).loss(x, None, key=key)[0]

            value, grads = jax.value_and_grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, value

        first, per_step = _timed(step, params, state, jax.random.key(2), repeats=args.repeats)
        out[objective] = {"first_call_s": first, "step_s": per_step}
        print(f"  ncsn {objective}: first call (compile + run) {first:.1f} s, step {per_step * 1e3:.1f} ms", flush=True)
    out["ssm_over_dsm"] = out["ssm"]["step_s"] / out["dsm"]["step_s"]
    return out


# kscore estimators; the bandwidth (a multiple of the median heuristic) is chosen per data set from
# BANDWIDTH_SCALES by the held-out score-matching objective (`zoo.kscore.select`, no true score used)
ESTIMATORS = {
    "SSGE": lambda s: ks.SSGE(kernel=ks.DiagonalGaussian(bandwidth_scale=s)),
    "nu-method": lambda s: ks.NuMethod(ks.CurlFreeIMQ(bandwidth_scale=s), lam=1e-3),
    "Stein": lambda s: ks.Stein(ks.DiagonalIMQ(bandwidth_scale=s), lam=1e-3),
}
BANDWIDTH_SCALES = (0.2, 0.5, 1.0, 2.0)


def _relative_error(score, true_score, x) -> float:
    return ks.score_error(score, true_score, x)["score_rel_error"]


def toy_score_errors(args) -> list[dict]:
    rows = []
    targets = [("toy:gmm8", ks.gmm8())] + [(f"N(0, I_{d})", ks.standard_gaussian(d)) for d in args.dims]
    for name, target in targets:
        d = target.means.shape[1]
        k_train, k_test, k_fit = jax.random.split(jax.random.key(args.seed), 3)
        x = np.asarray(target.sample(args.num_samples, key=k_train))
        x_test = target.sample(2000, key=k_test)
        row = {"target": name, "dim": d, "num_samples": args.num_samples}
        # the toy/gmm8 preset's training settings (EMA weights evaluated)
        train = zoo.TrainConfig(steps=args.toy_steps, batch_size=min(256, args.num_samples), learning_rate=2e-3,
                                ema_decay=0.99, log_every=max(1, args.toy_steps // 4))
        for label, objective in (("DSM", "dsm"), ("SSM", "ssm"), ("SSM-VR", "ssm-vr")):
            cfg = ToyScoreConfig(dim=d, width=128, depth=3, sigma=args.sigma, objective=objective)
            t0 = time.perf_counter()
            model = zoo.train(cfg.build(key=k_fit), x, train, key=k_fit).ema
            row[label] = _relative_error(model.score, target.score, x_test)
            row[label + "_s"] = time.perf_counter() - t0
        for label, make in ESTIMATORS.items():
            t0 = time.perf_counter()
            sel = ks.select([make(s) for s in BANDWIDTH_SCALES], jnp.asarray(x), key=k_fit)
            row[label] = _relative_error(sel.fitted, target.score, x_test)
            row[label + "_bandwidth_scale"] = BANDWIDTH_SCALES[sel.index]
            row[label + "_s"] = time.perf_counter() - t0
        print("  " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        rows.append(row)
    return rows


def markdown(ncsn: dict | None, toy: list[dict], cmd: str) -> str:
    lines = ["# Sliced score matching: cost and score error", ""]
    if ncsn is not None:
        lines += [
            f"## NCSN training step, `{ncsn['preset']}` (ngf {ncsn['config']['ngf']}, "
            f"{ncsn['config']['image_size']} px, batch {ncsn['batch_size']})",
            "",
            "| objective | step (ms) | first call: compile + run (s) |",
            "|---|---|---|",
        ]
        for obj in ("dsm", "ssm"):
            lines.append(f"| {obj.upper()} | {ncsn[obj]['step_s'] * 1e3:.1f} | {ncsn[obj]['first_call_s']:.1f} |")
        lines += ["", f"SSM-VR / DSM time per step: {ncsn['ssm_over_dsm']:.2f}x.", ""]
    if toy:
        labels = ["DSM", "SSM", "SSM-VR", "SSGE", "nu-method", "Stein"]
        lines += [
            f"## Relative score error on {toy[0]['num_samples']} samples (2000 test points)",
            "",
            "| target | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for r in toy:
            lines.append(f"| {r['target']} | " + " | ".join(f"{r[k]:.3f}" for k in labels) + " |")
        lines.append("")
    lines += [f"Command: `{cmd}` on {jax.devices()[0].platform.upper()} ({zoo.__version__}).", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    import shlex
    import sys

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="ncsn/mnist")
    p.add_argument("--ngf", type=int, default=None, help="override the preset's ngf")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-ncsn", action="store_true")
    p.add_argument("--skip-toy", action="store_true")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--dims", type=int, nargs="*", default=[2, 10])
    p.add_argument("--toy-steps", type=int, default=3000)
    p.add_argument("--sigma", type=float, default=0.1, help="noise level of the toy models (DSM and SSM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="runs/bench_ssm/bench_ssm.json")
    p.add_argument("--md", default=None, help="also write the tables as markdown here")
    args = p.parse_args(argv)
    ncsn = None if args.skip_ncsn else ncsn_step_cost(args)
    toy = [] if args.skip_toy else toy_score_errors(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ncsn": ncsn, "toy": toy}, indent=1))
    text = markdown(ncsn, toy, "python scripts/bench_ssm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    if args.md:
        Path(args.md).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
