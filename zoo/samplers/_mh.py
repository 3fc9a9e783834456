"""Uniform-flip Metropolis-Hastings on {0,1}^D (a symmetric random-walk proposal)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._gwg import as_binary_target, first_occurrence


Binary = Float[Array, " D"]


@SAMPLERS.register("uniform_mh")
class UniformMH(AbstractSampler[PyTree]):
    """Hamming-ball Metropolis-Hastings: draw a radius ``r`` uniformly from 1..`num_flips`,
    flip ``r`` distinct coordinates chosen uniformly at random (a symmetric proposal: the
    probability of ``x -> y`` depends on their Hamming distance only) and accept with
    probability ``min(1, p(x') / p(x))``. ``num_flips=1`` is uniform single-flip MH. (A fixed
    radius of 2 or more would not be irreducible when even: it preserves parity.)"""

    num_flips: int = 1

    def __check_init__(self):
        if self.num_flips < 1:
            raise ValueError(f"num_flips must be >= 1, got {self.num_flips}")

    def init(self, target: Any, x: Binary) -> PyTree:
        return as_binary_target(target).init(x)

    def propose(self, target: Any, x: Binary, cache: PyTree, idx: Array) -> tuple[Array, Binary, PyTree]:
        """``(log alpha, x', cache')`` for flipping the distinct indices `idx`."""
        t = as_binary_target(target)
        x_new, cache_new = t.flip(x, cache, idx, first_occurrence(idx))
        return t.log_prob(x_new, cache_new) - t.log_prob(x, cache), x_new, cache_new

    def step(self, target: Any, x: Binary, state: PyTree, *, key: PRNGKeyArray):
        k_i, k_r, k_u = jax.random.split(key, 3)
        d = x.shape[0]
        if self.num_flips == 1:
            idx = jax.random.randint(k_i, (1,), 0, d)
        else:
            k = self.num_flips
            perm = jax.random.choice(k_i, d, (k,), replace=False)
            r = jax.random.randint(k_r, (), 1, k + 1)
            # positions beyond the radius repeat perm[0], and repeated indices flip once
            idx = jnp.where(jnp.arange(k) < r, perm, perm[0])
        log_alpha, x_new, cache_new = self.propose(target, x, state, idx)
        log_alpha = jnp.minimum(log_alpha, 0.0)
        accept = jnp.log(jax.random.uniform(k_u, dtype=log_alpha.dtype)) < log_alpha
        x_out, state_out = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (x_new, cache_new), (x, state))
        return x_out, state_out, {"accept_prob": jnp.exp(log_alpha), "hops": jnp.sum(jnp.abs(x_out - x))}
