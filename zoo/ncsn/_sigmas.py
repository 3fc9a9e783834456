"""Noise ladders: the NCSN (v1) geometric sequence and the NCSNv2 rules.

* v1 (Song & Ermon 2019): ``sigma_i = exp(linspace(log sigma_1, log sigma_L, L))``,
  index 0 is the largest noise level.
* v2 (Song & Ermon 2020, "Improved techniques"):
  - Technique 1: ``sigma_1`` = the maximal Euclidean distance between training points.
  - Technique 2: a geometric ratio ``gamma`` with
    ``Phi(sqrt(2D)(gamma - 1) + 3 gamma) - Phi(sqrt(2D)(gamma - 1) - 3 gamma) ~= 0.5``,
    so ``L = 1 + ceil(log(sigma_1 / sigma_L) / log gamma)``.
  - Technique 4: the Langevin step ``eps`` that makes the last-level variance match,
    ``(1 - eps/s^2)^(2T) (gamma^2 - 2eps/(s^2 - s^2(1 - eps/s^2)^2)) + 2eps/(s^2 - s^2(1 - eps/s^2)^2) = 1``
    with ``s = sigma_L``.
"""

from __future__ import annotations

import math

import numpy as np

from ..samplers._annealed_langevin import v2_step_size as v2_step_size


def geometric_sigmas(sigma_begin: float, sigma_end: float, num_scales: int) -> np.ndarray:
    """``exp(linspace(log sigma_begin, log sigma_end, num_scales))`` as float32, largest first."""
    if not (sigma_begin > sigma_end > 0) or num_scales < 2:
        raise ValueError(
            f"need sigma_begin > sigma_end > 0 and num_scales >= 2, got {sigma_begin}, {sigma_end}, {num_scales}"
        )
    return np.exp(np.linspace(np.log(sigma_begin), np.log(sigma_end), num_scales)).astype(np.float32)


def max_pairwise_distance(x: np.ndarray, *, max_points: int | None = 10000, seed: int = 0) -> float:
    """Technique 1: the largest Euclidean distance between two rows of `x` (flattened);
    on a random subset of `max_points` rows when `x` is larger (a lower bound)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if max_points is not None and len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
    sq = np.sum(x * x, axis=1)
    best = 0.0
    for i in range(0, len(x), 1024):
        d2 = sq[i : i + 1024, None] + sq[None, :] - 2.0 * x[i : i + 1024] @ x.T
        best = max(best, float(d2.max()))
    return math.sqrt(max(best, 0.0))


def _phi(t: float) -> float:
    return 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))


def v2_gamma(dim: int) -> float:
    """Technique 2: the ratio ``gamma = sigma_{i-1} / sigma_i`` for data of dimension `dim`."""

    def f(g: float) -> float:
        a = math.sqrt(2.0 * dim) * (g - 1.0)
        return _phi(a + 3.0 * g) - _phi(a - 3.0 * g) - 0.5

    lo, hi = 1.0 + 1e-9, 10.0  # f(lo) > 0 > f(hi): f decreases in gamma
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def v2_num_scales(sigma_begin: float, sigma_end: float, dim: int) -> int:
    """Technique 2: the number of geometric levels from `sigma_begin` down to `sigma_end`."""
    g = v2_gamma(dim)
    return 1 + math.ceil(math.log(sigma_begin / sigma_end) / math.log(g))


def v2_sigmas(data: np.ndarray, sigma_end: float = 0.01) -> np.ndarray:
    """The v2 ladder for `data` (N, ...): sigma_1 from Technique 1, L from Technique 2."""
    dim = int(np.prod(np.shape(data)[1:]))
    sigma_begin = max_pairwise_distance(data)
    return geometric_sigmas(sigma_begin, sigma_end, v2_num_scales(sigma_begin, sigma_end, dim))
