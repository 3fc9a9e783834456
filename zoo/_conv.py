"""A 2-D convolution that stays on XLA:CPU's fast path inside loops, gradient included.

Why: XLA:CPU runs a convolution with its fast (Eigen) kernels only in the canonical form
NHWC input, HWIO kernel, NHWC output. Its `ConvCanonicalization` pass rewrites any other form
by inserting transposes, but it walks only the entry computation of a module
(``module->entry_computation()`` in ``xla/service/cpu/conv_canonicalization.cc``). A
convolution inside a `while` body (any `lax.scan`, `fori_loop` or `while_loop`: e.g. a chain
of Gibbs-with-Gradients steps) keeps its form and, if that is not canonical, is emitted as a
naive loop nest, 4-36x slower. Two forms hit it: equinox's NCHW / OIHW convolutions, and the
input gradient of any convolution, whose kernel is flipped with in/out swapped (autodiff folds
that transpose into the dimension labels, kernel ``01oi``). ``scripts/xla_conv_in_loop_repro.py``
is a minimal reproducer; ``scripts/bench_ebm_unroll.py`` measures the ResNet EBM.

So every convolution here is written in the canonical form, and `conv2d` has a custom VJP that
computes the input gradient from an explicitly flipped and transposed kernel held behind
`jax.lax.optimization_barrier`, so XLA cannot fold the transpose back: the same numbers, on
the fast path in loops and out (the fix that belongs upstream: let the pass visit every
computation). The weight gradient is autodiff's. `Conv2d` is a drop-in for `equinox.nn.Conv2d`
(same array leaves ``weight`` (O, I, kh, kw) and ``bias`` (O, 1, 1), so checkpoints load either
way) on one example (C, H, W).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


_DN = ("NHWC", "HWIO", "NHWC")  # the form XLA:CPU runs with its fast kernels
Padding = tuple[tuple[int, int], tuple[int, int]]


def _forward(x: Array, w: Array, stride: tuple[int, int], padding: Padding) -> Array:
    return jax.lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=_DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(
    x: Float[Array, "n h w ci"], w: Float[Array, "kh kw ci co"], stride: tuple[int, int], padding: Padding
) -> Float[Array, "n ho wo co"]:
    """``lax.conv_general_dilated`` on NHWC / HWIO with explicit ``padding`` ((lo, hi) per
    spatial axis); its input gradient is a canonical convolution (see the module doc)."""
    return _forward(x, w, stride, padding)


def _fwd(x: Array, w: Array, stride: tuple[int, int], padding: Padding) -> tuple[Array, tuple[Array, Array]]:
    return _forward(x, w, stride, padding), (x, w)


def _bwd(stride: tuple[int, int], padding: Padding, res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    x, w = res
    # d/dx: a stride-1 convolution of the (stride-)dilated cotangent with the flipped,
    # in/out-swapped kernel, padded so the result has the input's spatial shape.
    wt = jax.lax.optimization_barrier(jnp.flip(jnp.swapaxes(w, 2, 3), (0, 1)))
    pads = []
    for axis in range(2):
        k, s, (lo, hi) = w.shape[axis], stride[axis], padding[axis]
        size = x.shape[1 + axis]
        rest = (size + lo + hi - k) % s  # input rows the forward's last window never reached
        pads.append((k - 1 - lo, k - 1 - hi + rest))
    dx = jax.lax.conv_general_dilated(g, wt, (1, 1), pads, lhs_dilation=stride, dimension_numbers=_DN)
    _, vjp_w = jax.vjp(lambda w_: _forward(x, w_, stride, padding), w)
    (dw,) = vjp_w(g)
    return dx, dw


conv2d.defvjp(_fwd, _bwd)


class Conv2d(eqx.Module):
    """A 2-D convolution on one example (C, H, W) with zero padding; see the module doc."""

    weight: Float[Array, "co ci kh kw"]
    bias: Float[Array, "co 1 1"] | None
    stride: tuple[int, int] = eqx.field(static=True)
    padding: Padding = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        use_bias: bool = True,
        key: PRNGKeyArray,
    ):
        wkey, bkey = jax.random.split(key)
        # equinox.nn.Conv2d's initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        lim = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = jax.random.uniform(wkey, shape, minval=-lim, maxval=lim)
        self.bias = jax.random.uniform(bkey, (out_channels, 1, 1), minval=-lim, maxval=lim) if use_bias else None
        self.stride = (stride, stride)
        self.padding = ((padding, padding), (padding, padding))

    def __call__(self, x: Float[Array, "ci h w"]) -> Float[Array, "co ho wo"]:
        # Computed as NHWC / HWIO (see the module doc); XLA cancels the transposes between layers.
        w = jnp.transpose(self.weight, (2, 3, 1, 0))
        y = conv2d(jnp.transpose(x, (1, 2, 0))[None], w, self.stride, self.padding)[0]
        y = jnp.transpose(y, (2, 0, 1))
        return y if self.bias is None else y + self.bias
