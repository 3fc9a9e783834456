"""Train (or resume, or fine-tune) an EBM preset with the shared driver and save a checkpoint.

    # ResNet EBM, PCD with GWG (resumable: re-run the same command after an interruption)
    python scripts/train_ebm.py ebm/resnet-binarized-mnist --workdir runs/ebm-resnet \
        --out checkpoints/ebm-gwg-binarized-mnist
    # Bernoulli RBM 784x500, PCD with block Gibbs
    python scripts/train_ebm.py ebm/rbm-mnist --workdir runs/rbm-mnist --out checkpoints/rbm-mnist
    # fine-tune a released checkpoint for 1000 more steps
    python scripts/train_ebm.py ebm/resnet-binarized-mnist --init-from ebm-gwg-binarized-mnist \
        --steps 1000 --workdir runs/ebm-ft --out runs/ebm-ft/model

`--steps` may be raised on resume; passing the step of the latest training checkpoint in the
workdir (or less) finishes immediately with those weights (e.g. to stop a run early and save it).
Measured metrics (AIS log-likelihood) are added afterwards by `scripts/eval_ebm.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import jax

import zoo
import zoo.data as zd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", help="ebm/resnet-binarized-mnist or ebm/rbm-mnist")
    p.add_argument("--workdir", required=True, help="metrics.jsonl + resumable training checkpoints")
    p.add_argument("--out", help="write a zoo checkpoint folder here when training ends")
    p.add_argument("--steps", type=int, help="override the preset's number of steps")
    p.add_argument("--init-from", help="fine-tune from this checkpoint (name or folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="model config overrides")
    args = p.parse_args(argv)

    preset = zoo.get_preset(args.preset)
    config = preset.config
    if args.set:
        config = dataclasses.replace(config, **{k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)})
    train = preset.train if args.steps is None else preset.train.replace(steps=args.steps)
    ema = None
    if args.init_from:
        bundle = zoo.load_bundle(args.init_from)
        model, ema = bundle.model, bundle.ema
    else:
        model = config.build(key=jax.random.key(args.seed))
    dataset = zd.load(preset.dataset, preset.split)
    data = model.prepare_data(dataset)

    def log(step: int, row: dict[str, float]) -> None:
        print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)

    result = zoo.train(model, data, train, key=jax.random.key(1000 + args.seed), workdir=args.workdir, ema=ema,
                       callback=log, progress=False)
    if args.out:
        command = "python scripts/train_ebm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        training = {**result.info, "dataset": preset.dataset, "preset": args.preset, "command": command}
        if args.init_from:
            training["fine_tuned_from"] = args.init_from
        name = Path(args.out).name
        zoo.save(result.model, args.out, ema=result.ema, name=name, training=training, overwrite=True,
                 card={"summary": preset.summary, "datasets": [preset.dataset], "license": "mit",
                       "tags": ["ebm", "gibbs-with-gradients", "binary"]})
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
