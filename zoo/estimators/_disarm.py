"""DisARM (Dong, Mnih & Tucker 2020), K-sample version: the average over K/2 antithetic pairs."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import ConfigError
from ._base import AbstractEstimator


class DisARM(AbstractEstimator):
    """For each of K/2 uniforms u: ``b = 1[u > 1 - theta]``, ``b~ = 1[u < theta]`` and
    ``g = 1/2 (f(b) - f(b~)) (-1)^{b~} 1[b != b~] sigmoid(|logits|)``; the estimate is the
    mean over pairs. K (even) evaluations of f. (The official RODEO code pairs the first
    K//2 i.i.d. samples with extra antithetic evaluations instead; here every evaluation
    belongs to a pair, so "K" counts all of them.)"""

    num_samples: int = eqx.field(static=True)

    def __init__(self, num_samples: int = 2):
        if not isinstance(num_samples, int) or num_samples < 2 or num_samples % 2:
            raise ConfigError(
                f"DisARM pairs every sample with its antithetic partner, so it needs an even num_samples >= 2, "
                f"got {num_samples!r}: use an even K (2, 4, ...), or ARMS (its generalisation to any K) for odd K"
            )
        self.num_samples = num_samples

    def draw(self, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Float[Array, "K D"]:
        """K/2 uniforms u give ``b = 1[u > 1 - theta]`` (rows ``:K/2``) and ``b~ = 1[u < theta]``
        (rows ``K/2:``)."""
        pairs = self.num_samples // 2
        theta = jax.nn.sigmoid(logits)
        u = jax.random.uniform(key, (pairs,) + logits.shape, logits.dtype)
        b = (u > (1.0 - theta)[None, :]).astype(logits.dtype)
        b_anti = (u < theta[None, :]).astype(logits.dtype)
        return jnp.concatenate([b, b_anti], axis=0)

    def combine(self, logits, b, f_b, grad_b=None) -> Float[Array, " D"]:
        del grad_b
        pairs = self.num_samples // 2
        b, b_anti = b[:pairs], b[pairs:]
        diff = f_b[:pairs] - f_b[pairs:]
        factor = jnp.where(b != b_anti, 1.0 - 2.0 * b_anti, 0.0) * jax.nn.sigmoid(jnp.abs(logits))[None, :]
        return 0.5 * jnp.mean(diff[:, None] * factor, axis=0)
