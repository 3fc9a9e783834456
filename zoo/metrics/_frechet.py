"""Frechet distance of Gaussian fits (FID) and the kernel inception distance (KID), in float64 numpy."""

import numpy as np
from jaxtyping import Float


__all__ = ["sqrtm_psd", "gaussian_stats", "frechet_distance", "kid"]


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


def frechet_distance(
    mu1: Float[np.ndarray, " d"],
    sigma1: Float[np.ndarray, "d d"],
    mu2: Float[np.ndarray, " d"],
    sigma2: Float[np.ndarray, "d d"],
) -> float:
    """The squared Frechet (2-Wasserstein) distance between `N(mu1, sigma1)` and `N(mu2, sigma2)`, in float64:

    `|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr sqrt(sigma1 sigma2)`.

    This is FID when the Gaussians are fitted to Inception pool3 features. Never negative (round-off is clipped).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = _as_matrix(sigma1, "sigma1"), _as_matrix(sigma2, "sigma2")
    d = sigma1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma2.shape != (d, d):
        shapes = f"mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        raise ValueError(f"Shapes do not match: {shapes}.")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * _trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def gaussian_stats(features: Float[np.ndarray, "n d"]) -> tuple[Float[np.ndarray, " d"], Float[np.ndarray, "d d"]]:
    """Mean and unbiased (`n - 1`) covariance of `features` (one sample per row), in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"Need at least two feature rows of shape (n, d), got {features.shape}.")
    mu = features.mean(axis=0)
    centred = features - mu
    sigma = centred.T @ centred / (features.shape[0] - 1)
    return mu, sigma


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
