"""Threefry draws that XLA:CPU runs as straight-line code: `uniform` and `split`, bit for bit
`jax.random.uniform` and `jax.random.split` for threefry keys (the default); `split_range`, a
slice of `split`'s keys computed without the others (what `zoo.samplers.run` needs to run a
chain in pieces with the keys of one run).

XLA:CPU compiles JAX's threefry hash as a rolled loop of five iterations, several small kernels
each: a few percent of a cheap MCMC step (GWG on a 784x500 RBM) for one draw. Here the same hash
is unrolled (same key, same counters, same bits), so XLA fuses it into its consumers. Keys of other
implementations (``rbg``, ``unsafe_rbg``) and the non-partitionable threefry mode go to `jax.random`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


def _threefry2x32(k1: Array, k2: Array, x1: Array, x2: Array) -> tuple[Array, Array]:
    """The Threefry-2x32 hash (20 rounds), as `jax.random`'s threefry implementation computes it."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (k1, k2, k1 ^ k2 ^ jnp.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << jnp.uint32(r)) | (x2 >> jnp.uint32(32 - r)))
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x1, x2


def _fast(key: PRNGKeyArray) -> bool:
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    impl = str(jax.random.key_impl(key)) if typed else str(jax.config.jax_default_prng_impl)
    return impl in ("threefry2x32", "fry") and bool(jax.config.jax_threefry_partitionable)


def _hash(key: PRNGKeyArray, n: int, start: Array | int = 0) -> tuple[Array, Array]:
    k = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    counters = jnp.asarray(start, jnp.uint32) + jnp.arange(n, dtype=jnp.uint32)
    return _threefry2x32(k[0], k[1], jnp.zeros((n,), jnp.uint32), counters)


def uniform(key: PRNGKeyArray, n: int) -> Float[Array, " n"]:
    """``jax.random.uniform(key, (n,))``, bit for bit, computed by one fusible kernel."""
    if not _fast(key):
        return jax.random.uniform(key, (n,), jnp.float32)
    b1, b2 = _hash(key, n)
    mantissa = ((b1 ^ b2) >> jnp.uint32(9)) | jnp.uint32(0x3F800000)  # a float in [1, 2)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0


def split(key: PRNGKeyArray, n: int) -> PRNGKeyArray:
    """``jax.random.split(key, n)``, bit for bit (typed keys stay typed, raw ``uint32[2]`` keys raw)."""
    return split_range(key, 0, n, n)


def split_range(key: PRNGKeyArray, start: Array | int, length: int, total: int) -> PRNGKeyArray:
    """``jax.random.split(key, total)[start:start + length]``, bit for bit (`start` may be traced): for
    threefry keys, key ``i`` is the hash of counter ``i`` alone, so only these `length` are computed; for
    other implementations all `total` keys are split and sliced."""
    if not _fast(key):
        return jax.lax.dynamic_slice_in_dim(jax.random.split(key, total), start, length)
    data = jnp.stack(_hash(key, length, start), axis=-1)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))
    return data
