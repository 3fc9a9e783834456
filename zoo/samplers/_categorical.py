"""Samplers on categorical states (one-hot ``(D, K)``): Gibbs-with-Gradients, random-scan
Gibbs and uniform Metropolis-Hastings.

Categorical GWG (Grathwohl et al., 2021, section 4 "categorical data"): the first-order
estimate of ``f(x with position i set to value j) - f(x)`` is

    d(x)_ij = grad_ij f(x) - <x_i, grad_i f(x)>,

and a proposal draws changes ``(i_k, j_k)``, k = 1..n, i.i.d. from
``q(i, j | x) = softmax(d(x) / temperature)`` over the ``D (K - 1)`` single changes (the
current value of each position excluded). Each drawn position takes the value of its first
draw; later draws of the same position are ignored. The sequence is an auxiliary variable
mapped to a reverse sequence in which ``j_k`` is swapped with the old value wherever it equals
the new one, so ``(x, seq) -> (x', seq')`` is an involution and

    log alpha = f(x') - f(x) + sum_k log q(i_k, j'_k | x') - sum_k log q(i_k, j_k | x)

is an exact Metropolis-Hastings correction for any number of changes. With ``K = 2`` every
draw is a flip and this is the binary `GWG` exactly (same law, same acceptance).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._gwg import AbstractBinaryTarget, LogDensity, first_occurrence, gwg_mh_step
from ._target import AbstractCategoricalTarget, AbstractDiscreteTarget, OneHot


class BinaryAsCategorical(AbstractCategoricalTarget):
    """A binary target seen on one-hot states ``(D, 2)`` (value 1 = ``x[:, 1]``), so the
    categorical samplers run on every `AbstractBinaryTarget` (with ``K = 2``)."""

    base: AbstractBinaryTarget

    def init(self, x: OneHot) -> PyTree:
        return self.base.init(x[:, 1])

    def log_prob(self, x: OneHot, cache: PyTree) -> Float[Array, ""]:
        return self.base.log_prob(x[:, 1], cache)

    def grad(self, x: OneHot, cache: PyTree) -> OneHot:
        g = self.base.grad(x[:, 1], cache)
        return jnp.stack([jnp.zeros_like(g), g], axis=-1)

    def change(self, x, cache, idx, values, first):
        xb, cache = self.base.flip(x[:, 1], cache, idx, first)
        return jnp.stack([1 - xb, xb], axis=-1), cache


def as_categorical_target(target: Any) -> AbstractCategoricalTarget:
    """`target` if it is an `AbstractCategoricalTarget`; a binary target seen with ``K = 2``
    (`BinaryAsCategorical`); a callable on one-hot states wrapped in `LogDensity`."""
    if isinstance(target, AbstractCategoricalTarget):
        return target
    if isinstance(target, AbstractBinaryTarget):
        return BinaryAsCategorical(target)
    if callable(target):
        return LogDensity(target)
    raise TypeError(
        "a categorical sampler needs a log-density callable on one-hot (D, K) states or an "
        f"AbstractCategoricalTarget, got {type(target).__name__}"
    )


def as_discrete_target(target: Any) -> AbstractDiscreteTarget:
    """`target` if it is an `AbstractDiscreteTarget` (binary or categorical), else ``LogDensity(target)``."""
    if isinstance(target, AbstractDiscreteTarget):
        return target
    if callable(target):
        return LogDensity(target)
    raise TypeError(
        f"a discrete sampler needs a log-density callable or an AbstractDiscreteTarget, got {type(target).__name__}"
    )


def _check_one_hot(x: Array, who: str) -> None:
    if x.ndim != 2:
        raise ValueError(
            f"{who} runs on one-hot states of shape (D, K) for one chain, got shape {x.shape}; encode values with "
            "jax.nn.one_hot(v, K) (and pass batched=True to zoo.samplers.run for many chains)"
        )


def _current(x: OneHot, idx: Int[Array, " n"]) -> Int[Array, " n"]:
    return jnp.argmax(x[idx], axis=-1).astype(jnp.int32)


class CategoricalGWGState(eqx.Module):
    """The target's cache at the current point and ``log q(. | x)`` over the ``D * K`` changes
    (flattened, position-major; ``-inf`` at the current values)."""

    cache: PyTree
    log_q: Float[Array, " DK"]


@SAMPLERS.register("categorical_gwg")
class CategoricalGWG(AbstractSampler[CategoricalGWGState]):
    """Gibbs-with-Gradients for one chain on one-hot states ``(D, K)``.

    - `num_changes`: changes drawn per proposal (i.i.d. from ``q``; the first draw of each
      position applies).
    - `temperature`: ``q = softmax(d / temperature)``; 2 is the paper's choice.
    """

    num_changes: int = 1
    temperature: float = 2.0

    def __check_init__(self):
        if self.num_changes < 1:
            raise ValueError(f"num_changes must be >= 1, got {self.num_changes}")

    def init(self, target: Any, x: OneHot) -> CategoricalGWGState:
        _check_one_hot(x, type(self).__name__)
        t = as_categorical_target(target)
        cache = t.init(x)
        return CategoricalGWGState(cache=cache, log_q=self.proposal_logits(x, t.grad(x, cache)))

    def proposal_logits(self, x: OneHot, grad: OneHot) -> Float[Array, " DK"]:
        """Normalised ``log q(. | x)`` over the flattened ``(position, value)`` changes."""
        d = grad - jnp.sum(x * grad, axis=-1, keepdims=True)
        logits = jnp.where(x > 0, -jnp.inf, d / self.temperature)
        return jax.nn.log_softmax(logits.reshape(-1))

    def propose(
        self, target: Any, x: OneHot, state: CategoricalGWGState, flat: Int[Array, " n"]
    ) -> tuple[Float[Array, ""], OneHot, CategoricalGWGState]:
        """For the changes ``flat = i * K + j``: ``(log alpha, x', state')`` (unclipped)."""
        t = as_categorical_target(target)
        k = x.shape[1]
        idx, val = flat // k, flat % k
        first = first_occurrence(idx)
        old = _current(x, idx)
        x_new, cache_new, grad_new = t.change_and_grad(x, state.cache, idx, val, first)
        new = _current(x_new, idx)
        rev = idx * k + jnp.where(val == new, old, val)
        log_q_new = self.proposal_logits(x_new, grad_new)
        log_fwd = jnp.sum(state.log_q[flat])
        log_rev = jnp.sum(log_q_new[rev])
        log_alpha = t.log_prob(x_new, cache_new) - t.log_prob(x, state.cache) + log_rev - log_fwd
        return log_alpha, x_new, CategoricalGWGState(cache=cache_new, log_q=log_q_new)

    def step(
        self, target: Any, x: OneHot, state: CategoricalGWGState, *, key: PRNGKeyArray
    ) -> tuple[OneHot, CategoricalGWGState, dict[str, Array]]:
        propose = lambda flat: self.propose(target, x, state, flat)
        x_out, state_out, accept_prob = gwg_mh_step(propose, state.log_q, x, state, self.num_changes, key=key)
        return x_out, state_out, {"accept_prob": accept_prob, "hops": jnp.sum(jnp.abs(x_out - x)) / 2}


@SAMPLERS.register("categorical_gibbs")
class CategoricalGibbs(AbstractSampler[PyTree]):
    """Random-scan Gibbs on one-hot states: pick a position uniformly and draw its value from
    the exact conditional over the ``K`` values (``K`` evaluations of ``f`` per step)."""

    def init(self, target: Any, x: OneHot) -> PyTree:
        _check_one_hot(x, type(self).__name__)
        return as_categorical_target(target).init(x)

    def conditional(self, target: Any, x: OneHot, cache: PyTree, i: Array) -> tuple[Array, OneHot, PyTree]:
        """``(log p(x_i = v | x_-i) for v in 0..K-1, the K states, their caches)``."""
        t = as_categorical_target(target)
        k = x.shape[1]
        cur = jnp.argmax(x[i])
        idx = jnp.reshape(i, (1,))

        def at(v):
            x_v, c_v = t.change(x, cache, idx, jnp.reshape(v, (1,)), jnp.ones((1,), bool))
            return t.log_prob(x_v, c_v), x_v, c_v

        lp, xs, caches = jax.vmap(at)(jnp.arange(k))
        same = jnp.arange(k) == cur  # `change` never sets the current value: use x itself there
        lp = jnp.where(same, t.log_prob(x, cache), lp)
        xs, caches = jax.tree.map(
            lambda a, b: jnp.where(same.reshape((k,) + (1,) * (a.ndim - 1)), b[None], a), (xs, caches), (x, cache)
        )
        return jax.nn.log_softmax(lp), xs, caches

    def step(self, target: Any, x: OneHot, state: PyTree, *, key: PRNGKeyArray):
        k_i, k_v = jax.random.split(key)
        i = jax.random.randint(k_i, (), 0, x.shape[0])
        log_p, xs, caches = self.conditional(target, x, state, i)
        v = jax.random.categorical(k_v, log_p)
        x_out, state_out = jax.tree.map(lambda a: a[v], (xs, caches))
        return x_out, state_out, {"hops": jnp.sum(jnp.abs(x_out - x)) / 2}


@SAMPLERS.register("categorical_uniform_mh")
class CategoricalUniformMH(AbstractSampler[PyTree]):
    """Uniform Metropolis-Hastings on one-hot states: draw a radius ``r`` uniformly from
    1..`num_changes`, give ``r`` distinct positions (uniformly chosen) each a new value
    uniformly among their ``K - 1`` others (a symmetric proposal) and accept with probability
    ``min(1, p(x') / p(x))``. ``num_changes=1`` is single-site uniform MH."""

    num_changes: int = 1

    def __check_init__(self):
        if self.num_changes < 1:
            raise ValueError(f"num_changes must be >= 1, got {self.num_changes}")

    def init(self, target: Any, x: OneHot) -> PyTree:
        _check_one_hot(x, type(self).__name__)
        if self.num_changes > x.shape[0]:
            raise ValueError(f"num_changes={self.num_changes} exceeds the {x.shape[0]} positions")
        return as_categorical_target(target).init(x)

    def propose(
        self, target: Any, x: OneHot, cache: PyTree, idx: Int[Array, " n"], values: Int[Array, " n"]
    ) -> tuple[Float[Array, ""], OneHot, PyTree]:
        """``(log alpha, x', cache')`` for setting the distinct positions `idx` to `values`."""
        t = as_categorical_target(target)
        x_new, cache_new = t.change(x, cache, idx, values, first_occurrence(idx))
        return t.log_prob(x_new, cache_new) - t.log_prob(x, cache), x_new, cache_new

    def step(self, target: Any, x: OneHot, state: PyTree, *, key: PRNGKeyArray):
        k_i, k_r, k_v, k_u = jax.random.split(key, 4)
        d, k = x.shape
        n = self.num_changes
        if n == 1:
            idx = jax.random.randint(k_i, (1,), 0, d)
        else:
            perm = jax.random.choice(k_i, d, (n,), replace=False)
            r = jax.random.randint(k_r, (), 1, n + 1)
            idx = jnp.where(jnp.arange(n) < r, perm, perm[0])  # repeats of perm[0] are ignored
        offset = jax.random.randint(k_v, (n,), 1, k)
        values = (_current(x, idx) + offset) % k
        log_alpha, x_new, cache_new = self.propose(target, x, state, idx, values)
        log_alpha = jnp.minimum(log_alpha, 0.0)
        accept = jnp.log(jax.random.uniform(k_u, dtype=log_alpha.dtype)) < log_alpha
        x_out, state_out = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (x_new, cache_new), (x, state))
        return x_out, state_out, {"accept_prob": jnp.exp(log_alpha), "hops": jnp.sum(jnp.abs(x_out - x)) / 2}
