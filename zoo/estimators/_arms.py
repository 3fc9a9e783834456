"""ARMS (Dimitriev & Zhou 2021): the antithetic multi-sample generalisation of DisARM to any K >= 2."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractEstimator, check_num_samples


class ARMS(AbstractEstimator):
    """Antithetic REINFORCE multi-sample estimator with the Dirichlet copula.

    Per latent dimension, ``d ~ Dirichlet(1, ..., 1)`` (K entries) gives K mutually antithetic
    uniforms ``u_k = 1 - (1 - d_k)^(K-1)`` and samples ``b_k = 1[u_k < theta]``; each ``b_k`` is
    Bernoulli(theta), pairs are negatively correlated (correlation ``rho(theta, K)``). The
    estimate is the leave-one-out REINFORCE estimate corrected for that correlation,

        ``1 / ((K - 1) (1 - rho)) * sum_k (f(b_k) - mean_j f(b_j)) (b_k - theta)``,

    unbiased for any K >= 2. K = 2 is DisARM (the pair ``u, 1 - u``); uncorrelated samples would
    give RLOO. ``1 - rho = (P(b_k = 0) - P(b_j = b_k = 0)) / (theta (1 - theta))`` with
    ``P(b_k = 0) = (1 - t)^(K-1)``, ``P(b_j = b_k = 0) = max(0, 1 - 2t)^(K-1)``,
    ``t = 1 - (1 - theta)^(1/(K-1))``. K evaluations of f."""

    num_samples: int = eqx.field(static=True)

    def __init__(self, num_samples: int = 3):
        check_num_samples("ARMS", num_samples, 2)
        self.num_samples = num_samples

    def draw(self, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Float[Array, "K D"]:
        k = self.num_samples
        e = jax.random.exponential(key, (k,) + logits.shape, logits.dtype)
        d = e / jnp.sum(e, axis=0, keepdims=True)  # Dirichlet(1, ..., 1) over the K samples
        # u < theta  <=>  (K - 1) log(1 - d) > log(1 - theta) = -softplus(logits)
        return ((k - 1) * jnp.log1p(-d) > -jax.nn.softplus(logits)[None, :]).astype(logits.dtype)

    def combine(self, logits, b, f_b, grad_b=None) -> Float[Array, " D"]:
        del grad_b
        k = self.num_samples
        theta = jax.nn.sigmoid(logits)
        t = -jnp.expm1(-jax.nn.softplus(logits) / (k - 1))  # 1 - (1 - theta)^(1/(K-1))
        # p0 - p00 = (1 - t)^m - (1 - 2t)^m (m = K - 1; p00 = 0 for t >= 1/2), written as
        # t * sum_i (1 - t)^(m-1-i) (1 - 2t)^i so that it keeps its precision for saturated logits
        m = k - 1
        a, c = 1.0 - t, jnp.maximum(1.0 - 2.0 * t, 0.0)
        series = t * sum(a ** (m - 1 - i) * c**i for i in range(m))
        diff = jnp.where(c > 0.0, series, jax.nn.sigmoid(-logits))
        # 1 / (1 - rho) = theta (1 - theta) / (p0 - p00); its limit as theta -> 0 is 1
        var = theta * jax.nn.sigmoid(-logits)  # theta (1 - theta) without rounding 1 - theta to 0
        ratio = jnp.where(diff > 0.0, var / jnp.where(diff > 0.0, diff, 1.0), 1.0)
        scale = ratio / m
        adv = f_b - jnp.mean(f_b)
        return jnp.sum(adv[:, None] * (b - theta[None, :]), axis=0) * scale
