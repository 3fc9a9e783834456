"""Targets with analytic scores (Gaussians and Gaussian mixtures), for tests, benchmarks and cards."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray


class GaussianMixture(eqx.Module):
    """Isotropic Gaussian mixture ``sum_k w_k N(mu_k, std_k^2 I)`` with exact `score` and `sample`."""

    means: Float[Array, "k d"]
    stds: Float[Array, " k"]
    log_weights: Float[Array, " k"]

    def __init__(self, means, stds, weights=None):
        means = jnp.asarray(means)
        k = means.shape[0]
        self.means = means
        self.stds = jnp.broadcast_to(jnp.asarray(stds, means.dtype), (k,))
        w = jnp.full((k,), 1.0 / k, means.dtype) if weights is None else jnp.asarray(weights, means.dtype)
        self.log_weights = jnp.log(w / jnp.sum(w))

    def log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        d = x.shape[-1]
        sq = jnp.sum((x[None, :] - self.means) ** 2, axis=-1)
        comp = -0.5 * sq / self.stds**2 - d * jnp.log(self.stds) - 0.5 * d * jnp.log(2 * jnp.pi)
        return jax.nn.logsumexp(self.log_weights + comp)

    def score(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        return jax.grad(self.log_prob)(x)

    def sample(self, n: int, *, key: PRNGKeyArray) -> Float[Array, "n d"]:
        k1, k2 = jax.random.split(key)
        comp = jax.random.categorical(k1, self.log_weights, shape=(n,))
        z = jax.random.normal(k2, (n, self.means.shape[1]), self.means.dtype)
        return self.means[comp] + self.stds[comp][:, None] * z


def standard_gaussian(d: int, dtype=jnp.float32) -> GaussianMixture:
    """``N(0, I_d)``; its score is ``-x``."""
    return GaussianMixture(jnp.zeros((1, d), dtype), 1.0)


def gmm8(dtype=jnp.float32) -> GaussianMixture:
    """The exact density of ``zoo.data`` ``toy:gmm8``: 8 equal components on a ring of radius
    ``4 / 1.414`` with std ``0.5 / 1.414``."""
    angles = np.arange(8) * (np.pi / 4)
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1) / 1.414
    return GaussianMixture(jnp.asarray(centers, dtype), 0.5 / 1.414)


def known_target(dataset: str) -> GaussianMixture | None:
    """The analytic density of a data set when there is one (``toy:gmm8``), else None."""
    return gmm8() if dataset == "toy:gmm8" else None
