"""Dynamic binarization: fresh Bernoulli pixels every time a batch is drawn."""

from __future__ import annotations

from typing import Any


def binarize(x: Any, *, key: Any) -> Any:
    """Sample each pixel from Bernoulli(p = x): a JAX array of 0.s and 1.s, shaped like `x`.

    `x` holds probabilities in [0, 1] (a grey batch from ``load("dynamic_mnist")`` or
    ``load("omniglot")``). The result has `x`'s floating dtype (float32 for integer or
    bool input). Works under `jax.jit`.
    """
    import jax
    import jax.numpy as jnp

    p = jnp.asarray(x)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.float32)
    return jax.random.bernoulli(key, p).astype(p.dtype)
