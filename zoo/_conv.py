"""A 2-D convolution that stays on XLA:CPU's fast path inside loops, gradients included.

Why: XLA:CPU runs a convolution with its fast kernels only in the canonical form NHWC input,
HWIO kernel, NHWC output. Its `ConvCanonicalization` pass rewrites any other form by inserting
transposes, but it walks only the entry computation of a module (``module->entry_computation()``
in ``xla/service/cpu/conv_canonicalization.cc``). A convolution inside a `while` body (any
`lax.scan`, `fori_loop` or `while_loop`: e.g. a chain of Gibbs-with-Gradients steps) keeps its
form and, if that is not canonical, is emitted as a naive loop nest, 4-36x slower. Two forms hit
it: equinox's NCHW / OIHW convolutions, and the input gradient of any convolution, whose kernel
is flipped with in/out swapped (autodiff folds that transpose into the dimension labels, kernel
``01oi``). ``scripts/xla_conv_in_loop_repro.py`` is a minimal reproducer;
``scripts/bench_ebm_unroll.py`` measures the ResNet EBM.

So every convolution here is written in the canonical form, and `conv2d` has a custom JVP whose
input tangent is written so that its transpose, the input gradient, is canonical too:

- its kernel is the flipped, in/out-swapped one, materialised behind
  `jax.lax.optimization_barrier` (XLA cannot fold the swap back into the labels) and read
  through the swapped labels, so that the transpose reads it as HWIO;
- a strided convolution's input tangent is the sum over the ``s*s`` input phases (strided
  slices) of stride-1 convolutions with the phase's share of the taps: its transpose is
  ``s*s`` small canonical convolutions. Autodiff's own transpose convolves the zero-dilated
  cotangent (``lhs_dilation``), with ``s*s`` times the work, off the fast path;
- with at most `_FEW_CHANNELS` input channels (a first layer), the input tangent is a matmul of
  the shifted slices (im2col): its transpose is one matmul and a sum of shifted slices, where a
  convolution with one output channel runs at a few GFLOP/s.

The weight tangent is the plain convolution, so the weight gradient is autodiff's; being a JVP
rule (not a custom VJP), it is batched before it is transposed: under ``grad(vmap(...))`` (a
training loss) the weight gradient is one convolution over the whole batch, where a custom VJP's
backward pass would be vmapped into per-example weight gradients (a grouped convolution with
batch x channels groups) and then summed. The same numbers up to float rounding, on the fast path
in loops and out (the fix that belongs upstream: let the pass visit every computation).

On x86 CPUs where zoo's oneDNN handlers build (`zoo._onednn`; float32, or bfloat16 where the CPU has
bfloat16 instructions: `zoo._onednn.binds`), `conv2d` binds those instead:
custom calls, which no canonicalisation touches, each lowered per shape to oneDNN's kernel or XLA's,
whichever is the faster here; XLA's input gradient there is the transpose of the same canonical
`input_tangent`, so it keeps the fast path in loops too.

`Conv2d` is a drop-in for `equinox.nn.Conv2d` (same array leaves ``weight`` (O, I, kh, kw) and
``bias`` (O, 1, 1), so checkpoints load either way) on one example (C, H, W), and `Conv2d.hwc`
the same convolution on a channels-last example (H, W, C), for networks that keep their
activations channels-last (XLA:CPU does not cancel the transposes between layers).

Threads and kernels: XLA:CPU (jaxlib 0.10) hands convolutions (and dots, reductions and elementwise
ops) to its YNNPACK library fusions by default. For convolutional networks on this CPU that is the slow
choice, in loops and out: inside a `while` body (every `lax.scan`: a chain of GWG or Langevin steps) the
YNNPACK fusions run on one thread (per-thread CPU time: one busy thread), and outside loops its
convolutions reach 20-90 GFLOP/s where XLA's own (Eigen) convolution keeps both cores near the matmul
roof. `conv_compiler_options` are the compiler options that keep the YNNPACK fusions to reductions, for
the `jax.jit` of a program that runs a convolutional network: `AbstractModel.compiler_options()` returns them
for families marked ``convolutional`` (`zoo.fit`, `zoo.samplers.run` and `zoo.batch_map` take them), and
the FID network compiles with them. Measured on 2 cores, interleaved in one process or as A/B runs of the
same script: a GWG step of the 64-channel ResNet EBM on 100 chains 221 -> 118 ms, its PCD update
(40 steps) 8.6 -> 4.7 s; the FID Inception-v3 on 50 images 6.9 -> 16.2 img/s (``scripts/bench_fid.py``);
an NCSN (ngf 64, MNIST) training step of 32 images 4.80 -> 2.81 s, a Langevin step of 16 images 0.96 ->
0.84 s (``scripts/bench_ncsn.py``). The same numbers up to float rounding (another kernel's summation
order). Not for matmul-only programs: GWG on a 784x500 RBM runs 1547 steps/s with YNNPACK, 1001 without.

Reductions are the exception: XLA's own loop emitter sums over the spatial axes of a channels-last
tensor (an instance norm's per-channel mean and variance, and their gradients) one strided scalar at
a time, where YNNPACK's reductions are vectorised, so `conv_compiler_options` give YNNPACK reductions
and nothing else (``LIBRARY_FUSION_TYPE_REDUCE``). Measured side by side with all of YNNPACK off
(``--ynn-off`` of ``scripts/bench_ncsn.py`` and ``scripts/bench_fid.py``, interleaved rounds, 2
cores): the NCSN MNIST (ngf 64) training step 1.19x, its Langevin step 1.09x, the CIFAR-10 (ngf 128)
training and Langevin steps 1.03x, the FID network 1.08x (cards/ncsn-bench.md, "Stop 22").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Float, PRNGKeyArray

from . import _onednn


_DN = ("NHWC", "HWIO", "NHWC")  # the form XLA:CPU runs with its fast kernels
_DN_SWAPPED = ("NHWC", "HWOI", "NHWC")  # its transpose reads the kernel as HWIO
_FEW_CHANNELS = 4  # input tangents with at most this many channels: a matmul, not a convolution
Padding = tuple[tuple[int, int], tuple[int, int]]


def _forward(x: Array, w: Array, stride: tuple[int, int], padding: Padding) -> Array:
    return jax.lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=_DN)


def conv2d(
    x: Float[Array, "n h w ci"], w: Float[Array, "kh kw ci co"], stride: tuple[int, int], padding: Padding
) -> Float[Array, "n ho wo co"]:
    """``lax.conv_general_dilated`` on NHWC / HWIO with explicit ``padding`` ((lo, hi) per
    spatial axis). Where `zoo._onednn.binds` says so (float32 on x86 CPUs; bfloat16 where the CPU has
    bfloat16 instructions), each convolution and gradient runs on whichever of oneDNN's or XLA's kernels is
    the faster for its shapes (XLA's then in the canonical forms below); elsewhere on XLA's, with an input
    gradient of canonical convolutions (see the module doc)."""
    if _onednn.binds(x, w):
        return _onednn.conv(x, w, stride=stride, padding=padding)
    return _conv2d_xla(x, w, stride, padding)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _conv2d_xla(
    x: Float[Array, "n h w ci"], w: Float[Array, "kh kw ci co"], stride: tuple[int, int], padding: Padding
) -> Float[Array, "n ho wo co"]:
    return _forward(x, w, stride, padding)


def _phases(k: int, s: int, lo: int, size: int, n_out: int) -> list[tuple[int, list[int], tuple[int, int]]]:
    """The input gradient along one spatial axis, split by input phase ``a`` (rows ``s p + a``).

    The forward reads ``x[s i + j - lo]`` with tap ``j``, so input row ``s p + a`` receives the
    taps ``j = j0, j0 + s, ...`` (``j0 = (a + lo) mod s``) from output rows ``p + c - t``
    (``c = (a + lo - j0) / s``): a stride-1 correlation of the cotangent with those taps in
    reverse order. Per phase that any tap reaches: ``(a, taps, (pad_lo, pad_hi))``."""
    out = []
    for a in range(min(s, size)):
        j0 = (a + lo) % s
        taps = list(range(j0, k, s))[::-1]
        if taps:
            rows = len(range(a, size, s))
            c = (a + lo - j0) // s
            out.append((a, taps, (len(taps) - 1 - c, rows - 1 + c - (n_out - 1))))
    return out


def _taps(taps: list[int]) -> slice:
    """The descending, evenly spaced kernel indices `taps` as a slice."""
    step = taps[1] - taps[0] if len(taps) > 1 else -1
    stop = taps[-1] + step
    return slice(taps[0], None if stop < 0 else stop, step)


def input_tangent(dx: Array, w: Array, stride: tuple[int, int], padding: Padding) -> Array:
    """``_forward(dx, w)``, linear in `dx`, written so that its transpose is fast (module doc).

    The transpose computes the input gradient phase by phase: for input phase (a, b) (the rows
    ``s p + a``, columns ``s q + b``), a stride-1 canonical convolution of the cotangent with the
    phase's taps, flipped and in/out-swapped (`_phases`), then the phases interleaved. So the
    tangent is, per phase, the adjoint of that convolution applied to the strided slice
    ``dx[a::s, b::s]``: a convolution through the swapped labels, whose transpose reads the
    materialised kernel as HWIO."""
    kh, kw, ci, co = w.shape
    if ci <= _FEW_CHANNELS:
        return _im2col(dx, w, stride, padding)
    n, h, wd, _ = dx.shape
    ho = (h + sum(padding[0]) - kh) // stride[0] + 1
    wo = (wd + sum(padding[1]) - kw) // stride[1] + 1
    wt = jnp.swapaxes(w, 2, 3)  # (kh, kw, co, ci)
    out = None
    for a, ta, pa in _phases(kh, stride[0], padding[0][0], h, ho):
        for b, tb, pb in _phases(kw, stride[1], padding[1][0], wd, wo):
            # The input gradient's kernel for this phase, materialised: XLA cannot fold the
            # flip and swap back into the dimension labels.
            k = jax.lax.optimization_barrier(wt[_taps(ta)][:, _taps(tb)])
            phase = dx[:, a :: stride[0], b :: stride[1]]
            pads = [(len(ta) - 1 - pa[0], len(ta) - 1 - pa[1]), (len(tb) - 1 - pb[0], len(tb) - 1 - pb[1])]
            crop = [(min(lo, 0), min(hi, 0)) for lo, hi in pads]
            if any(lo or hi for lo, hi in crop):
                phase = jax.lax.pad(phase, jnp.zeros((), phase.dtype), [(0, 0, 0), *[(lo, hi, 0) for lo, hi in crop],
                                                                       (0, 0, 0)])
            part = jax.lax.conv_general_dilated(phase, jnp.flip(k, (0, 1)), (1, 1),
                                                [(max(lo, 0), max(hi, 0)) for lo, hi in pads],
                                                dimension_numbers=_DN_SWAPPED)
            out = part if out is None else out + part
    if out is None:  # no tap reaches any input (cannot happen for a valid convolution)
        out = jnp.zeros((n, ho, wo, co), dx.dtype)
    return out


def _im2col(dx: Array, w: Array, stride: tuple[int, int], padding: Padding) -> Array:
    """``_forward(dx, w)`` as the matmul of every tap's shifted (strided) slice with the kernel:
    its transpose is one matmul and a sum of shifted slices."""
    kh, kw, ci, co = w.shape
    n, h, wd, _ = dx.shape
    (lo0, hi0), (lo1, hi1) = padding
    ho = (h + lo0 + hi0 - kh) // stride[0] + 1
    wo = (wd + lo1 + hi1 - kw) // stride[1] + 1
    xp = jnp.pad(dx, ((0, 0), (lo0, hi0), (lo1, hi1), (0, 0)))
    cols = [
        xp[:, i : i + stride[0] * (ho - 1) + 1 : stride[0], j : j + stride[1] * (wo - 1) + 1 : stride[1]]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1)  # (n, ho, wo, kh * kw * ci), tap-major as w's rows
    return jnp.dot(patches.reshape(-1, kh * kw * ci), w.reshape(kh * kw * ci, co)).reshape(n, ho, wo, co)


@functools.partial(_conv2d_xla.defjvp, symbolic_zeros=True)
def _conv2d_jvp(
    stride: tuple[int, int], padding: Padding, primals: tuple[Array, Array], tangents: tuple[Array, Array]
) -> tuple[Array, Array]:
    x, w = primals
    dx, dw = tangents
    y = _forward(x, w, stride, padding)
    parts = []
    if not isinstance(dx, SymbolicZero):
        parts.append(input_tangent(dx, w, stride, padding))
    if not isinstance(dw, SymbolicZero):
        parts.append(_forward(x, dw, stride, padding))
    dy = functools.reduce(jnp.add, parts) if parts else jnp.zeros_like(y)
    return y, dy


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
        return jnp.transpose(self.hwc(jnp.transpose(x, (1, 2, 0))), (2, 0, 1))

    def hwc(self, x: Float[Array, "h w ci"]) -> Float[Array, "ho wo co"]:
        """The same convolution on a channels-last example (H, W, C), for a network that keeps its
        activations channels-last: no transposes between layers (each one a copy on XLA:CPU)."""
        w = jnp.transpose(self.weight, (2, 3, 1, 0))
        y = conv2d(x[None], w, self.stride, self.padding)[0]
        return y if self.bias is None else y + self.bias.reshape(1, 1, -1)


# XLA:CPU's list of op kinds it gives to YNNPACK (DebugOptions.LibraryFusionType, xla/xla.proto); empty: none.
_YNN_FUSION_TYPES = "xla_cpu_experimental_ynn_fusion_type"
_YNN_REDUCTIONS = "LIBRARY_FUSION_TYPE_REDUCE"
# The compiler options with all of YNNPACK off: `conv_compiler_options`' fallback, and the benchmarks' baseline
# (their ``--ynn-off`` rows). Items, as `conv_compiler_options` returns them.
YNNPACK_OFF: tuple[tuple[str, Any], ...] = ((_YNN_FUSION_TYPES, ""),)


@functools.cache
def conv_compiler_options() -> tuple[tuple[str, Any], ...]:
    """``jax.jit(..., compiler_options=dict(conv_compiler_options()))`` for a program that runs a
    convolutional network: on the CPU backend, XLA's YNNPACK fusions for reductions only, so that its
    convolutions, matmuls and elementwise ops run on XLA's own multi-threaded kernels, in loops and out,
    and its reductions on YNNPACK's vectorised ones (module doc); with an XLA that does not know that
    fusion type, YNNPACK off; elsewhere, or with an XLA that knows neither, none. A tuple of items,
    hashable for caches."""
    if jax.default_backend() != "cpu":
        return ()
    for options in ({_YNN_FUSION_TYPES: _YNN_REDUCTIONS}, dict(YNNPACK_OFF)):
        try:  # an older jaxlib rejects an option (or a value) it does not know, at compile time
            jax.jit(lambda x: x + 1, compiler_options=options).lower(jnp.zeros((), jnp.float32)).compile()
        except Exception:  # noqa: BLE001 - any rejection means: try the next, then XLA's defaults
            continue
        return tuple(options.items())
    return ()


def filter_jit_with(fn: Callable[..., Any], compiler_options: Mapping[str, Any] | None) -> Callable[..., Any]:
    """``eqx.filter_jit(fn, compiler_options=...)``, one per (module-level `fn`, options): the jitted
    function is kept, so its compilation cache is too."""
    return _filter_jit_cached(fn, tuple(sorted((compiler_options or {}).items())))


@functools.cache
def _filter_jit_cached(fn: Callable[..., Any], options: tuple[tuple[str, Any], ...]) -> Callable[..., Any]:
    return eqx.filter_jit(fn, compiler_options=dict(options) or None)


def jit_options(model: Any) -> dict[str, Any] | None:
    """``compiler_options`` for a `jax.jit` / `eqx.filter_jit` around `model`: its ``compiler_options()``
    (an `AbstractModel`'s; `conv_compiler_options` for a convolutional family), ``None`` for none."""
    get = getattr(model, "compiler_options", None)
    return (dict(get()) or None) if callable(get) else None
