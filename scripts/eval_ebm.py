"""AIS test log-likelihood and a sample grid for an EBM checkpoint (RBM or ResNet EBM).

    python scripts/eval_ebm.py checkpoints/rbm-mnist --ais-steps 20000 --ais-chains 100 --annotate
    python scripts/eval_ebm.py checkpoints/rbm-mnist --grid cards/rbm-mnist.png --no-ais
    python scripts/eval_ebm.py checkpoints/ebm-gwg-binarized-mnist --ais-steps 3000 --annotate

AIS runs GWG transitions from the model's data-mean Bernoulli base to the model (linear
schedule); the reported log-likelihood is the mean over the split of ``f(x) - log Z``.
`--annotate` records the figures (with this command) in the checkpoint's config.json and
card; `--grid` writes a PNG of `--grid-n` samples (GWG chains for the ResNet EBM, block
Gibbs for the RBM, from the base distribution, `--grid-steps` steps).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np

import zoo
import zoo.data as zd
from zoo._images import save_grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint folder or registered name")
    p.add_argument("--dataset", default="binarized_mnist")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, help="evaluate on the first N examples only")
    p.add_argument("--ais-steps", type=int)
    p.add_argument("--ais-chains", type=int)
    p.add_argument("--no-ais", action="store_true")
    p.add_argument("--weights", choices=["ema", "raw"], default=None)
    p.add_argument("--annotate", action="store_true", help="record the metrics in the checkpoint")
    p.add_argument("--grid", help="write a sample grid PNG here")
    p.add_argument("--grid-n", type=int, default=64)
    p.add_argument("--grid-steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    command = "python scripts/eval_ebm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    model = zoo.load(args.checkpoint, weights=args.weights)
    key = jax.random.key(args.seed)
    if not args.no_ais:
        data = zd.load(args.dataset, args.split).x
        if args.limit:
            data = data[: args.limit]
        t = time.perf_counter()
        out = model.evaluate(np.asarray(data), key=key, num_steps=args.ais_steps, num_chains=args.ais_chains)
        out["wall_time_s"] = round(time.perf_counter() - t, 1)
        print(json.dumps(out, indent=2), flush=True)
        if args.annotate:
            steps, chains = int(out["num_steps"]), int(out["num_chains"])
            common = {"dataset": args.dataset, "split": args.split, "command": command}
            metrics = [
                {"name": "ais_log_likelihood", "value": round(out["log_likelihood"], 3), "unit": "nats",
                 "notes": f"AIS, GWG transitions, {steps} temperatures, {chains} chains", **common},
                {"name": "ais_log_z", "value": round(out["log_z"], 3), **common},
                {"name": "ais_log_z_bootstrap_std", "value": round(out["log_z_bootstrap_std"], 3), **common},
                {"name": "ais_log_w_std", "value": round(out["log_w_std"], 3), **common},
            ]
            zoo.annotate(args.checkpoint, metrics=metrics, card_body=_card_body(args.checkpoint))
            print(f"annotated {args.checkpoint}")
    if args.grid:
        k = jax.random.fold_in(key, 1)
        samples = model.sample(args.grid_n, key=k, num_steps=args.grid_steps)
        save_grid(model.to_images(samples), args.grid)
        print(f"wrote {args.grid}")
    return 0


def _card_body(checkpoint: str) -> str | None:
    """The hand-written card body ``cards/<name>.md``, when present."""
    path = Path(__file__).resolve().parent.parent / "cards" / f"{Path(checkpoint).name}.md"
    return path.read_text() if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
