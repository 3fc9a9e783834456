"""Targets of the discrete samplers: unnormalised log-densities on binary or one-hot states.

Two state kinds, one interface (`AbstractDiscreteTarget`: ``init`` / ``log_prob`` / ``grad``):

- binary: ``x`` in {0,1}^D, a float vector ``(D,)``; `AbstractBinaryTarget` adds ``flip``;
- categorical: ``x`` one-hot, a float array ``(D, K)`` whose rows are one-hot (position ``i``
  takes value ``argmax x[i]``); `AbstractCategoricalTarget` adds ``change``.

``grad`` is the gradient of the target's continuous extension in the state's own
representation (``(D,)`` or ``(D, K)``): gradient-informed samplers (GWG, DMALA) read
first-order estimates of ``f(x') - f(x)`` from it. The cache is whatever makes ``log_prob`` /
``grad`` / ``flip`` / ``change`` cheap (an Ising or Potts model's local fields, an RBM's
hidden pre-activations); a plain callable ``f(x)`` is wrapped in `zoo.samplers.LogDensity`,
which serves both kinds, with ``(f(x), grad f(x))`` by autodiff as its cache.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree


OneHot = Float[Array, "D K"]


class AbstractDiscreteTarget(eqx.Module):
    """An unnormalised log-density ``f`` on binary ``(D,)`` or one-hot ``(D, K)`` states (one example)."""

    @abc.abstractmethod
    def init(self, x: Array) -> PyTree:
        """The cache at `x`."""

    @abc.abstractmethod
    def log_prob(self, x: Array, cache: PyTree) -> Float[Array, ""]:
        """``f(x)`` (unnormalised log-density), given the cache at `x`."""

    @abc.abstractmethod
    def grad(self, x: Array, cache: PyTree) -> Array:
        """``grad f(x)`` of the continuous extension of `f`, shaped like `x`."""


class AbstractCategoricalTarget(AbstractDiscreteTarget):
    """A log-density on one-hot states ``(D, K)`` with a change-updatable cache."""

    @abc.abstractmethod
    def change(
        self, x: OneHot, cache: PyTree, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array
    ) -> tuple[OneHot, PyTree]:
        """Set position ``idx[k]`` to value ``values[k]`` wherever ``first[k]`` (the first
        occurrence of ``idx[k]`` in `idx`; later occurrences are ignored) and return
        ``(x', cache')``. Callers guarantee that each applied value differs from the
        position's current value (a change, never a no-op)."""

    def change_and_grad(
        self, x: OneHot, cache: PyTree, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array
    ) -> tuple[OneHot, PyTree, OneHot]:
        """`change`, then the gradient at the new point."""
        x_new, cache_new = self.change(x, cache, idx, values, first)
        return x_new, cache_new, self.grad(x_new, cache_new)


def set_values(x: OneHot, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array) -> OneHot:
    """`x` with row ``idx[k]`` set to ``one_hot(values[k])`` wherever ``first[k]``."""
    d, k = x.shape
    rows = jax.nn.one_hot(values, k, dtype=x.dtype)
    return x.at[jnp.where(first, idx, d)].set(rows, mode="drop")


def state_values(x: Array) -> Int[Array, " D"]:
    """The value index of every position: ``x`` itself for a binary state, ``argmax`` of each
    row for a one-hot one."""
    return x.astype(jnp.int32) if x.ndim == 1 else jnp.argmax(x, axis=-1).astype(jnp.int32)


def num_values(x: Array) -> int:
    """``K``: 2 for a binary state ``(D,)``, the row length of a one-hot state ``(D, K)``."""
    if x.ndim == 1:
        return 2
    if x.ndim == 2:
        return x.shape[1]
    raise ValueError(
        f"a discrete state is a binary vector (D,) or a one-hot array (D, K) for one chain, got shape {x.shape}; "
        "pass batched=True to zoo.samplers.run for many chains"
    )


def from_values(x_like: Array, v: Int[Array, " D"]) -> Array:
    """The state of the same kind as `x_like` with value indices `v`."""
    if x_like.ndim == 1:
        return v.astype(x_like.dtype)
    return jax.nn.one_hot(v, x_like.shape[1], dtype=x_like.dtype)
