"""Train (resumably) and bundle the feature classifiers `classifier-mnist` / `classifier-cifar10`.

    nice -n 10 python scripts/train_classifier.py classifier-mnist
    nice -n 10 python scripts/train_classifier.py classifier-cifar10 --steps 3000

Trains the registered preset on the data set's train split with `zoo.fit` (workdir
runs/classifier/<name>: re-run the same command after an interruption to resume),
measures test accuracy and loss on the full test split and on the fixed 1000-image
subset `zoo.classifier.evaluation_subset(10000)` (what tests/test_classifier.py checks),
then writes checkpoints/<name>/ and cards/<name>.md. `--eval-only` re-measures an existing
checkpoint and re-annotates it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax

import zoo
import zoo.data as zdata
from zoo.classifier import (
    Classifier,
    classifier_frechet_distance,
    evaluation_subset,
    reference_stats,
    training_arrays,
)


ROOT = Path(__file__).resolve().parent.parent


def measure(model: Classifier, dataset: str, command: str) -> list[dict]:
    test = zdata.load(dataset, "test")
    x, y = training_arrays(test)
    full = model.evaluate((x, y))
    idx = evaluation_subset(len(x))
    sub = model.evaluate((x[idx], y[idx]))
    # A floor for generative models: two real sets of 10,000 images (train subset vs test).
    ref = reference_stats(model, x)
    floor = classifier_frechet_distance(model, reference_stats(model, dataset, split="train", n=len(x)), ref)
    return [
        {"name": "test_accuracy", "value": round(full["accuracy"], 5), "dataset": dataset, "split": "test",
         "command": command},
        {"name": "test_loss", "value": round(full["loss"], 5), "dataset": dataset, "split": "test",
         "command": command},
        {"name": "test_accuracy_subset1000", "value": round(sub["accuracy"], 5), "dataset": dataset,
         "split": "test[evaluation_subset(10000, 1000, seed=0)]", "command": command},
        {"name": "classifier_frechet_train10k_vs_test", "value": round(floor, 4), "dataset": dataset,
         "split": "train[first 10000 of default_rng(0).permutation] vs test", "command": command},
    ]


def _logged_train_time(path: Path, log_every: int) -> float:
    """Seconds spent in training steps over every (resumed) segment, from metrics.jsonl:
    the sum of (steps since the previous row) / steps_per_s; excludes compilation of the first step
    only approximately (it falls in the first row of each segment) and evaluation."""
    total, prev = 0.0, 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        steps = row["step"] - prev if row["step"] > prev else log_every  # a resumed segment re-logs
        total += steps / row["steps_per_s"]
        prev = row["step"]
    return round(total, 1)


def card_body(name: str, meta: dict, metrics: list[dict]) -> str:
    cfg = meta["config"]
    tr = meta["training"]
    tc = tr["train_config"]
    m = {x["name"]: x for x in metrics}
    dataset = tr["dataset"]
    data_note = {
        "mnist": "MNIST (`zoo.data.load(\"mnist\")`, /work/shared/data/mnist.npz), 60,000 training images, "
        "evaluated on the 10,000 test images.",
        "cifar10": "CIFAR-10 **re-encoded as JPEG** (`zoo.data.load(\"cifar10\")`, from "
        "`cifar10_jpeg.tar.gz`): the lossy re-encoding shifts pixel statistics slightly from the original "
        "CIFAR-10 binaries, so accuracy is measured on the JPEG test set (10,000 images) and is not exactly "
        "comparable to numbers on the original data.",
    }[dataset]
    smooth = f" with label smoothing {cfg['label_smoothing']}" if cfg["label_smoothing"] else ""
    stages = ", ".join(str(c) for c in cfg["channels"])
    norm = " + GroupNorm" if cfg["group_norm"] else ""
    aug = "none"
    if cfg["augment"]:
        aug = "random horizontal flips"
        if cfg["augment_pad"]:
            aug += f" and random shifts of up to {cfg['augment_pad']} pixels (zero padding)"
    ema = ""
    if tc["ema_decay"]:
        ema = f", EMA decay {tc['ema_decay']} (the bundled default weights are the EMA weights)"
    return f"""# {name}

A small CNN image classifier trained in this project. Its purpose is **evaluation**: the
penultimate-layer features (`model.features(x)`, {cfg['feature_dim']}-dimensional) define a feature space for a
Frechet distance between image sets, `zoo.classifier.classifier_frechet_distance`.

> **Warning: this is not Inception FID.** The Frechet distance in these features is computed with a
> small classifier trained here, not with the Inception-v3 network of Heusel et al. Its values are
> comparable only with values computed with this same checkpoint (and equal set sizes), and are
> **not comparable to published FID numbers**. For Inception FID use `zoo.metrics.fid`.

Classifiers do not sample: `zoo.sample` on this model raises `zoo.ZooError`.

## Usage

```python
import zoo
from zoo.classifier import classifier_frechet_distance, reference_stats
clf = zoo.load("{name}")
ref = reference_stats(clf, "{dataset}", split="test")          # ClassifierStats (mu, sigma, count)
d = classifier_frechet_distance(clf, images, ref)             # images: (N, H, W, C) in [0, 1] or uint8
```

## Test accuracy

| metric | value | split | command |
| --- | --- | --- | --- |
| accuracy | {m['test_accuracy']['value']:.4f} | test (10,000) | `{m['test_accuracy']['command']}` |
| cross-entropy | {m['test_loss']['value']:.4f} | test (10,000) | `{m['test_loss']['command']}` |
| accuracy | {m['test_accuracy_subset1000']['value']:.4f} | 1,000-image subset `evaluation_subset(10000)` \
| `{m['test_accuracy_subset1000']['command']}` |

The subset figure is what `tests/test_classifier.py` reproduces after loading the bundled checkpoint.

Reference point for the Frechet distance in this feature space: two *real* sets of 10,000 images
(10,000 training images, `reference_stats(clf, "{dataset}", split="train", n=10000)`, against the
10,000 test images) are at **{m['classifier_frechet_train10k_vs_test']['value']:.4g}** (command:
`{m['classifier_frechet_train10k_vs_test']['command']}`). A generative model's samples scored against the test set
(10,000 samples) can be read against this floor.

## Architecture

Input (H, W, C) = {tuple(cfg['image_shape'])} in [0, 1], rescaled to [-1, 1]. {len(cfg['channels'])} stages of
{stages} channels, each {cfg['convs_per_stage']} x (3x3 convolution{norm} + ReLU) then 2x2 max pooling; flatten;
dense {cfg['feature_dim']} + ReLU (**the feature layer**); linear to {cfg['num_classes']} logits.
{meta['num_params']:,} parameters. Config: `zoo.classifier.ClassifierConfig` (preset `classifier/{dataset}`).

## Data

{data_note}

## Training

Cross-entropy{smooth}, data augmentation: {aug}.
{tc['steps']} steps of batch {tc['batch_size']}, {tc['optimizer']} (lr {tc['learning_rate']}, linear warm-up
{tc['warmup_steps']} steps){ema}, with the shared driver `zoo.fit`.
Hardware: {tr['hardware']}, shared with other jobs and run under `nice`; time in training steps
{tr.get('train_time_all_segments_s', tr['wall_time_s'])} s in total (summed over resumed segments from the run's
metrics.jsonl).

Command: `{tr['command']}`
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=["classifier-mnist", "classifier-cifar10"])
    p.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    p.add_argument("--workdir", default=None, help="default runs/classifier/<name>")
    p.add_argument("--out", default=None, help="default checkpoints/<name>")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-only", action="store_true", help="re-measure and re-annotate an existing checkpoint")
    args = p.parse_args(argv)

    entry = zoo.model_info(args.name)
    preset = zoo.get_preset(entry.preset)
    out = Path(args.out or ROOT / "checkpoints" / args.name)
    card_path = ROOT / "cards" / f"{args.name}.md"
    eval_command = f"python scripts/train_classifier.py {args.name} --eval-only"

    if args.eval_only:
        bundle = zoo.load_bundle(out)
        model = bundle.ema if bundle.ema is not None else bundle.model
        metrics = measure(model, preset.dataset, eval_command)
        meta = dict(bundle.meta)
        log = Path(args.workdir or ROOT / "runs" / "classifier" / args.name) / "metrics.jsonl"
        training = {}
        if "train_time_all_segments_s" not in meta["training"] and log.is_file():
            log_every = meta["training"]["train_config"]["log_every"]
            training = {"train_time_all_segments_s": _logged_train_time(log, log_every)}
            meta["training"] = {**meta["training"], **training}
        body = card_body(args.name, meta, metrics)
        zoo.annotate(out, metrics=metrics, training=training, card_body=body)
        card_path.write_text(body)
        print(metrics)
        return

    train_config = preset.train if args.steps is None else preset.train.replace(steps=args.steps)
    command = "nice -n 10 python scripts/train_classifier.py " + " ".join(sys.argv[1:] if argv is None else argv)
    data = training_arrays(zdata.load(preset.dataset, "train"))
    key = jax.random.key(args.seed)
    kinit, ktrain = jax.random.split(key)
    model = preset.config.build(key=kinit)
    workdir = Path(args.workdir or ROOT / "runs" / "classifier" / args.name)
    print(f"training {args.name}: {zoo.num_params(model):,} parameters, {train_config.steps} steps", flush=True)
    t0 = time.time()
    # A separate copy of the initial weights seeds the EMA: zoo's EMA init (`jnp.asarray`) aliases
    # the parameter buffers, which the driver's buffer donation then rejects ("donate the same buffer twice").
    ema = jax.tree.map(lambda a: a.copy() if eqx.is_array(a) else a, model) if train_config.ema_decay else None
    result = zoo.fit(
        model, data, train_config, key=ktrain, workdir=workdir, progress=False, ema=ema,
        callback=lambda step, row: print(
            f"step {step}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} ({row['steps_per_s']:.2f} steps/s)",
            flush=True,
        ),
    )
    print(f"trained in {time.time() - t0:.0f} s", flush=True)
    final = result.ema if result.ema is not None else result.model
    metrics = measure(final, preset.dataset, command)
    if result.ema is not None:
        raw = measure(result.model, preset.dataset, command)
        print("raw weights:", raw, flush=True)
    print("bundled weights:", metrics, flush=True)
    training = dict(result.info, dataset=preset.dataset, split="train", command=command,
                    train_time_all_segments_s=_logged_train_time(workdir / "metrics.jsonl", train_config.log_every))
    meta = {"config": preset.config.to_dict(), "training": training, "num_params": zoo.num_params(final)}
    body = card_body(args.name, meta, metrics)
    zoo.save(
        result.model, out, ema=result.ema, name=args.name, training=training, metrics=metrics,
        card={"license": "mit", "tags": ["classifier", "evaluation", preset.dataset],
              "summary": entry.summary, "datasets": [preset.dataset]},
        card_body=body, overwrite=True,
    )
    card_path.parent.mkdir(exist_ok=True)
    card_path.write_text(body)
    print(f"saved {out} ({sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.2f} MB)", flush=True)


if __name__ == "__main__":
    main()
