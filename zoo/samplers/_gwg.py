"""Gibbs-with-Gradients (Grathwohl et al., 2021) on {0,1}^D, and the binary-target interface.

A target over {0,1}^D is either a plain callable ``f(x) -> log p(x) + const`` on one
example (wrapped in `LogDensity`) or an `AbstractBinaryTarget`, which may keep a cache
(e.g. an RBM's hidden pre-activations) that a flip updates incrementally.

GWG: with ``d(x) = -(2x - 1) * grad f(x)`` (a first-order estimate of
``f(flip_i(x)) - f(x)``), propose indices ``i_1..i_n`` i.i.d. from
``q(i | x) = softmax(d(x) / temperature)`` and flip every distinct index once. The index
sequence is an auxiliary variable: flipping the same set from ``x'`` returns to ``x``, so
``(x, seq) -> (x', seq)`` is an involution and

    log alpha = f(x') - f(x) + sum_k log q(i_k | x') - sum_k log q(i_k | x)

is an exact Metropolis-Hastings correction for any number of flips (``num_flips=1`` is the
paper's sampler).

Cost of a step: the state keeps ``f(x)``, the target's cache and ``q(. | x)`` itself (the
probabilities that are sampled), so a step evaluates the target once, at the proposed point
(`AbstractBinaryTarget.log_prob_and_grad`, one ``chains x H x D`` product for an RBM), draws
from ``q`` without exponentiating it again, and gets its uniforms from one fused threefry
kernel (`uniform`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._random import uniform
from ._target import AbstractCategoricalTarget, AbstractDiscreteTarget, set_values


Binary = Float[Array, " D"]


class AbstractBinaryTarget(AbstractDiscreteTarget):
    """An unnormalised log-density on {0,1}^D (one example) with a flip-updatable cache."""

    @abc.abstractmethod
    def init(self, x: Binary) -> PyTree:
        """The cache at `x` (whatever makes `log_prob`/`grad`/`flip` cheap)."""

    @abc.abstractmethod
    def log_prob(self, x: Binary, cache: PyTree) -> Float[Array, ""]:
        """``f(x)`` (unnormalised log-density), given the cache at `x`."""

    @abc.abstractmethod
    def grad(self, x: Binary, cache: PyTree) -> Binary:
        """``grad f(x)`` of the continuous extension of `f`."""

    @abc.abstractmethod
    def flip(self, x: Binary, cache: PyTree, idx: Int[Array, " n"], first: Array) -> tuple[Binary, PyTree]:
        """Flip coordinates `idx` of `x` (an index listed twice flips once; ``first[k]`` is
        True for the first occurrence of ``idx[k]``) and return ``(x', cache')``."""

    def flip_and_grad(
        self, x: Binary, cache: PyTree, idx: Int[Array, " n"], first: Array
    ) -> tuple[Binary, PyTree, Binary]:
        """`flip`, then the gradient at the new point (override to fuse the two)."""
        x_new, cache_new = self.flip(x, cache, idx, first)
        return x_new, cache_new, self.grad(x_new, cache_new)

    def log_prob_and_grad(self, x: Binary, cache: PyTree) -> tuple[Float[Array, ""], Binary]:
        """``(f(x), grad f(x))`` from the cache at `x`: what GWG evaluates once per step (override
        to share work between the two, as `zoo.ebm.RBMTarget` does)."""
        return self.log_prob(x, cache), self.grad(x, cache)


class LogDensity(AbstractBinaryTarget, AbstractCategoricalTarget):
    """Wraps a callable ``f(x) -> scalar`` on one example, binary ``(D,)`` or one-hot ``(D, K)``;
    the cache is ``(f(x), grad f(x))``."""

    fn: Callable[[Binary], Float[Array, ""]]

    def init(self, x: Binary) -> tuple[Array, Array]:
        return jax.value_and_grad(self.fn)(x)

    def log_prob(self, x: Binary, cache: tuple[Array, Array]) -> Float[Array, ""]:
        return cache[0]

    def grad(self, x: Binary, cache: tuple[Array, Array]) -> Binary:
        return cache[1]

    def flip(self, x, cache, idx, first):
        x_new = flip_indices(x, idx)
        return x_new, jax.value_and_grad(self.fn)(x_new)

    def change(self, x, cache, idx, values, first):
        x_new = set_values(x, idx, values, first)
        return x_new, jax.value_and_grad(self.fn)(x_new)


def as_binary_target(target: Any) -> AbstractBinaryTarget:
    """`target` itself if it is an `AbstractBinaryTarget`, else ``LogDensity(target)``."""
    if isinstance(target, AbstractBinaryTarget):
        return target
    if callable(target):
        return LogDensity(target)
    raise TypeError(
        f"a binary sampler needs a log-density callable or an AbstractBinaryTarget, got {type(target).__name__}"
    )


def flip_indices(x: Binary, idx: Int[Array, " n"]) -> Binary:
    """`x` with each distinct index in `idx` flipped once."""
    return x.at[idx].set(1 - x[idx])


def first_occurrence(idx: Int[Array, " n"]) -> Array:
    """``first[k]``: whether ``idx[k]`` does not occur in ``idx[:k]``."""
    n = idx.shape[0]
    same = idx[:, None] == idx[None, :]
    earlier = jnp.tril(same, k=-1).any(axis=1)
    return ~earlier if n > 1 else jnp.ones((n,), bool)


class GWGState(eqx.Module):
    """The target's cache at the current point, ``f(x)`` and the proposal ``q(. | x)``."""

    cache: PyTree
    log_p: Float[Array, ""]
    q: Binary  # probabilities over the D coordinates, exactly those `sample_from_probs` draws from

    @property
    def log_q(self) -> Binary:
        """``log q(. | x)`` (``-inf`` where ``q`` underflows to 0: such a coordinate is never drawn)."""
        return jnp.log(self.q)


def _prefix_sums(p: Float[Array, "... m"]) -> Float[Array, "... m"]:
    """Inclusive prefix sums along the last axis, as one product with a triangular matrix of
    ones (the sizes here are ~sqrt(D)); XLA:CPU lowers `jnp.cumsum` to a quadratic reduce-window
    and `lax.associative_scan` to a chain of small kernels, both slower."""
    m = p.shape[-1]
    return jnp.dot(p, jnp.triu(jnp.ones((m, m), p.dtype)), precision=jax.lax.Precision.HIGHEST)


def sample_from_probs(p: Float[Array, " D"], u: Float[Array, " n"]) -> Int[Array, " n"]:
    """Inverse-CDF draws from the probabilities ``p / sum(p)`` for uniforms `u`: one uniform per
    index instead of the D Gumbel variates of `jax.random.categorical`. The search is two-level
    (blocks of ~sqrt(D) coordinates, then within the chosen block), O(D) work: a flat prefix sum
    over D lowers to O(D^2) work on XLA:CPU. A coordinate with ``p = 0`` is drawn only by
    rounding at a CDF boundary or by ``u = 0``; `GWG.propose` rejects such a draw."""
    d = p.shape[0]
    b = max(1, math.isqrt(d - 1) + 1) if d > 1 else 1
    nb = -(-d // b)
    p = jnp.pad(p, (0, nb * b - d)).reshape(nb, b)
    block_cdf = _prefix_sums(jnp.sum(p, axis=1))
    t = u * block_cdf[-1]
    blk = jnp.minimum(jnp.sum(block_cdf[None, :] < t[:, None], axis=1), nb - 1)
    before = jnp.where(blk > 0, block_cdf[jnp.maximum(blk - 1, 0)], 0.0)
    row_cdf = _prefix_sums(p[blk]) + before[:, None]
    j = jnp.minimum(jnp.sum(row_cdf < t[:, None], axis=1), b - 1)
    return jnp.minimum(blk * b + j, d - 1)


def sample_indices(log_q: Binary, u: Float[Array, " n"]) -> Int[Array, " n"]:
    """`sample_from_probs` for log-probabilities `log_q`."""
    return sample_from_probs(jnp.exp(log_q), u)


def gwg_mh_step(
    propose: Any, log_q: Float[Array, " n"], x: PyTree, state: PyTree, num_changes: int, *, key: PRNGKeyArray
) -> tuple[PyTree, PyTree, Float[Array, ""]]:
    """One Metropolis-Hastings step of a Gibbs-with-Gradients proposal, for any state kind:
    draw `num_changes` indices from ``softmax(log_q)``, ``propose(indices) -> (log alpha, x',
    state')``, accept with probability ``min(1, exp(log alpha))``. Returns the new state and
    the acceptance probability."""
    u = uniform(key, num_changes + 1)
    log_alpha, x_new, state_new = propose(sample_indices(log_q, u[:-1]))
    log_alpha = jnp.minimum(log_alpha, 0.0)
    accept = jnp.log(u[-1]) < log_alpha
    x_out, state_out = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (x_new, state_new), (x, state))
    return x_out, state_out, jnp.exp(log_alpha)


@SAMPLERS.register("gwg")
class GWG(AbstractSampler[GWGState]):
    """Gibbs-with-Gradients for one chain on {0,1}^D.

    - `num_flips`: indices drawn per proposal (i.i.d. from ``q``; distinct ones flip).
    - `temperature`: ``q = softmax(d / temperature)``; 2 is the paper's choice (the
      locally balanced ``sqrt`` weighting).
    """

    num_flips: int = 1
    temperature: float = 2.0

    def __check_init__(self):
        if self.num_flips < 1:
            raise ValueError(f"num_flips must be >= 1, got {self.num_flips}")

    def init(self, target: Any, x: Binary) -> GWGState:
        t = as_binary_target(target)
        return self.state_at(t, x, t.init(x))

    def state_at(self, target: Any, x: Binary, cache: PyTree) -> GWGState:
        """The state at `x` from the target's cache there (e.g. after the target changed, as in AIS)."""
        log_p, grad = as_binary_target(target).log_prob_and_grad(x, cache)
        return GWGState(cache=cache, log_p=log_p, q=self.proposal_probs(x, grad))

    def proposal_logits(self, x: Binary, grad: Binary) -> Binary:
        """Normalised ``log q(. | x)`` over the D coordinates, from ``grad f(x)``."""
        d = -(2 * x - 1) * grad
        return jax.nn.log_softmax(d / self.temperature)

    def proposal_probs(self, x: Binary, grad: Binary) -> Binary:
        """``q(. | x) = softmax(-(2x - 1) grad f(x) / temperature)``."""
        return jax.nn.softmax((1 - 2 * x) * grad / self.temperature)

    def propose(
        self, target: Any, x: Binary, state: GWGState, idx: Int[Array, " n"]
    ) -> tuple[Float[Array, ""], Binary, GWGState]:
        """For a given index sequence: ``(log alpha, x', state')`` (the MH log ratio, unclipped;
        ``-inf`` if ``q(idx | x)`` is 0, a draw that only rounding can produce)."""
        t = as_binary_target(target)
        x_new, cache_new = t.flip(x, state.cache, idx, first_occurrence(idx))
        new = self.state_at(t, x_new, cache_new)
        q_fwd, q_rev = state.q[idx], new.q[idx]
        log_alpha = new.log_p - state.log_p + jnp.sum(jnp.log(q_rev)) - jnp.sum(jnp.log(q_fwd))
        return jnp.where(jnp.all(q_fwd > 0), log_alpha, -jnp.inf), x_new, new

    def step(
        self, target: Any, x: Binary, state: GWGState, *, key: PRNGKeyArray
    ) -> tuple[Binary, GWGState, dict[str, Array]]:
        u = uniform(key, self.num_flips + 1)
        idx = sample_from_probs(state.q, u[:-1])
        log_alpha, x_new, state_new = self.propose(target, x, state, idx)
        log_alpha = jnp.minimum(log_alpha, 0.0)
        accept = jnp.log(u[-1]) < log_alpha
        state_out = jax.tree.map(lambda a, b: jnp.where(accept, a, b), state_new, state)
        # only the drawn coordinates can change: O(num_flips) work instead of a pass over D
        x_out = x.at[idx].set(jnp.where(accept, x_new[idx], x[idx]))
        hops = jnp.where(accept, jnp.sum(first_occurrence(idx)), 0).astype(x.dtype)
        return x_out, state_out, {"accept_prob": jnp.exp(log_alpha), "hops": hops}
