"""DisARM (Dong, Mnih & Tucker 2020), K-sample version: the average over K/2 antithetic pairs."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import ConfigError
from ._base import AbstractEstimator, Estimate, ObjectiveFn


class DisARM(AbstractEstimator):
    """For each of K/2 uniforms u: ``b = 1[u > 1 - theta]``, ``b~ = 1[u < theta]`` and
    ``g = 1/2 (f(b) - f(b~)) (-1)^{b~} 1[b != b~] sigmoid(|logits|)``; the estimate is the
    mean over pairs. K (even) evaluations of f. (The official RODEO code pairs the first
    K//2 i.i.d. samples with extra antithetic evaluations instead; here every evaluation
    belongs to a pair, so "K" counts all of them.)"""

    num_samples: int = eqx.field(static=True)

    def __init__(self, num_samples: int = 2):
        if not isinstance(num_samples, int) or num_samples < 2 or num_samples % 2:
            raise ConfigError(f"DisARM needs an even num_samples >= 2 (antithetic pairs), got {num_samples!r}")
        self.num_samples = num_samples

    def estimate(self, f: ObjectiveFn, logits: Float[Array, " D"], *, key: PRNGKeyArray) -> Estimate:
        pairs = self.num_samples // 2
        logits_c = jax.lax.stop_gradient(logits)
        theta = jax.nn.sigmoid(logits_c)
        u = jax.random.uniform(key, (pairs,) + logits.shape, logits.dtype)
        b = (u > (1.0 - theta)[None, :]).astype(logits.dtype)
        b_anti = (u < theta[None, :]).astype(logits.dtype)
        samples = jnp.concatenate([b, b_anti], axis=0)
        values = jax.vmap(f)(samples)
        fv = jax.lax.stop_gradient(values)
        diff = fv[:pairs] - fv[pairs:]
        factor = jnp.where(b != b_anti, 1.0 - 2.0 * b_anti, 0.0) * jax.nn.sigmoid(jnp.abs(logits_c))[None, :]
        grad = 0.5 * jnp.mean(diff[:, None] * factor, axis=0)
        return Estimate(grad=grad, samples=samples, values=values)
