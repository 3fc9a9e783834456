"""Train a binary-latent VAE (zoo.dvae) from a preset, resumably, and optionally save a checkpoint.

    python scripts/train_dvae.py --preset dvae/rodeo-binarized-mnist --steps 20000 \
        --workdir runs/dvae-rodeo-binarized-mnist --save checkpoints/dvae-rodeo-binarized-mnist

Re-running the same command resumes from the last checkpoint in --workdir (``--steps`` may grow).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import jax

import zoo
import zoo.data as zd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="dvae/rodeo-binarized-mnist")
    p.add_argument("--steps", type=int, default=None, help="total steps (default: the preset's)")
    p.add_argument("--workdir", required=True, help="metrics.jsonl + resumable training checkpoints")
    p.add_argument("--save", default=None, help="write a zoo checkpoint here when training ends")
    p.add_argument("--name", default=None, help="model name recorded in the checkpoint")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for initialisation and sampling")
    p.add_argument("--checkpoint-every", type=int, default=None)
    args = p.parse_args(argv)

    command = "python scripts/train_dvae.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    preset = zoo.get_preset(args.preset)
    train_cfg = preset.train
    if args.steps is not None:
        train_cfg = train_cfg.replace(steps=args.steps)
    if args.checkpoint_every is not None:
        train_cfg = train_cfg.replace(checkpoint_every=args.checkpoint_every)
    data = zd.load(preset.dataset, preset.split).x
    key_init, key_train = jax.random.split(jax.random.key(args.seed))
    model = preset.config.build(key=key_init)
    print(f"[train_dvae] {args.preset}: {zoo.num_params(model)} parameters, {len(data)} examples, "
          f"{train_cfg.steps} steps, {zoo._train.hardware()}", flush=True)

    def log(step: int, row: dict) -> None:
        keep = {k: round(v, 4) for k, v in row.items() if k in ("loss", "grad_sq", "steps_per_s")}
        print(f"[train_dvae] step {step} {json.dumps(keep)}", flush=True)

    t0 = time.time()
    result = zoo.train(model, data, train_cfg, key=key_train, workdir=args.workdir, progress=False, callback=log)
    print(f"[train_dvae] done: {result.step} steps in {time.time() - t0:.0f}s this run", flush=True)
    if args.save:
        info = dict(result.info, dataset=preset.dataset, preset=args.preset, command=command)
        info["wall_time_s_total"] = _total_wall_time(args.workdir)
        zoo.save(
            result.model,
            args.save,
            ema=result.ema,
            name=args.name or args.save.rstrip("/").split("/")[-1],
            training=info,
            card={"license": "MIT", "tags": ["vae", "binary-latent", "rodeo", "gradient-estimation"],
                  "summary": preset.summary, "datasets": [preset.dataset]},
            overwrite=True,
        )
        print(f"[train_dvae] saved {args.save}", flush=True)
    return 0


def _total_wall_time(workdir: str) -> float:
    """Seconds of training summed over every (resumed) run, from metrics.jsonl's steps_per_s
    (an estimate: steps redone after an interruption count again)."""
    total = 0.0
    try:
        with open(f"{workdir}/metrics.jsonl") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError:
        return total
    prev = 0
    for row in rows:
        step = int(row["step"])
        n = step - prev if step > prev else min(step, 100)  # a resumed run restarts below prev
        total += n / max(row.get("steps_per_s", 1.0), 1e-9)
        prev = step
    return round(total, 1)


if __name__ == "__main__":
    raise SystemExit(main())
