"""REINFORCE (score function) estimators: plain, with a learned constant baseline, and RLOO."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractIIDEstimator, check_num_samples, leave_one_out_mean


class Reinforce(AbstractIIDEstimator):
    """``(1/K) sum_k f(b_k) (b_k - theta)``."""

    num_samples: int = eqx.field(static=True)

    def __init__(self, num_samples: int = 1):
        check_num_samples("Reinforce", num_samples, 1)
        self.num_samples = num_samples

    def combine(self, logits, b, f_b, grad_b=None) -> Float[Array, " D"]:
        del grad_b
        return jnp.mean(f_b[:, None] * (b - jax.nn.sigmoid(logits)[None, :]), axis=0)


class ReinforceBaseline(AbstractIIDEstimator):
    """``(1/K) sum_k (f(b_k) - c) (b_k - theta)`` with a learned scalar baseline ``c``
    (fixed if you do not train it; unbiased for any c that does not depend on the samples)."""

    num_samples: int = eqx.field(static=True)
    baseline: Float[Array, ""]

    def __init__(self, num_samples: int = 1, baseline: float = 0.0):
        check_num_samples("ReinforceBaseline", num_samples, 1)
        self.num_samples = num_samples
        self.baseline = jnp.asarray(baseline, jnp.float32)

    def combine(self, logits, b, f_b, grad_b=None) -> Float[Array, " D"]:
        del grad_b
        return jnp.mean((f_b - self.baseline)[:, None] * (b - jax.nn.sigmoid(logits)[None, :]), axis=0)


class RLOO(AbstractIIDEstimator):
    """REINFORCE leave-one-out (Kool et al. 2019):
    ``(1/K) sum_k (f(b_k) - mean_{j != k} f(b_j)) (b_k - theta)``."""

    num_samples: int = eqx.field(static=True)

    def __init__(self, num_samples: int = 2):
        check_num_samples("RLOO", num_samples, 2)
        self.num_samples = num_samples

    def combine(self, logits, b, f_b, grad_b=None) -> Float[Array, " D"]:
        del grad_b
        adv = f_b - leave_one_out_mean(f_b)
        return jnp.mean(adv[:, None] * (b - jax.nn.sigmoid(logits)[None, :]), axis=0)
