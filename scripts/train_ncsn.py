"""Train (resumably) or export an NCSN preset.

    # train; re-run the same command after an interruption to resume (only --steps may grow)
    nice -n 10 nohup python scripts/train_ncsn.py --preset ncsn/mnist --workdir runs/ncsn-mnist --steps 20000 &

    # export the latest workdir checkpoint (raw + EMA weights) as a checkpoint folder
    python scripts/train_ncsn.py --preset ncsn/mnist --workdir runs/ncsn-mnist --export checkpoints/ncsn-mnist

    # fine-tune a loaded checkpoint
    python scripts/train_ncsn.py --preset ncsn/mnist --workdir runs/ft --init checkpoints/ncsn-mnist --steps 1000

`--export` trains nothing: it restores the newest Orbax checkpoint in the workdir (the
driver resumes at that step and runs zero steps) and writes it with `zoo.save`; the card
body and measured metrics are added later by `scripts/bench_ncsn.py card ...`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import jax

import zoo
import zoo.data
from zoo._registry import get_preset


def latest_step(workdir: Path) -> int | None:
    d = workdir / "checkpoints"
    steps = [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.exists() else []
    return max(steps) if steps else None


def parse_sampler(text: str) -> dict:
    """'steps_per_level=100,sampling_rule=v1' -> {'steps_per_level': 100, 'sampling_rule': 'v1'}."""
    out: dict = {}
    for item in filter(None, text.split(",")):
        k, v = item.split("=", 1)
        k, v = k.strip(), v.strip()
        if k in ("steps_per_level",):
            out[k] = int(v)
        elif k == "step_lr":
            out[k] = float(v)
        elif k == "denoise":
            out[k] = v.lower() in ("1", "true", "yes")
        else:
            out[k] = v
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, help="e.g. ncsn/mnist, ncsn/cifar10, ncsn/cifar10-paper")
    p.add_argument("--workdir", required=True)
    p.add_argument("--steps", type=int, default=None, help="total steps (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="model init / noise seed")
    p.add_argument("--init", default=None, help="fine-tune from this checkpoint (path or model name)")
    p.add_argument("--export", default=None, help="write the latest workdir state as a checkpoint folder here")
    p.add_argument("--name", default=None, help="model name recorded in the exported checkpoint")
    p.add_argument("--sampler", default=None,
                   help="sampler settings to store/use, e.g. 'steps_per_level=100,sampling_rule=v1,step_lr=2e-5'")
    p.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                   help="on CPU, train data-parallel over N devices (as `zoo train --cpu-devices`)")
    args = p.parse_args(argv)
    if args.cpu_devices is not None:
        from zoo._cli import _split_cpu

        _split_cpu(args.cpu_devices)

    zoo.list_models()  # import the families
    preset = get_preset(args.preset)
    workdir = Path(args.workdir)
    train_cfg = preset.train
    if args.export:
        step = latest_step(workdir)
        if step is None:
            sys.exit(f"no checkpoint in {workdir}/checkpoints to export")
        train_cfg = train_cfg.replace(steps=step)
    elif args.steps is not None:
        train_cfg = train_cfg.replace(steps=args.steps)

    data = zoo.data.load(preset.dataset, preset.split).x
    key = jax.random.key(args.seed)
    kinit, ktrain = jax.random.split(key)
    ema = None
    if args.init:
        bundle = zoo.load_bundle(args.init)
        model, ema = bundle.model, bundle.ema
    else:
        model = preset.config.build(key=kinit)
    print(f"{args.preset}: {zoo.num_params(model):,} params, {len(data)} examples {data.shape[1:]}, "
          f"{train_cfg.steps} steps of batch {train_cfg.batch_size}, devices {jax.devices()}", flush=True)

    t0 = time.time()
    result = zoo.train(model, data, train_cfg, key=ktrain, workdir=workdir, ema=ema,
                       callback=lambda s, row: print(json.dumps(row), flush=True))
    print(f"done: step {result.step} in {time.time() - t0:.0f} s", flush=True)

    if args.export:
        # Wall time of the whole run: the sum of the logged intervals in metrics.jsonl.
        rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
        # a resumed run logs again the steps after its last checkpoint: keep the run that got through
        rows = sorted({r["step"]: r for r in rows if r["step"] <= step}.values(), key=lambda r: r["step"])
        cfg = train_cfg
        wall = sum(cfg.log_every / r["steps_per_s"] for r in rows if r.get("steps_per_s"))
        training = {
            "steps": step,
            "batch_size": cfg.batch_size,
            "dataset": preset.dataset,
            "preset": args.preset,
            "hardware": zoo._train.hardware() + " (shared with other jobs)",
            "wall_time_s": round(wall, 1),
            "final_train_loss": rows[-1]["loss"] if rows else None,
            "train_config": cfg.to_dict(),
            "command": f"python scripts/train_ncsn.py --preset {args.preset} --workdir {args.workdir} "
                       f"--steps {step}",
            "export_command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        }
        model_out, ema_out = result.model, result.ema
        if args.sampler:
            changes = parse_sampler(args.sampler)
            model_out = model_out.with_sampler(**changes)
            ema_out = ema_out.with_sampler(**changes) if ema_out is not None else None
        zoo.save(model_out, args.export, ema=ema_out, name=args.name or Path(args.export).name,
                 training=training, overwrite=True,
                 card={"license": "mit", "tags": ["score-based", "ncsn", "jax", "equinox"],
                       "summary": preset.summary, "datasets": [preset.dataset]})
        print(f"exported step {step} to {args.export}")


if __name__ == "__main__":
    main()
