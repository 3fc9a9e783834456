"""Samplers for a product ``f(x) = factor(x) + rest(x)`` whose factor is an RBM, and `Cycle`,
the composition of kernels.

`FactorBlockGibbsMH` proposes one block-Gibbs sweep of the RBM factor (``h ~ p(h | x)``, then
``x' ~ p(x | h)``). That kernel is reversible with respect to the factor, so the
Metropolis-Hastings ratio of the product reduces to ``exp(rest(x') - rest(x))``: the proposal
terms and the factor cancel exactly. When ``rest`` is a small correction (e.g. a ResNet energy
on top of an RBM) the moves are global and mostly accepted, where a single-flip sampler moves
one pixel per step. `Cycle` runs several kernels in turn (e.g. these sweeps and GWG steps);
each one keeps its target invariant, so the cycle does too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._gwg import AbstractBinaryTarget, flip_indices


Binary = Float[Array, " D"]


class ProductTarget(AbstractBinaryTarget):
    """``f(x) = factor(x) + rest(x)`` on {0,1}^D: `factor` is RBM-like (``__call__``,
    ``hidden_logits``, ``visible_logits``; e.g. `zoo.ebm.RBMTarget`), `rest` any callable.
    As a binary target (GWG, Gibbs, AIS) its cache is ``(f(x), grad f(x))`` by autodiff."""

    factor: Any
    rest: Callable[[Binary], Float[Array, ""]]

    def __call__(self, x: Binary) -> Float[Array, ""]:
        return self.factor(x) + self.rest(x)

    def init(self, x: Binary) -> tuple[Array, Array]:
        return jax.value_and_grad(self.__call__)(x)

    def log_prob(self, x: Binary, cache: tuple[Array, Array]) -> Float[Array, ""]:
        return cache[0]

    def grad(self, x: Binary, cache: tuple[Array, Array]) -> Binary:
        return cache[1]

    def flip(self, x: Binary, cache: PyTree, idx: Int[Array, " n"], first: Array) -> tuple[Binary, PyTree]:
        x_new = flip_indices(x, idx)
        return x_new, jax.value_and_grad(self.__call__)(x_new)


@SAMPLERS.register("factor_block_gibbs_mh")
class FactorBlockGibbsMH(AbstractSampler[Float[Array, ""]]):
    """Metropolis-Hastings on a `ProductTarget` with one block-Gibbs sweep of its RBM factor
    as the proposal: accept with probability ``min(1, exp(rest(x') - rest(x)))``. The state
    is ``rest(x)``, so a step costs one sweep and one evaluation of ``rest``."""

    def init(self, target: Any, x: Binary) -> Float[Array, ""]:
        if not isinstance(target, ProductTarget):
            raise TypeError(
                f"FactorBlockGibbsMH samples a zoo.samplers.ProductTarget (an RBM factor times the rest), "
                f"got {type(target).__name__}; use GWG for other targets"
            )
        return target.rest(x)

    def step(self, target: ProductTarget, x: Binary, state: Float[Array, ""], *, key: PRNGKeyArray):
        k_h, k_v, k_u = jax.random.split(key, 3)
        rbm = target.factor
        h = jax.random.bernoulli(k_h, jax.nn.sigmoid(rbm.hidden_logits(x))).astype(x.dtype)
        x_new = jax.random.bernoulli(k_v, jax.nn.sigmoid(rbm.visible_logits(h))).astype(x.dtype)
        rest_new = target.rest(x_new)
        log_alpha = jnp.minimum(rest_new - state, 0.0)
        accept = jnp.log(jax.random.uniform(k_u, dtype=log_alpha.dtype)) < log_alpha
        x_out = jnp.where(accept, x_new, x)
        return x_out, jnp.where(accept, rest_new, state), {
            "accept_prob": jnp.exp(log_alpha), "hops": jnp.sum(jnp.abs(x_out - x))
        }


@SAMPLERS.register("cycle")
class Cycle(AbstractSampler[None]):
    """One step = ``repeats[0]`` steps of ``samplers[0]``, then ``repeats[1]`` of
    ``samplers[1]``, ... Each kernel starts from a fresh `init` at the current point (the
    previous kernel moved it), so any kernels combine. `info` keys are prefixed by the
    kernel's position (``"0_accept_prob"``) and averaged over its repeats."""

    samplers: tuple[AbstractSampler, ...]
    repeats: tuple[int, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        if not self.samplers:
            raise ValueError("Cycle needs at least one sampler")
        if self.repeats and (len(self.repeats) != len(self.samplers) or min(self.repeats) < 1):
            raise ValueError(
                f"repeats must give a count >= 1 for each of the {len(self.samplers)} samplers, got {self.repeats}"
            )

    def init(self, target: Any, x: PyTree[Array]) -> None:
        return None

    def step(self, target: Any, x: PyTree[Array], state: None, *, key: PRNGKeyArray):
        repeats = self.repeats or (1,) * len(self.samplers)
        info: dict[str, Array] = {}
        for i, (sampler, (n, k)) in enumerate(zip(self.samplers, zip(repeats, jax.random.split(key, len(repeats))))):

            def one(carry, k, sampler=sampler):
                x, s = carry
                x, s, inf = sampler.step(target, x, s, key=k)
                return (x, s), inf

            (x, _), infos = jax.lax.scan(one, (x, sampler.init(target, x)), jax.random.split(k, n))
            info.update({f"{i}_{name}": jnp.mean(v, axis=0) for name, v in infos.items()})
        return x, state, info
