"""Pairwise squared distances and the median-heuristic bandwidth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._order import kth_smallest


def sq_distances(x: Float[Array, "m d"], y: Float[Array, "n d"]) -> Float[Array, "m n"]:
    """``||x_m - y_n||^2`` as an (m, n) matrix, via ``|x|^2 + |y|^2 - 2 x.y`` (no (m, n, d) tensor)."""
    xx = jnp.sum(x * x, axis=-1)
    yy = jnp.sum(y * y, axis=-1)
    return jnp.maximum(xx[:, None] + yy[None, :] - 2.0 * (x @ y.T), 0.0)


def median_heuristic(x: Float[Array, "m d"], y: Float[Array, "n d"] | None = None) -> Float[Array, ""]:
    """The median pairwise Euclidean distance between `x` and `y` (default `y = x`).

    Exactly the order statistic of the official SSGE / kscore code: of all ``m*n`` distances
    (self-distances and both ``(i, j)``, ``(j, i)`` copies included) the one at index
    ``m*n - m*n//2`` in ascending order (the upper median). It is found exactly by
    `zoo._order.kth_smallest` on the squared distances (the square root is monotone): no sort,
    no host round trip, jit- and vmap-able. Not differentiable (the official code stops its
    gradient too).
    """
    y = x if y is None else y
    d2 = jax.lax.stop_gradient(sq_distances(x, y))
    n = d2.size
    return jnp.sqrt(kth_smallest(d2, min(n - n // 2, n - 1)))  # one point: its zero self-distance
