"""The median-heuristic bandwidth (and the pairwise squared distances it reads, `zoo._distances`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._distances import sq_distances as sq_distances  # re-exported by zoo.kscore
from .._order import kth_smallest


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
