"""Pairwise squared Euclidean distances, the one home for the kernels' Gram matrices (SVGD, kscore)."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def sq_distances(x: Float[Array, "m d"], y: Float[Array, "n d"] | None = None) -> Float[Array, "m n"]:
    """``||x_i - y_j||^2`` as an (m, n) matrix, via ``|x|^2 + |y|^2 - 2 x.y`` (no (m, n, d) tensor), clipped at 0.

    With `y` omitted, the distances within `x`, with an exact zero diagonal (no rounding residue). Passing
    ``y=x`` keeps the residue, as the official kscore code does."""
    xx = jnp.sum(x * x, axis=-1)
    yy = xx if y is None else jnp.sum(y * y, axis=-1)
    d2 = jnp.maximum(xx[:, None] + yy[None, :] - 2.0 * (x @ (x if y is None else y).T), 0.0)
    if y is None:
        d2 = jnp.where(jnp.eye(x.shape[0], dtype=bool), jnp.zeros_like(d2), d2)
    return d2
