"""Exact expectations and gradients by enumerating all 2^D binary vectors (small D only)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._errors import ConfigError
from ._base import ObjectiveFn


MAX_ENUMERATION_DIM = 20


def all_binary(d: int) -> Float[Array, "2**D D"]:
    """Every binary vector of length ``d`` as a ``(2**d, d)`` float array."""
    if d > MAX_ENUMERATION_DIM:
        raise ConfigError(f"enumerating 2^{d} states is too large; use D <= {MAX_ENUMERATION_DIM}")
    return jnp.asarray(np.array(list(itertools.product([0.0, 1.0], repeat=d)), dtype=np.float32).reshape(-1, d))


def bernoulli_log_prob(b: Float[Array, "... D"], logits: Float[Array, " D"]) -> Float[Array, ...]:
    """``sum_i log Bernoulli(b_i; sigmoid(logits_i))``."""
    logits = jnp.broadcast_to(logits, b.shape)
    return jnp.sum(b * logits - jax.nn.softplus(logits), axis=-1)


def exact_expectation(f: ObjectiveFn, logits: Float[Array, " D"]) -> Float[Array, ""]:
    """``E_{z ~ Bernoulli(sigmoid(logits))}[f(z)]`` by enumeration."""
    z = all_binary(logits.shape[-1])
    return jnp.sum(jnp.exp(bernoulli_log_prob(z, logits)) * jax.vmap(f)(z))


def exact_gradient(f: ObjectiveFn, logits: Float[Array, " D"]) -> Float[Array, " D"]:
    """``d/d logits E[f(z)] = sum_z q(z) f(z) (z - sigmoid(logits))`` by enumeration."""
    z = all_binary(logits.shape[-1])
    q = jnp.exp(bernoulli_log_prob(z, logits))
    fz = jax.lax.stop_gradient(jax.vmap(f)(z))
    return jnp.sum((q * fz)[:, None] * (z - jax.nn.sigmoid(logits)[None, :]), axis=0)
