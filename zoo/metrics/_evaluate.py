"""FID / KID of a zoo image model against a data set split: what `zoo evaluate --metric fid` runs."""

from __future__ import annotations

import sys
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._errors import ZooError
from ._fid import FIDNetwork, fid_features, reference_stats
from ._frechet import feature_stats, frechet_distance, kid


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def model_images(model: Any, n: int, *, key: Any, batch_size: int = 100) -> np.ndarray:
    """`n` samples of an image model as uint8 NHWC, drawn `batch_size` at a time (one compilation)."""
    from .._conv import jit_options
    from .._progress import tqdm_bar

    sample = eqx.filter_jit(lambda m, k: m.sample(batch_size, key=k), compiler_options=jit_options(model))
    out, bar = [], tqdm_bar(n, desc="sampling")
    for i in range(-(-n // batch_size)):
        x = model.to_images(np.asarray(sample(model, jax.random.fold_in(key, i))))
        out.append(_to_uint8(x))
        bar.update(x.shape[0])
    bar.close()
    images = np.concatenate(out)[:n]
    if images.ndim != 4:
        raise ZooError(f"{type(model).__name__} does not produce images; FID needs an image model")
    return images


def evaluate_images(
    model: Any,
    dataset: Any,
    *,
    n: int | None,
    key: Any,
    metrics: list[str],
    batch_size: int = 100,
    network: FIDNetwork | None = None,
    reference_n: int | None = None,
) -> dict[str, float]:
    """FID (and/or KID) between `n` samples (default 1000) of `model` and `dataset` (a `zoo.data.Dataset`),
    with the data set's Inception statistics cached by name and split. Fewer samples than the
    standard 50,000 bias FID upwards: report `n` with the number (``fid_n`` below). `reference_n`
    limits the reference to a fixed random subset of the split (``fid_reference_n``)."""
    n = 1000 if n is None else n
    network = network if network is not None else FIDNetwork.load()
    reference = _to_uint8(dataset.x)
    name = f"{dataset.name}-{dataset.split}".replace(":", "_")
    if reference_n is not None and reference_n < len(reference):
        # A fixed random subset (some splits are stored sorted by class).
        reference = reference[np.random.default_rng(0).permutation(len(reference))[:reference_n]]
        name += f"-n{reference_n}"
    print(f"reference statistics for {name} ({len(reference)} images, cached after the first time)", file=sys.stderr)
    ref = reference_stats(name, reference, network=network)
    samples = model_images(model, n, key=key, batch_size=min(batch_size, n))
    feats = fid_features(samples, network=network)
    out: dict[str, float] = {}
    if "fid" in metrics:
        out["fid"] = frechet_distance(feature_stats(feats), ref)
        out["fid_n"] = float(n)
        out["fid_reference_n"] = float(len(reference))
    if "kid" in metrics:
        ref_feats = fid_features(reference[: max(n, 1000)], network=network)
        mean, _ = kid(feats, ref_feats, subset_size=min(1000, n, len(ref_feats)))
        out["kid"] = float(mean)
    return out
