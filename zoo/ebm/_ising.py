"""Lattice Ising model on {0,1}^D (spins ``s = 2x - 1``), the paper's 2-D sampler benchmark.

``f(x) = 1/2 s^T J s + h^T s`` with a known symmetric coupling ``J`` (zero diagonal). As a
sampler target the cache is the local field ``m = J s``: a flip of spin ``i`` updates it
with one column of ``J``, and ``grad_x f = 2 (m + h)`` costs nothing more.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .. import samplers


class IsingTarget(samplers.AbstractBinaryTarget):
    """An Ising model with dense coupling matrix ``J`` (D x D) and field ``h`` (D)."""

    J: Float[Array, "D D"]
    h: Float[Array, " D"]

    def init(self, x: Float[Array, " D"]) -> Float[Array, " D"]:
        return self.J @ (2 * x - 1)

    def log_prob(self, x, cache):
        s = 2 * x - 1
        return 0.5 * s @ cache + self.h @ s

    def grad(self, x, cache):
        return 2 * (cache + self.h)

    def flip(self, x, cache, idx: Int[Array, " n"], first: Array):
        s_old = 2 * x[idx] - 1
        delta = jnp.where(first, -2 * s_old, 0).astype(self.J.dtype)
        return samplers.flip_indices(x, idx), cache + self.J[:, idx] @ delta

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        return self.log_prob(x, self.init(x))


def lattice_coupling(size: int, *, periodic: bool = True) -> np.ndarray:
    """The ``size**2 x size**2`` adjacency matrix of a 2-D square lattice (a torus if `periodic`)."""
    d = size * size
    a = np.zeros((d, d), np.float32)
    for r in range(size):
        for c in range(size):
            i = r * size + c
            for dr, dc in ((0, 1), (1, 0)):
                rr, cc = r + dr, c + dc
                if not periodic and (rr >= size or cc >= size):
                    continue
                j = (rr % size) * size + (cc % size)
                if i != j:
                    a[i, j] = a[j, i] = 1.0
    return a


def lattice_ising(size: int, coupling: float, bias: float = 0.0, *, periodic: bool = True) -> IsingTarget:
    """A ``size x size`` lattice Ising model with uniform coupling `coupling` and field `bias`
    (the paper samples ``size=20`` over a range of couplings)."""
    J = coupling * lattice_coupling(size, periodic=periodic)
    h = np.full((size * size,), bias, np.float32)
    return IsingTarget(jnp.asarray(J), jnp.asarray(h))
