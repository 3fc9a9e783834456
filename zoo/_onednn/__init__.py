"""2-D convolutions on oneDNN's kernels inside XLA:CPU programs.

Why: on x86 CPUs XLA:CPU runs convolutions with Eigen's kernels, which are slower than oneDNN's (the
kernels PyTorch runs): NCSN's training and Langevin steps and the deep EBM's PCD step gain from them
(measured side by side with the official PyTorch code and with XLA's convolutions: cards/ncsn-bench.md, "Stop 19";
cards/ebm-bench.md, "Stop 21"; `zoo._conv.conv2d`, the EBM's, binds them where `binds` says). jaxlib's CPU
wheel builds no oneDNN in, so zoo brings its own: three XLA FFI handlers (``conv.cc``: forward, input
gradient, weight gradient; float32 or bfloat16, NHWC / HWIO) compiled once per machine (`zoo._onednn._build`),
bound as three JAX primitives, each lowered to oneDNN's kernel or XLA's per shape, whichever is the faster
here (timed once per machine: `zoo._onednn._choice`). Each is bilinear in its two operands, with the other two as its
transposes (as `lax.conv_general_dilated` is defined), so `jax.grad`, `jax.jvp`, higher derivatives,
`jax.vmap` (batched activations fold into the batch axis, so ``grad(vmap(...))`` computes one weight
gradient over the whole batch), `jit` and loops all work. In bfloat16 oneDNN accumulates in float32
and runs AMX or AVX512-BF16 instructions where the CPU has them (Sapphire Rapids and later: several
times the float32 rate), where XLA:CPU's bfloat16 convolutions are slower than its float32 ones (on
CPUs without them bfloat16 stays on XLA's kernels). Elsewhere (other dtypes, GPU, batched kernels,
no compiler or oneDNN, ``ZOO_ONEDNN=0``, inside `xla_kernels`) `conv` is
`lax.conv_general_dilated`: the same numbers up to float rounding (another summation order).
Programs over several devices (`zoo.fit` on a mesh, `zoo.samplers.run` with a sharding) trace with
XLA's kernels: GSPMD partitions those, where it would replicate the custom calls on every device.
The same library holds NCSN's CondInstanceNorm++ (+ ELU), forward and backward fused into one pass over memory
(``cin.cc``, `zoo._onednn._cin`); its handlers and the convolutions' run one at a time (``common.h``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array, Float

from ._build import load
from ._choice import native_bfloat16, prefer_onednn


__all__ = ["available", "binds", "conv", "xla_kernels"]

_DN = ("NHWC", "HWIO", "NHWC")
_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))  # what conv.cc's handlers take
Pair = tuple[int, int]
Padding = tuple[Pair, Pair]


_XLA_ONLY = [0]  # > 0 inside `xla_kernels`


def available() -> bool:
    """Whether `conv` runs on oneDNN here (builds the handlers on first call)."""
    return not _XLA_ONLY[0] and jax.default_backend() == "cpu" and load() is not None


@contextlib.contextmanager
def xla_kernels() -> Iterator[None]:
    """Within this context `conv` traces to XLA's convolution: for side-by-side timings (the benchmarks)
    and XLA's FLOP counts. Programs traced inside keep XLA's kernels when run later."""
    _XLA_ONLY[0] += 1
    try:
        yield
    finally:
        _XLA_ONLY[0] -= 1


def conv(
    x: Float[Array, "n h w ci"],
    w: Float[Array, "kh kw ci co"],
    *,
    stride: Pair = (1, 1),
    padding: Padding = ((0, 0), (0, 0)),
    dilation: Pair = (1, 1),
) -> Float[Array, "n ho wo co"]:
    """``lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation)`` on NHWC / HWIO.

    Where `available` and both operands are float32, or both bfloat16 on a CPU with bfloat16 instructions
    (`native_bfloat16`), it binds zoo's primitive, whose CPU lowering
    (and its gradients') runs oneDNN's kernel or XLA's, whichever is faster for its final shapes on
    this machine (`zoo._onednn._choice`); elsewhere it is `lax.conv_general_dilated` itself."""
    params = _params(stride, padding, dilation)
    if binds(x, w):
        return conv_p.bind(x, w, **params)
    return _xla_conv(x, w, **params)


def binds(x: Array, w: Array) -> bool:
    """Whether `conv` binds zoo's primitive for these operands (else it is `lax.conv_general_dilated`): both
    float32, or both bfloat16 on a CPU with bfloat16 instructions, where `available`."""
    native = x.dtype == jnp.float32 or native_bfloat16()
    return x.dtype == w.dtype and x.dtype in _DTYPES and native and available()


def _params(stride: Any, padding: Any, dilation: Any) -> dict[str, Any]:
    return dict(
        stride=tuple(int(s) for s in stride),
        padding=tuple((int(lo), int(hi)) for lo, hi in padding),
        dilation=tuple(int(d) for d in dilation),
    )


# -- the same operations on XLA's kernels: other platforms, batched kernels, references -----------
def _xla_conv(x, w, *, stride, padding, dilation):
    return jax.lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation, dimension_numbers=_DN)


def _xla_dgrad(dy, w, *, input_hw, stride, padding, dilation):
    x = jax.ShapeDtypeStruct(dy.shape[:1] + tuple(input_hw) + w.shape[2:3], dy.dtype)
    if dilation == (1, 1):
        # The transpose of zoo._conv's input tangent: canonical convolutions, which XLA:CPU runs on its fast
        # kernels inside loops too (a GWG chain's input gradients), where autodiff's own transpose is a naive
        # loop nest there (zoo/_conv.py).
        from .._conv import input_tangent

        fwd = functools.partial(input_tangent, w=w, stride=stride, padding=padding)
    else:
        fwd = functools.partial(_xla_conv, w=w, stride=stride, padding=padding, dilation=dilation)
    return jax.linear_transpose(fwd, x)(dy)[0]


def _xla_wgrad(x, dy, *, kernel_hw, stride, padding, dilation):
    w = jax.ShapeDtypeStruct(tuple(kernel_hw) + (x.shape[3], dy.shape[3]), dy.dtype)
    fwd = functools.partial(_xla_conv, x, stride=stride, padding=padding, dilation=dilation)
    return jax.linear_transpose(fwd, w)(dy)[0]


# -- shapes ----------------------------------------------------------------------------------------
def _out_hw(h: int, w: int, kh: int, kw: int, stride, padding, dilation) -> Pair:
    def one(n, k, s, pad, d):
        return (n + pad[0] + pad[1] - d * (k - 1) - 1) // s + 1

    return one(h, kh, stride[0], padding[0], dilation[0]), one(w, kw, stride[1], padding[1], dilation[1])


def _conv_shape(x, w, *, stride, padding, dilation):
    oh, ow = _out_hw(x.shape[1], x.shape[2], w.shape[0], w.shape[1], stride, padding, dilation)
    return jax.core.ShapedArray((x.shape[0], oh, ow, w.shape[3]), x.dtype)


def _dgrad_shape(dy, w, *, input_hw, **_):
    return jax.core.ShapedArray((dy.shape[0], *input_hw, w.shape[2]), dy.dtype)


def _wgrad_shape(x, dy, *, kernel_hw, **_):
    return jax.core.ShapedArray((*kernel_hw, x.shape[3], dy.shape[3]), dy.dtype)


# -- the primitives ----------------------------------------------------------------------------------
def _attrs(stride, padding, dilation, **_) -> dict[str, np.int64]:
    (pt, pb), (pl, pr) = padding
    attrs = dict(stride_h=stride[0], stride_w=stride[1], dilation_h=dilation[0], dilation_w=dilation[1],
                 pad_top=pt, pad_bottom=pb, pad_left=pl, pad_right=pr)  # fmt: skip
    return {k: np.int64(v) for k, v in attrs.items()}


def _primitive(name: str, shape, reference, target: str) -> Primitive:
    p = Primitive(name)
    p.def_abstract_eval(shape)
    p.def_impl(lambda a, b, **params: jax.jit(functools.partial(p.bind, **params))(a, b))
    xla_rule = mlir.lower_fun(reference, multiple_results=False)
    mlir.register_lowering(p, xla_rule)  # any platform
    ffi_rule = jax.ffi.ffi_lowering(target)

    def cpu_rule(ctx, a, b, **params):
        # The shapes are final here (after vmap folded batches in): oneDNN's kernel where it is the faster one
        # for them on this machine (`zoo._onednn._choice`), else XLA's.
        if prefer_onednn(target, shape, reference, ctx.avals_in, params):
            return ffi_rule(ctx, a, b, **_attrs(**params))
        return xla_rule(ctx, a, b, **params)

    mlir.register_lowering(p, cpu_rule, platform="cpu")
    return p


conv_p = _primitive("zoo_onednn_conv", _conv_shape, _xla_conv, "zoo_onednn_conv_fwd")
dgrad_p = _primitive("zoo_onednn_conv_dgrad", _dgrad_shape, _xla_dgrad, "zoo_onednn_conv_dgrad")
wgrad_p = _primitive("zoo_onednn_conv_wgrad", _wgrad_shape, _xla_wgrad, "zoo_onednn_conv_wgrad")


def _shape(v) -> tuple[int, ...]:
    return getattr(v, "aval", v).shape  # the transposed operand is an undefined primal: its aval


def _geom(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in ("stride", "padding", "dilation")}


def _wgrad(x, dy, **params):
    """The weight gradient; in bfloat16 from float32 copies of its operands (exact: a bfloat16 value is a
    float32 one), where oneDNN's float32 kernel is the faster: its bfloat16 (AMX) weight-gradient kernel runs
    5-10x slower inside a program than alone (the NCSN CIFAR-10 training step: 12.6 s with it, 6.6 s without,
    cards/ncsn-bench.md)."""
    if x.dtype == jnp.bfloat16:
        f32 = jnp.float32
        return wgrad_p.bind(x.astype(f32), dy.astype(f32), **params).astype(x.dtype)
    return wgrad_p.bind(x, dy, **params)


# y = conv(x, w): bilinear; its transposes are the two gradients.
ad.defbilinear(
    conv_p,
    lambda ct, x, w, **p: dgrad_p.bind(ct, w, input_hw=_shape(x)[1:3], **_geom(p)),
    lambda ct, x, w, **p: _wgrad(x, ct, kernel_hw=_shape(w)[:2], **_geom(p)),
)
# dx = dgrad(dy, w): transposes conv(ct, w) (for dy) and wgrad(ct, dy) (for w).
ad.defbilinear(
    dgrad_p,
    lambda ct, dy, w, **p: conv_p.bind(ct, w, **_geom(p)),
    lambda ct, dy, w, **p: wgrad_p.bind(ct, dy, kernel_hw=_shape(w)[:2], **_geom(p)),
)
# dw = wgrad(x, dy): transposes dgrad(dy, ct) (for x) and conv(x, ct) (for dy).
ad.defbilinear(
    wgrad_p,
    lambda ct, x, dy, **p: dgrad_p.bind(dy, ct, input_hw=_shape(x)[1:3], **_geom(p)),
    lambda ct, x, dy, **p: conv_p.bind(x, ct, **_geom(p)),
)


def _batch_activations(prim: Primitive, reference):
    """Batching rule: a batched activation operand with an unbatched kernel folds the new axis
    into the batch axis (one call); anything else runs the XLA reference under `jax.vmap`."""

    def rule(args, dims, **params):
        (a, b), (da, db) = args, dims  # a dim is None where that operand is not batched
        if prim is not wgrad_p and db is None:
            a = jnp.moveaxis(a, da, 0)
            out = prim.bind(a.reshape((-1,) + a.shape[2:]), b, **params)
            return out.reshape(a.shape[:2] + out.shape[1:]), 0
        size = a.shape[da] if da is not None else b.shape[db]
        a, b = (jnp.moveaxis(v, d, 0) if d is not None else jnp.broadcast_to(v, (size,) + v.shape)
                for v, d in ((a, da), (b, db)))  # fmt: skip
        return jax.vmap(functools.partial(reference, **params))(a, b), 0

    batching.primitive_batchers[prim] = rule


_batch_activations(conv_p, _xla_conv)
_batch_activations(dgrad_p, _xla_dgrad)
_batch_activations(wgrad_p, _xla_wgrad)
