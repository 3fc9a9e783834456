"""Feature statistics and the Frechet distance between them (FID, the classifier distance), and KID; float64 numpy.

Every Frechet distance in `zoo` is one pipeline: features -> `feature_stats` (a `FeatureStats` Gaussian fit) ->
`frechet_distance`. Inception FID (`zoo.metrics.fid`) and the classifier distance
(`zoo.classifier.classifier_frechet_distance`) differ only in the feature extractor they hand to `stats_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Float

from .._errors import DataError


__all__ = ["FeatureStats", "feature_stats", "frechet_distance", "kid", "sqrtm_psd", "stats_of"]


def _as_matrix(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries.")
    return (a + a.T) / 2


def _psd_eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of a symmetric matrix, eigenvalues clipped at 0 (round-off makes PSD ones slightly < 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh(a)
    return np.clip(eigenvalues, 0.0, None), eigenvectors


def sqrtm_psd(a: Float[np.ndarray, "d d"]) -> Float[np.ndarray, "d d"]:
    """The symmetric PSD square root of a symmetric PSD matrix, in float64 (symmetric eigendecomposition)."""
    eigenvalues, eigenvectors = _psd_eigh(_as_matrix(a, "a"))
    return (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """`tr sqrt(sigma1 sigma2)` as `tr sqrt(sqrt(sigma1) sigma2 sqrt(sigma1))`: a symmetric PSD problem, so stable.

    The two matrices are similar (`sqrt(s1) s2 sqrt(s1) = sqrt(s1) (s1 s2) sqrt(s1)^-1` when `s1` is invertible), so
    their square roots have the same eigenvalues; the symmetric form needs no complex arithmetic and no `sqrtm`
    iteration, and stays correct for singular covariances (fewer samples than feature dimensions). With
    `sigma1 = V diag(w) V^T`, `sqrt(s1) s2 sqrt(s1) = V M V^T` for `M = diag(sqrt w) V^T s2 V diag(sqrt w)`, so one
    eigendecomposition and one eigenvalue-only solve suffice.
    """
    eigenvalues, eigenvectors = _psd_eigh(sigma1)
    half = eigenvectors * np.sqrt(eigenvalues)
    middle = half.T @ sigma2 @ half
    products = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)
    return float(np.sum(np.sqrt(products)))


class FeatureStats(eqx.Module):
    """A Gaussian fit of a feature set (a pytree): mean `mu` `(d,)` and covariance `sigma` `(d, d)`, float64, and
    `count`, the number of feature rows it was fitted to (`None` for a Gaussian given directly).

    Make one with `feature_stats(features)`; compare two with `frechet_distance`.
    """

    mu: Float[np.ndarray, " d"]
    sigma: Float[np.ndarray, "d d"]
    count: int | None = eqx.field(static=True)

    def __init__(self, mu: Float[np.ndarray, " d"], sigma: Float[np.ndarray, "d d"], count: int | None = None):
        mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            shapes = f"{mu.shape} and {sigma.shape}"
            raise ValueError(f"FeatureStats needs a mean (d,) and a covariance (d, d), got {shapes}.")
        self.mu, self.sigma = mu, sigma
        self.count = None if count is None else int(count)

    @property
    def dim(self) -> int:
        """The feature dimension `d`."""
        return self.mu.shape[0]


def feature_stats(features: Float[np.ndarray, "n d"]) -> FeatureStats:
    """The `FeatureStats` of `features` (one example per row): mean and unbiased (`n - 1`) covariance, in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"Need at least two feature rows of shape (n, d), got {features.shape}.")
    mu = features.mean(axis=0)
    centred = features - mu
    sigma = centred.T @ centred / (features.shape[0] - 1)
    return FeatureStats(mu, sigma, features.shape[0])


def stats_of(
    data: FeatureStats | Any,
    features: Callable[[Any], Float[np.ndarray, "n d"]],
    *,
    dim: int,
    source: str,
) -> FeatureStats:
    """`data` as `FeatureStats` in the feature space of `features` (the extractor, `dim` features per example).

    Precomputed `FeatureStats` pass through after a check that their dimension is `dim`; anything else (images)
    goes through `feature_stats(features(data))`. `source` names the extractor in the error message.
    """
    if isinstance(data, FeatureStats):
        if data.dim != dim:
            raise DataError(
                f"statistics of feature dimension {data.dim} do not come from this {source} (feature dimension "
                f"{dim}); compute them with the same {source}."
            )
        return data
    return feature_stats(features(data))


def frechet_distance(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
    """The squared Frechet (2-Wasserstein) distance between `N(mu_a, sigma_a)` and `N(mu_b, sigma_b)`, in float64:

    `|mu_a - mu_b|^2 + tr(sigma_a) + tr(sigma_b) - 2 tr sqrt(sigma_a sigma_b)`.

    This is FID when the statistics are of Inception pool3 features. Never negative (round-off is clipped).
    """
    if not isinstance(stats_a, FeatureStats) or not isinstance(stats_b, FeatureStats):
        raise TypeError(
            "frechet_distance compares two FeatureStats (from `feature_stats(features)`, or "
            f"`FeatureStats(mu, sigma)`), got {type(stats_a).__name__} and {type(stats_b).__name__}."
        )
    if stats_a.dim != stats_b.dim:
        raise DataError(
            f"The statistics have feature dimensions {stats_a.dim} and {stats_b.dim}: they come from different "
            "feature extractors. Compute both with the same one."
        )
    sigma_a, sigma_b = _as_matrix(stats_a.sigma, "sigma_a"), _as_matrix(stats_b.sigma, "sigma_b")
    diff = stats_a.mu - stats_b.mu
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * _trace_sqrt_product(sigma_a, sigma_b)
    return max(float(value), 0.0)


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic kernel `k(a, b) = (a.b / d + 1)^3`."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    off_xx = k_xx.sum() - np.trace(k_xx)
    off_yy = k_yy.sum() - np.trace(k_yy)
    return float((off_xx + off_yy) / (m * (m - 1)) - 2.0 * k_xy.mean())


def kid(
    features1: Float[np.ndarray, "n d"],
    features2: Float[np.ndarray, "m d"],
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance (Binkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel, over subsets.

    Each of `subsets` rounds draws `subset_size` rows (without replacement, at most the smaller set's size) from
    each feature set. Returns `(mean, std)` of the per-subset estimates. Deterministic given `seed`.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"Feature sets must be (n, d) with the same d, got {x.shape} and {y.shape}.")
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2 or subsets < 1:
        raise ValueError("KID needs at least two samples per set and at least one subset.")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        rows_x = rng.choice(x.shape[0], size, replace=False)
        rows_y = rng.choice(y.shape[0], size, replace=False)
        values.append(_polynomial_mmd2(x[rows_x], y[rows_y]))
    values = np.asarray(values)
    return float(values.mean()), float(values.std())
