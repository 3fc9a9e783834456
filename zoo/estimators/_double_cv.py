"""Double control variates (Titsias & Shi 2022): RLOO plus a learned-scale linear (Taylor) control variate."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractIIDEstimator, check_num_samples, leave_one_out_mean


class DoubleCV(AbstractIIDEstimator):
    """With ``c_k = alpha * gbar_{-k} . (b_k - theta)`` (``gbar_{-k}``: mean of ``df/db`` at the
    other samples),

    ``(1/K) sum_k [f_k + c_k - mean_{j != k}(f_j + c_j)] (b_k - theta) - alpha * gbar * theta (1 - theta)``.

    ``alpha`` is learned (initialised at 0, so it starts as RLOO)."""

    num_samples: int = eqx.field(static=True)
    alpha: Float[Array, ""]
    uses_gradient = True

    def __init__(self, num_samples: int = 2, alpha: float = 0.0):
        check_num_samples("DoubleCV", num_samples, 2)
        self.num_samples = num_samples
        self.alpha = jnp.asarray(alpha, jnp.float32)

    def combine(self, logits, b, f_b, grad_b) -> Float[Array, " D"]:
        theta = jax.nn.sigmoid(logits)
        s = b - theta[None, :]
        cv = self.alpha * jnp.sum(leave_one_out_mean(grad_b) * s, axis=-1)  # (K,)
        vr = f_b + cv
        adv = vr - leave_one_out_mean(vr)
        correction = self.alpha * jnp.mean(grad_b, axis=0) * theta * (1.0 - theta)
        return jnp.mean(adv[:, None] * s, axis=0) - correction
