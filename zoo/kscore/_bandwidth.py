"""Pairwise squared distances and the median-heuristic bandwidth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def sq_distances(x: Float[Array, "m d"], y: Float[Array, "n d"]) -> Float[Array, "m n"]:
    """``||x_m - y_n||^2`` as an (m, n) matrix, via ``|x|^2 + |y|^2 - 2 x.y`` (no (m, n, d) tensor)."""
    xx = jnp.sum(x * x, axis=-1)
    yy = jnp.sum(y * y, axis=-1)
    return jnp.maximum(xx[:, None] + yy[None, :] - 2.0 * (x @ y.T), 0.0)


def _upper_median_index_host(d2: np.ndarray) -> np.ndarray:
    d2 = np.asarray(d2)
    flat = d2.ravel()
    k = min(flat.size - flat.size // 2, flat.size - 1)  # one point: its zero self-distance
    return np.asarray(np.unravel_index(np.argpartition(flat, k)[k], d2.shape), np.int32)


def median_heuristic(x: Float[Array, "m d"], y: Float[Array, "n d"] | None = None) -> Float[Array, ""]:
    """The median pairwise Euclidean distance between `x` and `y` (default `y = x`).

    Exactly the order statistic of the official SSGE / kscore code: of all ``m*n`` distances
    (self-distances and both ``(i, j)``, ``(j, i)`` copies included) the one at index
    ``m*n - m*n//2`` in ascending order (the upper median). It is found by an O(m n)
    selection (`numpy.argpartition` through `jax.pure_callback`) on the squared distances
    (the square root is monotone), instead of a top-k over an (m, n, d) difference tensor.
    Not differentiable (the official code stops its gradient too).
    """
    y = x if y is None else y
    d2 = jax.lax.stop_gradient(sq_distances(x, y))
    # The host returns the (row, column) of the order statistic, not its value: an int32 index
    # survives the callback under any x64 setting (a float64 value would be cast to float32 when
    # the callback thread does not see a `jax.enable_x64` context of the caller).
    ij = jax.pure_callback(
        _upper_median_index_host, jax.ShapeDtypeStruct((2,), jnp.int32), d2, vmap_method="sequential"
    )
    return jnp.sqrt(d2[ij[0], ij[1]])
