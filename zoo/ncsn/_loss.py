"""Denoising score matching over a ladder of noise levels (Song & Ermon 2019, eq. 5-6).

For x ~ data, a level index i ~ U{0..L-1} and z ~ N(0, I), with x~ = x + sigma_i z,

    loss = mean over the batch of  1/2 * sigma_i^2 * || s(x~, i) + z / sigma_i ||^2,

the sigma^2-weighted (``anneal_power = 2``) objective of ``ermongroup/ncsn`` ``losses/dsm.py``
(target ``-(x~ - x) / sigma^2 = -z / sigma``). It is minimised by the score of the
noised data ``grad log p_sigma_i``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


ScoreFn = Callable[[Float[Array, "..."], Int[Array, ""]], Float[Array, "..."]]


def dsm_terms(
    score_fn: ScoreFn,
    x: Float[Array, "n ..."],
    labels: Int[Array, " n"],
    sigmas: Float[Array, " L"],
    *,
    key: PRNGKeyArray,
) -> Float[Array, " n"]:
    """Per-example sigma^2-weighted DSM ``1/2 sigma^2 ||s(x + sigma z, i) + z/sigma||^2``.

    `score_fn` acts on one example and a level index; it is vmapped here."""
    sigma = sigmas[labels].reshape((-1,) + (1,) * (x.ndim - 1))
    z = jax.random.normal(key, x.shape, x.dtype)
    s = jax.vmap(score_fn)(x + sigma * z, labels)
    r = sigma * s + z  # = sigma * (s - target)
    return 0.5 * jnp.sum(jnp.square(r).reshape(x.shape[0], -1), axis=1)


def dsm_loss(
    score_fn: ScoreFn,
    x: Float[Array, "n ..."],
    sigmas: Float[Array, " L"],
    *,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    """The batch mean of `dsm_terms` with one uniformly drawn level per example."""
    klab, knoise = jax.random.split(key)
    labels = jax.random.randint(klab, (x.shape[0],), 0, sigmas.shape[0])
    return jnp.mean(dsm_terms(score_fn, x, labels, sigmas, key=knoise))
