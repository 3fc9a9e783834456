"""Frechet distance between image sets in the feature space of a zoo classifier.

This is NOT Inception FID: the features are the penultimate layer of a small CNN trained
in this project (`classifier-mnist`, `classifier-cifar10`), so values are comparable only
with values computed with the same classifier checkpoint, and never with published FID.
For Inception FID use `zoo.metrics.fid`.

The pipeline is Inception FID's (`zoo.metrics`): features -> `FeatureStats` -> `frechet_distance`; only the
feature extractor differs.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float

from .._batch_map import batch_map
from .._errors import ZooError
from ..metrics import FeatureStats, frechet_distance, stats_of
from ._model import Classifier


__all__ = ["classifier_features", "classifier_frechet_distance", "reference_stats"]


def _resolve(classifier: Classifier | str) -> Classifier:
    if isinstance(classifier, str):
        from .._load import load

        classifier = load(classifier)  # type: ignore[assignment]
    if not isinstance(classifier, Classifier):
        raise ZooError(
            "expected a zoo classifier (e.g. zoo.load('classifier-mnist')) or its registered name, "
            f"got {type(classifier).__name__}"
        )
    return classifier


def _as_images(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == len(shape) and x.shape == shape:
        x = x[None]
    if x.ndim != 4 or x.shape[1:] != shape:
        raise ZooError(f"expected images (N, {', '.join(map(str, shape))}) NHWC for this classifier, got {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.size and (not np.all(np.isfinite(x)) or x.min() < -0.5 or x.max() > 1.5):
        raise ZooError(
            f"images must be in [0, 1] (float) or uint8; these span [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]"
            " or hold non-finite values. Convert model samples with `model.to_images(samples)`."
        )
    return np.clip(x, 0.0, 1.0)


def _features_batch(classifier: Classifier, x: Float[Array, "b h w c"]) -> Float[Array, "b d"]:
    return jax.vmap(classifier.features)(x)


def classifier_features(
    classifier: Classifier | str, images: np.ndarray, *, batch_size: int = 500
) -> Float[np.ndarray, "n d"]:
    """Penultimate-layer features ``(N, d)`` (float32) of `images` (N, H, W, C), float in [0, 1] or uint8.

    Float images are clipped to [0, 1] (values further than 0.5 outside are an error)."""
    clf = _resolve(classifier)
    x = _as_images(images, clf.config.image_shape)
    if batch_size < 1:
        raise ZooError(f"batch_size must be positive, got {batch_size}")
    # Fixed-size padded batches (one compilation); a set smaller than one batch is one batch of its own size.
    fn = eqx.Partial(_features_batch, clf)
    return batch_map(fn, x, batch_size=max(1, min(batch_size, len(x))), progress="classifier features",
                     compiler_options=dict(clf.compiler_options()))


def _stats(classifier: Classifier, images: np.ndarray | FeatureStats, batch_size: int) -> FeatureStats:
    """Images -> classifier features -> `FeatureStats` (precomputed stats pass through, checked)."""
    features = functools.partial(classifier_features, classifier, batch_size=batch_size)
    return stats_of(images, features, dim=classifier.config.feature_dim, source="classifier")


def reference_stats(
    classifier: Classifier | str,
    data: np.ndarray | str,
    *,
    split: str = "train",
    n: int | None = None,
    batch_size: int = 500,
) -> FeatureStats:
    """Feature statistics (`zoo.metrics.FeatureStats`) of a reference image set, for repeated comparisons.

    `data` is an image array (N, H, W, C) or a `zoo.data` name (``"mnist"``, ``"cifar10"``)
    whose `split` is loaded. `n` keeps a fixed random subset of `n` images (the first `n`
    of ``numpy.random.default_rng(0).permutation(N)``; some splits are sorted by class)."""
    clf = _resolve(classifier)
    if isinstance(data, str):
        from .. import data as zdata

        images = zdata.load(data, split).x
    else:
        images = np.asarray(data)
    if n is not None:
        if n > len(images):
            raise ZooError(f"asked for n={n} reference images but only {len(images)} are available")
        images = images[np.random.default_rng(0).permutation(len(images))[:n]]
    return _stats(clf, images, batch_size)


def classifier_frechet_distance(
    classifier: Classifier | str,
    images_a: np.ndarray | FeatureStats,
    images_b: np.ndarray | FeatureStats,
    *,
    batch_size: int = 500,
) -> float:
    """Squared Frechet distance between Gaussian fits of the classifier features of two image sets.

    `classifier` is a loaded `Classifier` or a registered name (``"classifier-mnist"``,
    ``"classifier-cifar10"``). Each image set is (N, H, W, C) float in [0, 1] or uint8, or
    precomputed `FeatureStats` (e.g. from `reference_stats`). Computed in float64: classifier features ->
    `zoo.metrics.feature_stats` -> `zoo.metrics.frechet_distance`, as Inception FID.

    Not Inception FID and not comparable to published FID; like FID it is biased upwards
    for small sets, so compare values only at equal set sizes and with the same checkpoint.
    """
    clf = _resolve(classifier)
    return frechet_distance(_stats(clf, images_a, batch_size), _stats(clf, images_b, batch_size))
