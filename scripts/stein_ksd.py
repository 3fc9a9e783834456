"""Sample quality of bundled models by kernel Stein discrepancy (`zoo.stein`).

    python scripts/stein_ksd.py ssge-toy toy-gmm8      # continuous: model samples vs the exact score of the data
    python scripts/stein_ksd.py rbm-mnist -n 300       # binary: model samples vs the model's own log-probability

For a model of ``toy:gmm8`` (exact density known), ``n`` samples of the model (`zoo.sample`, its default
sampler) are scored against the exact score of the data distribution with the IMQ KSD (U-statistic)
and its wild-bootstrap test; ``n`` exact draws give the reference. For a binary energy-based model
(``ebm`` family), ``n`` samples of the model are scored against the model's own unnormalised
log-probability with the discrete KSD (Yang et al. 2018, Hamming kernel): it measures how far the
sampler is from the model it samples; ``n`` test-set images scored against the model give the
reference (how well the model fits the data). Prints one markdown row per model.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

import zoo
from zoo import kscore, stein


def continuous(model, n: int, key) -> dict:
    target = kscore.gmm8()
    k0, k1, k2, k3 = jax.random.split(key, 4)
    x = np.asarray(zoo.sample(model, n, key=k0))
    exact = np.asarray(target.sample(n, key=k1))
    out = {}
    for name, pts, k in (("samples", x, k2), ("reference", exact, k3)):
        test = stein.ksd_test(pts, target.score, num_bootstrap=500, key=k)
        out[name] = (float(stein.ksd(pts, target.score)), float(test.p_value))
    return out


def binary(model, dataset: str, n: int, key) -> dict:
    k0, k1, k2 = jax.random.split(key, 3)
    x = np.asarray(zoo.sample(model, n, key=k0)).reshape(n, -1)
    data = np.asarray(zoo.data.load(dataset, "test").x[:n]).reshape(n, -1)
    out = {}
    for name, pts, k in (("samples", x, k1), ("reference", (data > 0.5).astype(np.float32), k2)):
        pts = np.round(pts).astype(np.float32)
        scores = jax.jit(jax.vmap(lambda v: stein.difference_score(model.log_prob, v)))(pts)
        test = stein.discrete_ksd_test(pts, scores, num_bootstrap=500, key=k)
        out[name] = (float(stein.discrete_ksd(pts, scores)), float(test.p_value))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("-n", type=int, default=500, help="samples per model (and reference points)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", action="store_true",
                   help="record the KSD^2 and p-value of the model's samples in its checkpoint (card column)")
    args = p.parse_args(argv)
    command = "python scripts/stein_ksd.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print("| model | KSD^2 of model samples (p-value) | reference KSD^2 (p-value) | seconds |")
    print("|---|---|---|---|")
    for name in args.models:
        model = zoo.load(name)
        info = zoo.model_info(name)
        t0 = time.perf_counter()
        key = jax.random.key(args.seed)
        if info.family == "ebm":
            out = binary(model, info.dataset, args.n, key)
            ref = f"{args.n} test images vs the model"
        elif info.dataset == "toy:gmm8":
            out = continuous(model, args.n, key)
            ref = f"{args.n} exact draws"
        else:
            raise SystemExit(f"{name}: no KSD reference for family {info.family!r} on {info.dataset!r}")
        (ks, kp), (rs, rp) = out["samples"], out["reference"]
        print(f"| {name} | {ks:.4g} ({kp:.3f}) | {rs:.4g} ({rp:.3f}), {ref} | {time.perf_counter() - t0:.0f} |",
              flush=True)
        if args.record:
            kind = "discrete KSD^2 vs the model" if info.family == "ebm" else "IMQ KSD^2 vs the data score"
            common = {"dataset": info.dataset, "split": f"{args.n} model samples", "command": command}
            zoo.annotate(zoo.bundled_path(name), metrics=[
                {"name": "ksd2_samples", "value": round(ks, 6), "note": kind, **common},
                {"name": "ksd_test_p_value_samples", "value": round(kp, 4), "note": kind, **common},
            ])


if __name__ == "__main__":
    main()
