"""Measure a feature classifier (`classifier-mnist` / `classifier-cifar10`) and write its card.

    zoo train classifier/mnist --out checkpoints/classifier-mnist --name classifier-mnist   # train (resumable)
    python scripts/eval_classifier.py classifier-mnist                                      # measure + card

Measures test accuracy and loss on the full test split and on the fixed 1000-image subset
`zoo.classifier.evaluation_subset(10000)` (what tests/test_classifier.py checks), and the
Frechet distance between two real image sets in the classifier's features (the floor for
generative models); records them in the checkpoint (`zoo.annotate`) and writes the card body
to cards/<name>.md and the checkpoint's README.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

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


def card_body(name: str, meta: dict, metrics: list[dict]) -> str:
    cfg = meta["config"]
    tr = meta["training"]
    tc = tr["train_config"]
    m = {x["name"]: x for x in metrics}
    dataset = tr["dataset"]
    data_note = {
        "mnist": "MNIST (`zoo.data.load(\"mnist\")`, file `mnist.npz` of the data folder), 60,000 training images, "
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
ref = reference_stats(clf, "{dataset}", split="test")          # zoo.metrics.FeatureStats (mu, sigma, count)
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
{tr.get('train_time_all_segments_s', tr['wall_time_s'])} s in total (summed over resumed segments).

Command: `{tr['command']}`{_now(name, tr)}
"""


def _now(name: str, tr: dict) -> str:
    """For a checkpoint of the former scripts/train_classifier.py: what trains and measures it now."""
    if "scripts/train_classifier.py" not in str(tr.get("command", "")):
        return ""
    steps = tr["train_config"]["steps"]
    return (f"\n\nThat script is gone. The same recipe now (other PRNG keys, so not the same weights):"
            f" `zoo train {tr.get('preset', 'classifier/' + tr['dataset'])} --steps {steps} --workdir"
            f" runs/classifier/{name} --out checkpoints/{name} --name {name}`, then"
            f" `python scripts/eval_classifier.py {name}` for the metrics above and this card.")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="classifier-mnist or classifier-cifar10 (or another classifier's name)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default checkpoints/<name>)")
    args = p.parse_args(argv)
    command = "python scripts/eval_classifier.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    out = Path(args.checkpoint or ROOT / "checkpoints" / args.name)
    bundle = zoo.load_bundle(out)
    model = bundle.ema if bundle.ema is not None else bundle.model
    dataset = bundle.meta["training"]["dataset"]
    metrics = measure(model, dataset, command)
    body = card_body(args.name, dict(bundle.meta), metrics)
    zoo.annotate(out, metrics=metrics, card_body=body)
    (ROOT / "cards" / f"{args.name}.md").write_text(body)
    print(metrics)


if __name__ == "__main__":
    main()
