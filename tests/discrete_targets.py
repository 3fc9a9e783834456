"""Small random discrete log-densities that the binary and categorical sampler tests share."""

import jax


def quadratic(d, key, scale=1.0):
    """A random quadratic (Ising-like) log-density ``x J x + b x`` on binary (d,) states."""
    k1, k2 = jax.random.split(key)
    a = scale * jax.random.normal(k1, (d, d))
    J = (a + a.T) / 2
    b = scale * jax.random.normal(k2, (d,))
    return lambda x: x @ J @ x + b @ x
