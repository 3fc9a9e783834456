"""Cross-check the zoo's AIS (data-mean Bernoulli base; GWG transitions on the geometric path, or with
--path rbm the RBM's own annealing path, `zoo.ebm.rbm_path_ais`) two ways, on MNIST-sized models.

(a) Exact log Z. An RBM with 784 visible and --hidden (default 20) hidden units, built from the
    bundled `rbm-mnist`: its --hidden hidden units with the largest weight norms, with its visible
    biases and AIS base (no training: a real model's weight scale and structure, deterministic). Its
    log Z is summed exactly over the 2^hidden hidden states (`zoo.ebm.rbm_log_z_exact`, "exact in
    h"); AIS estimates it at each --exact-steps temperature count with --chains chains. Reported:
    the error, the bootstrap standard error, and their ratio.
(b) The sandwich. For the checkpoint --checkpoint (default rbm-mnist) on its first --examples test
    images: forward AIS's log-likelihood (mean f(x) - log Z_hat; optimistic in expectation, since
    AIS under-estimates log Z) against RAISE's (reverse annealing from each test image, with
    --raise-chains chains per image; conservative: a stochastic lower bound on the annealed
    model's log-likelihood), at each --sandwich-steps temperature count, with the model's own AIS
    transition (`model.ais_sampler()`). RAISE bounds the annealed model's log-likelihood, which
    tends to the model's as the temperature count grows (and is below it on average for data that
    look like the model's samples), so the true value lies between the two, up to noise; the
    paired gap (AIS - RAISE per image) says how far apart the two bounds still are.

Public API only. Prints one line per measurement and, with --json PATH, writes everything there.
Wall times include compilation (one per temperature count).

    nice -n 10 python scripts/ais_check.py --exact-steps 100,300 --sandwich-steps 100 --examples 20 --chains 20
    nice -n 10 python scripts/ais_check.py --exact-steps 1000,3000,10000,30000 --sandwich-steps 1000,10000,30000 \\
        --examples 500 --chains 100 --json ais_check.json                     # the full run

Measured (2 busy CPU cores, compiled, per 1000 temperatures): (a) 0.6 CPU-s for 100 AIS chains on
the 784x20 RBM; (b) on rbm-mnist (784x500) 1.9 CPU-s for 100 AIS chains and 2.1 CPU-s for 100 RAISE
chains, plus a few seconds of compilation per temperature count: the full run is about 10 CPU-minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import zoo
import zoo.data as zd
from zoo import ebm


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _log(msg: str) -> None:
    print(f"[ais_check] {msg}", flush=True)


def exact_check(args: argparse.Namespace, key: jax.Array) -> dict[str, Any]:
    """(a): AIS against the exact-in-h log Z of a 784 x hidden sub-RBM of rbm-mnist."""
    rbm = zoo.load(args.rbm)
    if not isinstance(rbm, ebm.RBM):
        raise SystemExit(f"--rbm {args.rbm} is a {type(rbm).__name__}, not a zoo.ebm.RBM")
    norms = np.linalg.norm(np.asarray(rbm.W), axis=0)
    keep = np.sort(np.argsort(-norms)[: args.hidden])
    target = ebm.RBMTarget(rbm.W[:, keep], rbm.b, rbm.c[keep])
    t0 = time.time()
    exact = float(ebm.rbm_log_z_exact(target))
    _log(f"(a) {rbm.W.shape[0]}x{args.hidden} RBM from {args.rbm} (its {args.hidden} hidden units with the largest "
         f"weight norms, {norms[keep].min():.2f}..{norms[keep].max():.2f}): exact log Z = {exact:.4f} "
         f"(2^{args.hidden} hidden states, {time.time() - t0:.1f}s)")
    rows = []
    for i, steps in enumerate(args.exact_steps):
        t0 = time.time()
        if args.path == "rbm":
            res = ebm.rbm_path_ais(target, rbm.base_logits, num_steps=steps, num_chains=args.chains,
                                   key=jax.random.fold_in(key, i))
        else:
            res = ebm.ais(target, rbm.base_logits, num_steps=steps, num_chains=args.chains,
                          key=jax.random.fold_in(key, i), sampler=rbm.ais_sampler())
        log_z = float(res.log_z)
        seconds = time.time() - t0
        se = ebm.bootstrap_std(np.asarray(res.log_weights))
        err = log_z - exact
        rows.append({"num_steps": steps, "num_chains": args.chains, "ais_log_z": log_z, "bootstrap_se": se,
                     "error": err, "error_over_se": err / se if se > 0 else math.inf,
                     "log_w_std": float(np.std(np.asarray(res.log_weights))), "seconds": seconds})
        _log(f"(a) AIS {steps} temperatures x {args.chains} chains: log Z {log_z:.4f} (error {err:+.4f}, bootstrap "
             f"SE {se:.4f}, {err / se if se > 0 else math.inf:+.1f} SE) {seconds:.1f}s")
    return {"rbm": args.rbm, "hidden": args.hidden, "hidden_units": keep.tolist(), "exact_log_z": exact,
            "ais": rows}


def sandwich_check(args: argparse.Namespace, key: jax.Array) -> dict[str, Any]:
    """(b): forward AIS and RAISE log-likelihoods of a checkpoint on a test subset."""
    bundle = zoo.load_bundle(args.checkpoint)
    model = bundle.model if args.weights == "raw" or bundle.ema is None else bundle.ema
    for attr in ("target", "base_logits", "log_prob", "ais_sampler"):
        if not hasattr(model, attr):
            raise SystemExit(f"--checkpoint {args.checkpoint} ({type(model).__name__}) is not a binary EBM with an AIS "
                             f"base (it has no {attr}); pass an ebm checkpoint such as rbm-mnist")
    dataset = bundle.meta.get("training", {}).get("dataset") or args.dataset
    if not dataset:
        raise SystemExit(f"{args.checkpoint} does not record its data set; pass --dataset NAME")
    x = np.asarray(zd.load(dataset, "test").x)[: args.examples]
    data = x.reshape(len(x), -1).astype(np.float32)
    d = int(model.base_logits.shape[0])
    if data.shape[1] != d:
        raise SystemExit(f"{dataset} test examples have {data.shape[1]} pixels, the model {d}")
    f = np.asarray(jax.jit(jax.vmap(model.log_prob))(jnp.asarray(data)), np.float64)
    sampler = model.ais_sampler()
    if args.path == "rbm":  # the RBM (term)'s own path: annealed block Gibbs, MH-corrected by the network term
        rbm_term, rest = (model.target(), None) if isinstance(model, ebm.RBM) else (getattr(model, "rbm", None),
                                                                                    getattr(model, "net", None))
        if rbm_term is None:
            raise SystemExit(f"--path rbm needs an RBM or a model with an RBM term; {args.checkpoint} has none")
    _log(f"(b) {args.checkpoint} ({type(model).__name__}, {args.weights} weights), first {len(data)} {dataset} test "
         f"images, path {args.path}, transition "
         + (type(sampler).__name__ if args.path == "geometric" else "block-Gibbs-proposal MH"))
    rows = []
    for i, steps in enumerate(args.sandwich_steps):
        k_ais, k_raise = jax.random.split(jax.random.fold_in(key, 1000 + i))
        t0 = time.time()
        if args.path == "rbm":
            res = ebm.rbm_path_ais(rbm_term, model.base_logits, rest=rest, num_steps=steps, num_chains=args.chains,
                                   key=k_ais)
        else:
            res = ebm.ais(model.target(), model.base_logits, num_steps=steps, num_chains=args.chains, key=k_ais,
                          sampler=sampler)
        log_z = float(res.log_z)
        t_ais = time.time() - t0
        z_se = ebm.bootstrap_std(np.asarray(res.log_weights))
        ais_lp = f - log_z
        t0 = time.time()
        if args.path == "rbm":
            raise_lp = ebm.rbm_path_raise_log_prob(rbm_term, model.base_logits, data, rest=rest, num_steps=steps,
                                                   num_chains_per_example=args.raise_chains, key=k_raise,
                                                   batch_size=args.batch_size)
        else:
            raise_lp = ebm.raise_log_prob(model.target(), model.base_logits, data, num_steps=steps,
                                          num_chains_per_example=args.raise_chains, key=k_raise, sampler=sampler,
                                          batch_size=args.batch_size)
        raise_lp = raise_lp.astype(np.float64)
        t_raise = time.time() - t0
        gap = ais_lp - raise_lp
        n = len(data)
        se = (lambda v: float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan)
        row = {"num_steps": steps, "ais_chains": args.chains, "raise_chains_per_example": args.raise_chains,
               "num_examples": n, "ais_log_z": log_z, "ais_log_z_bootstrap_se": z_se,
               "ais_log_likelihood": float(ais_lp.mean()), "raise_log_likelihood": float(raise_lp.mean()),
               "raise_log_likelihood_se": se(raise_lp), "gap": float(gap.mean()), "gap_se": se(gap),
               "gap_se_with_log_z": math.hypot(se(gap), z_se), "ais_seconds": t_ais, "raise_seconds": t_raise}
        rows.append(row)
        _log(f"(b) {steps} temperatures: AIS {row['ais_log_likelihood']:.3f} (log Z {log_z:.3f} +- {z_se:.3f}, "
             f"{args.chains} chains, {t_ais:.1f}s) >= RAISE {row['raise_log_likelihood']:.3f} +- "
             f"{row['raise_log_likelihood_se']:.3f} ({args.raise_chains} chain(s)/image, {t_raise:.1f}s); gap "
             f"{row['gap']:+.3f} +- {row['gap_se_with_log_z']:.3f} nats"
             + ("" if row["gap"] > -3 * row["gap_se_with_log_z"] else "  <-- AIS BELOW RAISE: something is wrong"))
    return {"checkpoint": args.checkpoint, "weights": args.weights, "dataset": dataset, "path": args.path,
            "sandwich": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exact-steps", type=_ints, default=[1000, 3000, 10000],
                   help="(a) AIS temperature counts, comma-separated")
    p.add_argument("--sandwich-steps", type=_ints, default=[1000, 10000],
                   help="(b) temperature counts for both AIS and RAISE, comma-separated")
    p.add_argument("--chains", type=int, default=100, help="forward AIS chains")
    p.add_argument("--raise-chains", type=int, default=1, help="(b) RAISE chains per test image")
    p.add_argument("--examples", type=int, default=500, help="(b) the first N test images")
    p.add_argument("--hidden", type=int, default=20, help="(a) hidden units kept (at most 20)")
    p.add_argument("--rbm", default="rbm-mnist", help="(a) the RBM whose hidden units are kept")
    p.add_argument("--checkpoint", default="rbm-mnist", help="(b) an EBM name, hf:// reference or folder")
    p.add_argument("--weights", choices=("ema", "raw"), default="ema", help="(b) which weights (EMA if saved)")
    p.add_argument("--dataset", default=None, help="(b) test data when the checkpoint does not record it")
    p.add_argument("--batch-size", type=int, default=1000, help="(b) RAISE chains run together")
    p.add_argument("--path", choices=("geometric", "rbm"), default="geometric",
                   help="AIS/RAISE path: geometric from the base with the model's GWG transition, or the RBM (term)'s "
                   "own path with block-Gibbs-proposal MH (zoo.ebm.rbm_path_ais)")
    p.add_argument("--skip-exact", action="store_true")
    p.add_argument("--skip-sandwich", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    if not 1 <= args.hidden <= 20:
        p.error(f"--hidden must be in 1..20 (2^hidden states are enumerated), got {args.hidden}")
    for name in ("chains", "raise_chains", "examples", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    key = jax.random.key(args.seed)
    out: dict[str, Any] = {
        "command": "python scripts/ais_check.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "device": f"{jax.default_backend()} ({len(jax.devices())} device(s))",
    }
    if not args.skip_exact:
        out["exact"] = exact_check(args, key)
    if not args.skip_sandwich:
        out["sandwich"] = sandwich_check(args, key)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
        _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
