"""Dense layers and MLPs with Keras' default initialisation (glorot-uniform kernels, zero biases),
as in the official DisARM/RODEO code."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class Dense(eqx.Module):
    """``x @ weight + bias`` with ``weight`` stored as (in, out)."""

    weight: Float[Array, "i o"]
    bias: Float[Array, " o"]

    def __init__(self, in_size: int, out_size: int, *, key: PRNGKeyArray):
        lim = math.sqrt(6.0 / (in_size + out_size))
        self.weight = jax.random.uniform(key, (in_size, out_size), jnp.float32, -lim, lim)
        self.bias = jnp.zeros(out_size, jnp.float32)

    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        return x @ self.weight + self.bias


class MLP(eqx.Module):
    """Dense layers with LeakyReLU between them (none after the last)."""

    layers: tuple[Dense, ...]
    negative_slope: float = eqx.field(static=True)

    def __init__(self, sizes: tuple[int, ...], *, negative_slope: float = 0.3, key: PRNGKeyArray):
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(Dense(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys))
        self.negative_slope = negative_slope

    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        for layer in self.layers[:-1]:
            x = jax.nn.leaky_relu(layer(x), self.negative_slope)
        return self.layers[-1](x)
