"""Sliced score matching (Song, Garg, Shi & Ermon, UAI 2019), plain and annealed over a noise ladder.

Hyvarinen's score-matching objective of a score model ``s`` on data ``x ~ q``,
``J(s) = E_q[ tr grad s(x) + 1/2 ||s(x)||^2 ]``, equals ``1/2 E_q ||s - grad log q||^2`` up to a
constant, but its trace costs d backward passes. Sliced score matching replaces the trace by random
projections ``v`` with ``E[v v^T] = I`` (standard Gaussian or Rademacher):

* SSM:    ``E_v[ v^T grad s(x) v + 1/2 (v^T s(x))^2 ]``,
* SSM-VR: ``E_v[ v^T grad s(x) v ] + 1/2 ||s(x)||^2`` (the second term exactly: less variance),

both unbiased for ``J`` per example. ``v^T grad s(x) v`` is one vector-Jacobian product (reverse mode,
as the official code, so that networks with custom VJPs work; `jax.vjp` shares the forward pass
between the projections). Averaging over ``num_projections`` projections is the official code's
``n_particles``.

Annealed SSM (``anneal_sliced_score_estimation_vr`` of ermongroup/ncsn ``losses/sliced_sm.py``, the
``algo: 'ssm'`` option next to DSM): perturb ``x~ = x + sigma_i z`` and weight SSM-VR on ``s(., i)``
at ``x~`` by ``sigma_i^2``; its minimiser is the score of the noised data, as for DSM (the official
code draws Gaussian projections, despite its comment).

Score functions act on one example (of any shape; projections have its shape) and are vmapped here.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


PROJECTIONS = ("gaussian", "rademacher")


def check_projection(projection: str) -> None:
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown SSM projection {projection!r}; use one of {PROJECTIONS}")


def projections(
    shape: tuple[int, ...], num: int, projection: str = "gaussian", *, key: PRNGKeyArray, dtype=jnp.float32
) -> Float[Array, "num ..."]:
    """`num` random directions of `shape` with ``E[v v^T] = I``: standard Gaussian or Rademacher."""
    check_projection(projection)
    if projection == "rademacher":
        return jax.random.rademacher(key, (num, *shape), dtype)
    return jax.random.normal(key, (num, *shape), dtype)


def ssm_example(
    score_fn: Callable[[Array], Array],
    x: Float[Array, ...],
    *,
    key: PRNGKeyArray,
    num_projections: int = 1,
    projection: str = "gaussian",
    variance_reduction: bool = True,
) -> Float[Array, ""]:
    """The sliced score-matching objective of `score_fn` at one example `x` (SSM-VR by default)."""
    v = projections(x.shape, num_projections, projection, key=key, dtype=x.dtype)
    s, vjp = jax.vjp(score_fn, x)
    (jv,) = jax.vmap(vjp)(v)  # v^T grad s: v^T grad s v is the same scalar
    vjv = jnp.sum((v * jv).reshape(num_projections, -1), axis=1)
    if variance_reduction:
        return jnp.mean(vjv) + 0.5 * jnp.sum(s * s)
    vs = jnp.sum((v * s[None]).reshape(num_projections, -1), axis=1)
    return jnp.mean(vjv + 0.5 * vs * vs)


def ssm_terms(
    score_fn: Callable[[Array], Array],
    x: Float[Array, "n ..."],
    *,
    key: PRNGKeyArray,
    num_projections: int = 1,
    projection: str = "gaussian",
    variance_reduction: bool = True,
) -> Float[Array, " n"]:
    """`ssm_example` for each example of the batch `x` (independent projections per example)."""
    check_projection(projection)
    if num_projections < 1:
        raise ValueError(f"num_projections must be >= 1, got {num_projections}")
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(
        lambda xi, k: ssm_example(
            score_fn, xi, key=k, num_projections=num_projections, projection=projection,
            variance_reduction=variance_reduction,
        )
    )(x, keys)


def ssm_loss(
    score_fn: Callable[[Array], Array],
    x: Float[Array, "n ..."],
    *,
    key: PRNGKeyArray,
    num_projections: int = 1,
    projection: str = "gaussian",
    variance_reduction: bool = True,
) -> Float[Array, ""]:
    """The batch mean of `ssm_terms`: an unbiased estimate of Hyvarinen's objective ``J(s)``."""
    return jnp.mean(
        ssm_terms(
            score_fn, x, key=key, num_projections=num_projections, projection=projection,
            variance_reduction=variance_reduction,
        )
    )


def anneal_ssm_terms(
    score_fn: Callable[[Array, Int[Array, ""]], Array],
    x: Float[Array, "n ..."],
    labels: Int[Array, " n"],
    sigmas: Float[Array, " L"],
    *,
    key: PRNGKeyArray,
    num_projections: int = 1,
    projection: str = "gaussian",
) -> Float[Array, " n"]:
    """Per-example ``sigma_i^2 [ 1/2 ||s(x~, i)||^2 + mean_v v^T grad s(x~, i) v ]`` at
    ``x~ = x + sigma_i z`` (annealed SSM-VR; the signature of `zoo.ncsn.dsm_terms`)."""
    kz, kv = jax.random.split(key)
    sigma = sigmas[labels]
    noisy = x + sigma.reshape((-1,) + (1,) * (x.ndim - 1)) * jax.random.normal(kz, x.shape, x.dtype)
    keys = jax.random.split(kv, x.shape[0])
    terms = jax.vmap(
        lambda xi, i, k: ssm_example(
            lambda y: score_fn(y, i), xi, key=k, num_projections=num_projections, projection=projection
        )
    )(noisy, labels, keys)
    return sigma * sigma * terms


def anneal_ssm_loss(
    score_fn: Callable[[Array, Int[Array, ""]], Array],
    x: Float[Array, "n ..."],
    sigmas: Float[Array, " L"],
    *,
    key: PRNGKeyArray,
    num_projections: int = 1,
    projection: str = "gaussian",
) -> Float[Array, ""]:
    """The batch mean of `anneal_ssm_terms` with one uniformly drawn level per example (`dsm_loss`'s
    level distribution)."""
    check_projection(projection)
    klab, kterms = jax.random.split(key)
    labels = jax.random.randint(klab, (x.shape[0],), 0, sigmas.shape[0])
    return jnp.mean(
        anneal_ssm_terms(
            score_fn, x, labels, sigmas, key=kterms, num_projections=num_projections, projection=projection
        )
    )
