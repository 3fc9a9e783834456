"""Frechet distance between image sets in the feature space of a zoo classifier.

This is NOT Inception FID: the features are the penultimate layer of a small CNN trained
in this project (`classifier-mnist`, `classifier-cifar10`), so values are comparable only
with values computed with the same classifier checkpoint, and never with published FID.
For Inception FID use `zoo.metrics.fid`.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Float

from .._errors import ZooError
from ..metrics import frechet_distance, gaussian_stats
from ._model import Classifier


__all__ = ["ClassifierStats", "classifier_features", "classifier_frechet_distance", "reference_stats"]


class ClassifierStats(NamedTuple):
    """Gaussian fit of classifier features: mean ``(d,)``, covariance ``(d, d)`` (float64), from ``count`` images."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


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


@eqx.filter_jit
def _features_batch(classifier: Classifier, x: Float[np.ndarray, "b h w c"]) -> jax.Array:
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
    out = np.empty((len(x), clf.config.feature_dim), np.float32)
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        if len(xb) < batch_size and len(x) > batch_size:  # pad the last batch: one compiled shape
            pad = np.concatenate([xb, np.zeros((batch_size - len(xb), *xb.shape[1:]), xb.dtype)])
            out[i:] = np.asarray(_features_batch(clf, pad))[: len(xb)]
        else:
            out[i : i + len(xb)] = np.asarray(_features_batch(clf, xb))
    return out


def _stats(classifier: Classifier, images: np.ndarray | ClassifierStats, batch_size: int) -> ClassifierStats:
    if isinstance(images, ClassifierStats):
        if images.mu.shape != (classifier.config.feature_dim,):
            raise ZooError(
                f"stats of dimension {images.mu.shape} do not come from this classifier "
                f"(feature dimension {classifier.config.feature_dim})"
            )
        return images
    features = classifier_features(classifier, images, batch_size=batch_size)
    mu, sigma = gaussian_stats(features)
    return ClassifierStats(mu, sigma, len(features))


def reference_stats(
    classifier: Classifier | str,
    data: np.ndarray | str,
    *,
    split: str = "train",
    n: int | None = None,
    batch_size: int = 500,
) -> ClassifierStats:
    """Feature statistics of a reference image set, for repeated comparisons.

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
    images_a: np.ndarray | ClassifierStats,
    images_b: np.ndarray | ClassifierStats,
    *,
    batch_size: int = 500,
) -> float:
    """Squared Frechet distance between Gaussian fits of the classifier features of two image sets.

    `classifier` is a loaded `Classifier` or a registered name (``"classifier-mnist"``,
    ``"classifier-cifar10"``). Each image set is (N, H, W, C) float in [0, 1] or uint8, or
    precomputed `ClassifierStats` (e.g. from `reference_stats`). Computed in float64.

    Not Inception FID and not comparable to published FID; like FID it is biased upwards
    for small sets, so compare values only at equal set sizes and with the same checkpoint.
    """
    clf = _resolve(classifier)
    a = _stats(clf, images_a, batch_size)
    b = _stats(clf, images_b, batch_size)
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
