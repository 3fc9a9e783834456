"""Gibbs samplers on {0,1}^D: random-scan (any binary target) and block Gibbs (RBMs)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._gwg import as_binary_target


Binary = Float[Array, " D"]


@SAMPLERS.register("random_scan_gibbs")
class RandomScanGibbs(AbstractSampler[PyTree]):
    """Pick a coordinate uniformly at random and resample it from its conditional:
    flip it with probability ``sigmoid(f(flip_i(x)) - f(x))``. One coordinate per step."""

    def init(self, target: Any, x: Binary) -> PyTree:
        return as_binary_target(target).init(x)

    def flip_prob(self, target: Any, x: Binary, cache: PyTree, i: Array) -> tuple[Array, Binary, PyTree]:
        """``(P(flip i), x', cache')`` at `x` for coordinate `i`."""
        t = as_binary_target(target)
        idx = jnp.reshape(i, (1,))
        x_new, cache_new = t.flip(x, cache, idx, jnp.ones((1,), bool))
        delta = t.log_prob(x_new, cache_new) - t.log_prob(x, cache)
        return jax.nn.sigmoid(delta), x_new, cache_new

    def step(self, target: Any, x: Binary, state: PyTree, *, key: PRNGKeyArray):
        k_i, k_u = jax.random.split(key)
        i = jax.random.randint(k_i, (), 0, x.shape[0])
        p, x_new, cache_new = self.flip_prob(target, x, state, i)
        flip = jax.random.uniform(k_u, dtype=p.dtype) < p
        x_out, state_out = jax.tree.map(lambda a, b: jnp.where(flip, a, b), (x_new, cache_new), (x, state))
        return x_out, state_out, {"flip_prob": p, "hops": flip.astype(x.dtype)}


@SAMPLERS.register("block_gibbs")
class BlockGibbs(AbstractSampler[None]):
    """Block Gibbs for a Bernoulli RBM: ``h ~ p(h | x)``, then ``x ~ p(x | h)``.

    The target provides ``hidden_logits(x)`` and ``visible_logits(h)`` (e.g. `zoo.ebm.RBMTarget`).
    """

    def init(self, target: Any, x: Binary) -> None:
        if not (hasattr(target, "hidden_logits") and hasattr(target, "visible_logits")):
            raise TypeError(
                f"BlockGibbs needs an RBM-like target with hidden_logits/visible_logits, got {type(target).__name__}; "
                "use RandomScanGibbs or GWG for other targets"
            )
        return None

    def step(self, target: Any, x: Binary, state: None, *, key: PRNGKeyArray):
        k_h, k_v = jax.random.split(key)
        h = jax.random.bernoulli(k_h, jax.nn.sigmoid(target.hidden_logits(x))).astype(x.dtype)
        x_new = jax.random.bernoulli(k_v, jax.nn.sigmoid(target.visible_logits(h))).astype(x.dtype)
        return x_new, state, {"hops": jnp.sum(jnp.abs(x_new - x))}
