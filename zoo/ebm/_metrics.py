"""Sampler-quality metrics: kernel MMD between sample sets and effective sample size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def hamming_kernel(x: Float[Array, "n D"], y: Float[Array, "m D"]) -> Float[Array, "n m"]:
    """``exp(-(Hamming distance) / D)`` (the paper's kernel for binary MMD)."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)
    d = x.shape[1]
    # Hamming distance of binary vectors: |x| + |y| - 2 x.y
    ham = jnp.sum(x, 1)[:, None] + jnp.sum(y, 1)[None, :] - 2 * x @ y.T
    return jnp.exp(-ham / d)


@jax.jit
def mmd(x: Float[Array, "n D"], y: Float[Array, "m D"]) -> Float[Array, ""]:
    """Unbiased estimate of the squared MMD between the distributions of `x` and `y`
    under `hamming_kernel` (can be slightly negative when they agree)."""
    n, m = x.shape[0], y.shape[0]
    kxx = hamming_kernel(x, x)
    kyy = hamming_kernel(y, y)
    kxy = hamming_kernel(x, y)
    sxx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
    syy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
    return sxx + syy - 2 * jnp.mean(kxy)


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation of each column of `x` (T, C) at lags 0..T-1 (via FFT)."""
    x = np.asarray(x, np.float64)
    t = x.shape[0]
    x = x - x.mean(0, keepdims=True)
    n = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(x, n=n, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=n, axis=0)[:t] / t
    var = acov[:1]
    return np.where(var > 0, acov / np.where(var > 0, var, 1.0), 0.0)


def effective_sample_size(x: np.ndarray) -> np.ndarray:
    """ESS of each chain (column) of a scalar trace `x` (T, C), with Geyer's initial
    positive (monotone) sequence estimator: ``T / (-1 + 2 sum_k Gamma_k)`` with
    ``Gamma_k = rho_{2k} + rho_{2k+1}`` truncated at the first non-positive pair."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    t, c = x.shape
    rho = autocorrelation(x)
    out = np.empty(c)
    for j in range(c):
        if rho[0, j] == 0:  # a constant chain carries one sample's worth of information
            out[j] = 1.0
            continue
        pairs = rho[: 2 * (t // 2), j].reshape(-1, 2).sum(1)
        neg = np.nonzero(pairs <= 0)[0]
        pairs = pairs[: neg[0]] if len(neg) else pairs
        pairs = np.minimum.accumulate(pairs)  # monotone sequence
        tau = -1.0 + 2.0 * pairs.sum()
        out[j] = t / max(tau, 1e-12) if tau > 0 else float(t)
    return np.minimum(out, t * np.log10(max(t, 10)))
