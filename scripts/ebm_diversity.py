"""Which digits does a binary image EBM's sampler produce, and from where? Diagnostics behind the
"Diversity" section of cards/ebm-gwg-binarized-mnist.md. Digits are classified by `classifier-mnist`.

    python scripts/ebm_diversity.py ebm-gwg-binarized-mnist --starts noise,base,dense --cycles 50,200,1000
    python scripts/ebm_diversity.py ebm-gwg-binarized-mnist --starts '' --rbm-term-steps 2000 \
        --ais-steps 5000 --ais-chains 200
    python scripts/ebm_diversity.py ebm-gwg-binarized-mnist --starts '' --buffer RUN/checkpoints/STEP/state
    python scripts/ebm_diversity.py rbm-mnist --starts '' --ais-steps 5000 --ais-path rbm

- `--starts`: digit counts of `-n` chains of the model's default sampler after each of `--cycles` steps, from
  `noise` (every pixel at the data's mean rate: ``sample_init="noise"``), `base` (the data-mean Bernoulli) and
  `dense` (every pixel at 0.5).
- `--rbm-term-steps`: counts of block-Gibbs samples of the model's RBM term alone (models with an RBM term).
- `--ais-steps`: the model's own digit proportions estimated from AIS end states weighted by their importance
  weights (`model.ais`), with the weights' effective sample size (small: the estimate is unreliable).
- `--buffer`: counts of the replay buffer saved in a training checkpoint (the Orbax ``state`` item of a
  `zoo train` workdir step), read with Orbax.
Public API only. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

import zoo
from zoo import samplers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="a binary 28x28 image EBM (name, hf:// reference or folder)")
    p.add_argument("--starts", default="noise,base,dense", help="comma-separated chain starts ('' for none)")
    p.add_argument("--cycles", default="50,200,1000", help="sampler steps at which to classify (increasing)")
    p.add_argument("-n", type=int, default=64, help="chains per start")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--rbm-term-steps", type=int, default=0)
    p.add_argument("--ais-steps", type=int, default=0)
    p.add_argument("--ais-chains", type=int, default=200)
    p.add_argument("--ais-path", choices=("geometric", "rbm"), default=None, help="override the config's ais_path")
    p.add_argument("--buffer", default=None, help="a training checkpoint's state folder")
    p.add_argument("--classifier", default="classifier-mnist")
    args = p.parse_args(argv)
    bundle = zoo.load_bundle(args.name)
    model = bundle.ema if bundle.ema is not None else bundle.model
    if args.ais_path:
        model = zoo.replace_config(model, ais_path=args.ais_path)
    clf = zoo.load(args.classifier)

    def counts(x: jax.Array, weights: np.ndarray | None = None) -> list:
        c = np.asarray(jnp.argmax(jax.vmap(clf)(jnp.asarray(x, jnp.float32).reshape(-1, 28, 28, 1)), -1))
        if weights is None:
            return np.bincount(c, minlength=10).tolist()
        return np.round(np.bincount(c, weights=weights, minlength=10), 3).tolist()

    out: dict = {"name": args.name, "classifier": args.classifier}
    p_base = jax.nn.sigmoid(model.base_logits)
    rates = {"noise": jnp.full_like(p_base, jnp.mean(p_base)), "base": p_base, "dense": jnp.full_like(p_base, 0.5)}
    cycles = [int(c) for c in args.cycles.split(",")]
    for start in filter(None, args.starts.split(",")):
        if start not in rates:
            raise SystemExit(f"unknown start {start!r}: use noise, base or dense")
        x = jax.random.bernoulli(jax.random.key(args.seed), rates[start][None], (args.n, p_base.shape[0]))
        x, done, row = x.astype(jnp.float32), 0, {}
        for c in cycles:
            x = samplers.run(model.default_sampler(), model.target(), x, num_steps=c - done,
                             key=jax.random.key(c), batched=True).final
            done, row[c] = c, counts(x)
            print(start, c, row[c], file=sys.stderr, flush=True)
        out[f"start_{start}"] = row
    if args.rbm_term_steps:
        if getattr(model, "rbm", None) is None:
            raise SystemExit(f"{args.name} has no RBM term: drop --rbm-term-steps")
        x0 = jax.random.bernoulli(jax.random.key(1), p_base[None], (args.ais_chains, p_base.shape[0]))
        x = samplers.run(samplers.BlockGibbs(), model.rbm, x0.astype(jnp.float32), num_steps=args.rbm_term_steps,
                         key=jax.random.key(2), batched=True).final
        out["rbm_term_alone"] = counts(x)
    if args.ais_steps:
        r = model.ais(num_steps=args.ais_steps, num_chains=args.ais_chains, key=jax.random.key(3))
        lw = np.asarray(r.log_weights, np.float64)
        w = np.exp(lw - lw.max())
        w /= w.sum()
        out["ais"] = {"steps": args.ais_steps, "chains": args.ais_chains, "log_z": float(r.log_z),
                      "ess": float(1 / np.sum(w**2)), "unweighted_counts": counts(r.samples),
                      "weighted_fractions": counts(r.samples, w)}
    if args.buffer:
        import orbax.checkpoint as ocp

        state = ocp.StandardCheckpointer().restore(args.buffer)
        d = p_base.shape[0]
        bufs = [v for v in jax.tree.leaves(state) if getattr(v, "ndim", 0) == 2 and v.shape[1] == d]
        if not bufs:
            raise SystemExit(f"no (chains, {d}) array in {args.buffer}: is it a PCD training checkpoint's state?")
        out["buffer"] = counts(bufs[0])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
