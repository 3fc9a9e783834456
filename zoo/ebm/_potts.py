"""Potts models on one-hot states ``(D, K)``: scalar couplings on a graph (lattice, Erdos-Renyi)
and dense couplings ``W[D, D, K, K]`` (the GWG paper's protein-contact model family).

`PottsTarget`: ``f(x) = sum_ij J_ij [x_i = x_j] + sum_i b_i . x_i = sum_i x_i . (J x)_i + b . x``
(ordered pairs: an agreeing bond adds ``2 J_ij``). Up to the constant ``sum_ij J_ij / 2`` this is
``1/2 sum_ij J_ij x_i^T (2 I - 1 1^T) x_j + b . x``, so with ``K = 2`` it is the Ising model
``zoo.ebm.IsingTarget(J, .)`` on spins ``2 x - 1``, and the official code's ``LatticePottsModel``
with ``sigma`` is ``J = 2 sigma A``. Cache: the neighbour counts ``m = J x`` ``(D, K)``; a change
of position ``i`` updates them with one column of ``J``, and ``grad f = 2 m + b``.

`DensePottsTarget`: ``f(x) = 1/2 sum_ij x_i^T W_ij x_j + sum_i b_i . x_i`` with ``W_ij = W_ji^T``
and ``W_ii = 0``. Cache: the local fields ``m_i = sum_j W_ij x_j``; ``grad f = m + b``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .. import samplers
from ._ising import lattice_coupling


OneHot = Float[Array, "D K"]


class PottsTarget(samplers.AbstractCategoricalTarget):
    """A Potts model with scalar couplings ``J`` (D x D, symmetric, zero diagonal) and fields ``b`` (D x K)."""

    J: Float[Array, "D D"]
    b: Float[Array, "D K"]

    def init(self, x: OneHot) -> OneHot:
        return self.J @ x

    def log_prob(self, x: OneHot, cache: OneHot) -> Float[Array, ""]:
        return jnp.sum(x * cache) + jnp.sum(self.b * x)

    def grad(self, x: OneHot, cache: OneHot) -> OneHot:
        return 2 * cache + self.b

    def change(self, x, cache, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array):
        delta = (jax.nn.one_hot(values, x.shape[1], dtype=x.dtype) - x[idx]) * first[:, None]
        return samplers.set_values(x, idx, values, first), cache + self.J[:, idx] @ delta

    def __call__(self, x: OneHot) -> Float[Array, ""]:
        return self.log_prob(x, self.init(x))


class DensePottsTarget(samplers.AbstractCategoricalTarget):
    """A Potts model with dense couplings ``W`` (D x D x K x K) and fields ``b`` (D x K)."""

    W: Float[Array, "D D K K"]
    b: Float[Array, "D K"]

    def init(self, x: OneHot) -> OneHot:
        return jnp.einsum("ijkl,jl->ik", self.W, x)

    def log_prob(self, x: OneHot, cache: OneHot) -> Float[Array, ""]:
        return 0.5 * jnp.sum(x * cache) + jnp.sum(self.b * x)

    def grad(self, x: OneHot, cache: OneHot) -> OneHot:
        return cache + self.b

    def change(self, x, cache, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array):
        delta = (jax.nn.one_hot(values, x.shape[1], dtype=x.dtype) - x[idx]) * first[:, None]
        return samplers.set_values(x, idx, values, first), cache + jnp.einsum("jnkl,nl->jk", self.W[:, idx], delta)

    def __call__(self, x: OneHot) -> Float[Array, ""]:
        return self.log_prob(x, self.init(x))


def symmetric_couplings(W: Array) -> Array:
    """``(W + W^T) / 2`` in the ``(i, j, k, l) -> (j, i, l, k)`` sense, with zero ``W_ii`` blocks."""
    W = jnp.asarray(W)
    d = W.shape[0]
    return (W + W.transpose(1, 0, 3, 2)) / 2 * (1 - jnp.eye(d, dtype=W.dtype))[:, :, None, None]


def lattice_potts(
    size: int, num_colors: int, coupling: float, bias: float = 0.0, *, periodic: bool = True
) -> PottsTarget:
    """A ``size x size`` lattice Potts model with `num_colors` colours, uniform coupling
    `coupling` (``J = coupling * adjacency``; a torus if `periodic`) and field `bias` on every
    colour. ``num_colors=2`` is ``lattice_ising(size, coupling)`` on one-hot states (up to a constant)."""
    if num_colors < 2:
        raise ValueError(f"a Potts model needs num_colors >= 2, got {num_colors}")
    J = coupling * lattice_coupling(size, periodic=periodic)
    b = np.full((size * size, num_colors), bias, np.float32)
    return PottsTarget(jnp.asarray(J), jnp.asarray(b))
