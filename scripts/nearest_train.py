"""Are a binary model's samples copies of its training images? Hamming distance from each sample to
its nearest training image, beside the same distance for held-out test images (which are not copies), overall and
per predicted class.

    python scripts/nearest_train.py ebm-gwg-binarized-mnist -n 64

Samples come from `zoo.sample` (the model's default sampler, key --seed). Prints quantiles of both
distance sets, the fraction of samples closer to a training image than the closest 1% of test images, and,
with --classifier (default classifier-mnist), the predicted digit counts of the samples (diversity: do all
ten classes appear?). Public API only.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

import zoo
import zoo.data as zd


def nearest_hamming(x: np.ndarray, train: np.ndarray, batch: int = 5000) -> np.ndarray:
    """For each row of `x` (binary), the Hamming distance to its nearest row of `train`."""
    a = jnp.asarray(x, jnp.float32)
    best = np.full(len(x), np.inf)
    dist = jax.jit(lambda a, b: jnp.min(jnp.sum(a, 1)[:, None] + jnp.sum(b, 1)[None, :] - 2 * a @ b.T, axis=1))
    for i in range(0, len(train), batch):
        best = np.minimum(best, np.asarray(dist(a, jnp.asarray(train[i : i + batch], jnp.float32))))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a binary image model (name, hf:// reference or folder)")
    p.add_argument("-n", type=int, default=64, help="samples")
    p.add_argument("--test", type=int, default=1000, help="held-out test images for the reference distances")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's training data set")
    p.add_argument("--classifier", default="classifier-mnist", help="'' to skip the class counts")
    p.add_argument("--sample-steps", type=int, default=None, help="override the config's sample_steps")
    p.add_argument("--sample-init", choices=("base", "noise"), default=None,
                   help="override the config's sample_init (chain starts: data-mean Bernoulli or noise)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    bundle = zoo.load_bundle(args.name)
    model = bundle.ema if bundle.ema is not None else bundle.model
    if args.sample_steps is not None:
        model = zoo.replace_config(model, sample_steps=args.sample_steps)
    if args.sample_init is not None:
        model = zoo.replace_config(model, sample_init=args.sample_init)
    dataset = args.dataset or bundle.meta.get("training", {}).get("dataset")
    if not dataset:
        raise SystemExit(f"{args.name} does not record its data set; pass --dataset NAME")
    train = np.asarray(zd.load(dataset, "train").x).reshape(-1, 784)
    test = np.asarray(zd.load(dataset, "test").x)[: args.test].reshape(-1, 784)
    samples = np.asarray(zoo.sample(model, args.n, key=jax.random.key(args.seed)))
    flat = samples.reshape(args.n, -1)
    if flat.shape[1] != train.shape[1] or not np.all((flat == 0) | (flat == 1)):
        raise SystemExit(f"{args.name} does not draw binary {train.shape[1]}-pixel images like {dataset}")
    d_s, d_t = nearest_hamming(flat, train), nearest_hamming(test, train)
    q = [0, 0.01, 0.1, 0.5, 0.9]
    out = {
        "name": args.name, "n": args.n, "dataset": dataset, "sample_steps": model.config.sample_steps,
        "sample_init": getattr(model.config, "sample_init", None), "seed": args.seed,
        "samples_nearest_train_quantiles": dict(zip(map(str, q), np.quantile(d_s, q).tolist())),
        "test_nearest_train_quantiles": dict(zip(map(str, q), np.quantile(d_t, q).tolist())),
        "fraction_closer_than_test_1pct": float(np.mean(d_s < np.quantile(d_t, 0.01))),
    }
    if args.classifier:
        clf = zoo.load(args.classifier)

        def classify(x: np.ndarray) -> np.ndarray:
            return np.asarray(jnp.argmax(jax.vmap(clf)(jnp.asarray(x, jnp.float32).reshape(len(x), 28, 28, 1)), -1))

        c_s, c_t = classify(flat), classify(test)
        out["predicted_class_counts"] = np.bincount(c_s, minlength=10).tolist()
        # thin digits (1s) lie closer to their nearest training image than round ones: compare each sample with
        # the test images of its own predicted class
        close = [d < np.quantile(d_t[c_t == c], 0.01) for d, c in zip(d_s, c_s) if np.any(c_t == c)]
        out["fraction_closer_than_same_class_test_1pct"] = float(np.mean(close)) if close else None
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
