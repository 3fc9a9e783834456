"""The noise-conditional score network of NCSN: a dilated RefineNet with CondInstanceNorm++.

Everything works on ONE example in NHWC layout, ``(H, W, C)``; batch with `jax.vmap`
(the convolutions' batching rule folds the mapped axis into the convolution's batch,
so a vmapped call is one NHWC convolution per layer).

Follows ``ermongroup/ncsn`` ``models/cond_refinenet_dilated.py::CondRefineNetDilated``
layer for layer (see the reference notes), including its details:

* CondInstanceNorm++: ``gamma * (x_hat + alpha * mu_tilde) + beta``, with the
  instance norm's own variance biased and the variance of the channel means unbiased;
  gamma and alpha start at N(1, 0.02), beta at 0; one (gamma, alpha, beta) per noise level.
* The refine blocks' "max pool" is a 5x5 average pool, stride 1, zero padding counted.
* Input ``x`` in [0, 1] is mapped to ``2x - 1`` inside the network.

With ``num_classes=None`` the norms are unconditional (InstanceNorm++, the NCSNv2
variant) and the network ignores the level index; the caller divides by sigma.
"""

from __future__ import annotations

import functools
import math
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import _onednn
from .._onednn import _cin
from .._rows import take_row


_N = TypeVar("_N")


def _elu(x: Array) -> Array:
    return jax.nn.elu(x)


class Conv2d(eqx.Module):
    """A 2-D convolution on one (H, W, C) image; HWIO kernel, 'same' padding by dilation.

    It computes in its kernel's dtype: a bfloat16 kernel (`conv_weights_as`) rounds the input
    to bfloat16 and returns the result in the input's dtype (float32 accumulation in between)."""

    weight: Float[Array, "kh kw cin cout"]
    bias: Float[Array, " cout"] | None
    dilation: int = eqx.field(static=True)

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, bias: bool = True, dilation: int = 1,
                 key: PRNGKeyArray):
        # PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        wkey, bkey = jax.random.split(key)
        bound = 1.0 / math.sqrt(cin * kernel * kernel)
        self.weight = jax.random.uniform(wkey, (kernel, kernel, cin, cout), minval=-bound, maxval=bound)
        self.bias = jax.random.uniform(bkey, (cout,), minval=-bound, maxval=bound) if bias else None
        self.dilation = dilation

    def __call__(self, x: Float[Array, "h w cin"]) -> Float[Array, "h w cout"]:
        k = self.weight.shape[0]
        pad = self.dilation * (k - 1) // 2
        # oneDNN's kernels on CPU where they are available (`zoo._onednn`), else XLA's
        d = self.dilation
        xw = x[None].astype(self.weight.dtype)
        y = _onednn.conv(xw, self.weight, padding=((pad, pad), (pad, pad)), dilation=(d, d))[0].astype(x.dtype)
        if self.bias is not None:
            y = y + self.bias.reshape(1, 1, -1)
        return y


def conv_weights_as(net: _N, dtype: Any) -> _N:
    """`net` with every `Conv2d` kernel cast to `dtype` (biases and all else as they are): the
    convolutions then compute in `dtype` (mixed precision, `NCSNConfig.compute_dtype`). Inside a
    differentiated function the cast is part of the graph, so gradients reach the float32 kernels."""
    is_conv = lambda m: isinstance(m, Conv2d)  # noqa: E731

    def cast(m):
        return eqx.tree_at(lambda c: c.weight, m, m.weight.astype(dtype)) if is_conv(m) else m

    return jax.tree_util.tree_map(cast, net, is_leaf=is_conv)


def mean_pool2(x: Float[Array, "h w c"]) -> Float[Array, "h2 w2 c"]:
    """2x2 mean pool as the sum of four strided slices / 4 (odd sizes drop the last row/column)."""
    return (x[::2, ::2] + x[1::2, ::2] + x[::2, 1::2] + x[1::2, 1::2]) / 4.0


def avg_pool5(x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
    """AvgPool2d(5, stride=1, padding=2, count_include_pad=True), in the form that is the faster beside the
    convolutions' kernels (the same numbers up to float rounding either way):

    - where the convolutions run on zoo's oneDNN handlers (`zoo._onednn.available`), as separable sums of
      shifted slices of the zero-padded image: a backward pass ~4x cheaper on CPU than `reduce_window`'s;
    - elsewhere (GPUs included, not timed there) as a `reduce_window`: beside XLA:CPU's convolutions the
      slices' sums get fused into the transposed copies that XLA's weight-gradient convolutions read (25
      strided reads per element: ~0.2 s for each of two copies in the NCSN MNIST training step on one
      thread), so there the reduce_window makes the whole step 1.11x faster; with oneDNN's kernels it is
      0.96x (one thread, paired A/B; cards/ncsn-bench.md, "Stop 23").
    """
    if not _onednn.available():
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, (5, 5, 1), (1, 1, 1), ((2, 2), (2, 2), (0, 0))) / 25.0
    p = jnp.pad(x, ((2, 2), (2, 2), (0, 0)))
    h = p[0:-4] + p[1:-3] + p[2:-2] + p[3:-1] + p[4:]
    return (h[:, 0:-4] + h[:, 1:-3] + h[:, 2:-2] + h[:, 3:-1] + h[:, 4:]) / 25.0


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Bilinear interpolation with align_corners=True along one axis, as an (n_out, n_in) matrix."""
    a = np.zeros((n_out, n_in), np.float32)
    if n_in == 1 or n_out == 1:
        a[:, 0] = 1.0
        return a
    pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    a[np.arange(n_out), lo] = 1.0 - frac
    a[np.arange(n_out), lo + 1] += frac
    return a


def resize_bilinear(x: Float[Array, "h w c"], size: tuple[int, int]) -> Float[Array, "h2 w2 c"]:
    """``F.interpolate(mode='bilinear', align_corners=True)`` on one image."""
    h, w, _ = x.shape
    if (h, w) == tuple(size):
        return x
    ah = jnp.asarray(_interp_matrix(h, size[0]))
    aw = jnp.asarray(_interp_matrix(w, size[1]))
    return jnp.einsum("oh,pw,hwc->opc", ah, aw, x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def cin_plus_plus(
    x: Float[Array, "h w c"],
    gamma: Float[Array, " c"],
    alpha: Float[Array, " c"],
    beta: Float[Array, " c"],
    elu: bool = False,
) -> Float[Array, "h w c"]:
    """CondInstanceNorm++ on one image, given the level's (gamma, alpha, beta):
    ``gamma * (x_hat + alpha * mu_tilde) + beta``, followed by ELU if `elu`.

    With a hand-written backward pass (two per-channel sums over the image and one elementwise pass, less than
    half the work of XLA's derivative of the forward formula on CPU; `tests/test_ncsn_network.py` checks it
    against that derivative), both passes fused into one pass over memory on CPU (`zoo._onednn._cin`: zoo's
    native handlers, where they are built; elsewhere the same computation in JAX)."""
    return _cin_fwd(x, gamma, alpha, beta, elu)[0]


def _cin_fwd(x, gamma, alpha, beta, elu):
    y, stats = _cin.cin_forward(x[None], gamma[None], alpha[None], beta[None], elu=elu)
    return y[0], (x, y[0], stats[0], gamma, alpha)


def _cin_bwd(elu, res, dy):
    x, y, stats, gamma, alpha = res
    return tuple(d[0] for d in _cin.cin_backward(x[None], y[None], stats[None], gamma[None], alpha[None], dy[None],
                                                 elu=elu))  # fmt: skip


cin_plus_plus.defvjp(_cin_fwd, _cin_bwd)


class CondInstanceNormPP(eqx.Module):
    """CondInstanceNorm++ (``num_classes`` levels) or, with ``num_classes=None``, InstanceNorm++."""

    embed: Float[Array, "... 3c"]
    num_features: int = eqx.field(static=True)

    def __init__(self, num_features: int, num_classes: int | None, *, key: PRNGKeyArray):
        c = num_features
        shape = (c,) if num_classes is None else (num_classes, c)
        ga = 1.0 + 0.02 * jax.random.normal(key, shape[:-1] + (2 * c,))
        self.embed = jnp.concatenate([ga, jnp.zeros(shape)], axis=-1)
        self.num_features = c

    def __call__(self, x: Float[Array, "h w c"], y: Int[Array, ""], *, elu: bool = False) -> Float[Array, "h w c"]:
        """The norm of `x` at level `y`, followed by ELU if `elu` (fused, `cin_plus_plus`)."""
        e = self.embed if self.embed.ndim == 1 else take_row(self.embed, y)  # materialised (zoo._rows)
        c = self.num_features
        return cin_plus_plus(x, e[:c], e[c : 2 * c], e[2 * c :], elu)


class ResidualBlock(eqx.Module):
    """``ConditionalResidualBlock``: norm-ELU-conv twice plus a shortcut; 'down' halves
    the size unless dilated (then it only widens the receptive field)."""

    norm1: CondInstanceNormPP
    conv1: Conv2d
    norm2: CondInstanceNormPP
    conv2: Conv2d
    shortcut: Conv2d | None
    pool: bool = eqx.field(static=True)

    def __init__(self, cin: int, cout: int, num_classes: int | None, *, down: bool = False, dilation: int | None = None,
                 key: PRNGKeyArray):
        k = jax.random.split(key, 5)
        d = dilation or 1
        self.norm1 = CondInstanceNormPP(cin, num_classes, key=k[0])
        mid = cin if down else cout
        self.conv1 = Conv2d(cin, mid, 3, dilation=d, key=k[1])
        self.norm2 = CondInstanceNormPP(mid, num_classes, key=k[2])
        self.conv2 = Conv2d(mid, cout, 3, dilation=d, key=k[3])
        self.pool = down and dilation is None
        if cin != cout or down:
            # 'down' without dilation: ConvMeanPool 1x1; with dilation (or a width change): a (dilated) 3x3.
            ks = 1 if self.pool else 3
            self.shortcut = Conv2d(cin, cout, ks, dilation=d, key=k[4])
        else:
            self.shortcut = None

    def __call__(self, x: Float[Array, "h w ci"], y: Int[Array, ""]) -> Float[Array, "h2 w2 co"]:
        h = self.conv1(self.norm1(x, y, elu=True))
        h = self.conv2(self.norm2(h, y, elu=True))
        s = x if self.shortcut is None else self.shortcut(x)
        if self.pool:
            h, s = mean_pool2(h), mean_pool2(s)
        return h + s


class RCUBlock(eqx.Module):
    """``CondRCUBlock``: `n_blocks` residual units of `n_stages` (norm, ELU, bias-free conv)."""

    norms: list[list[CondInstanceNormPP]]
    convs: list[list[Conv2d]]

    def __init__(self, c: int, n_blocks: int, n_stages: int, num_classes: int | None, *, key: PRNGKeyArray):
        keys = jax.random.split(key, 2 * n_blocks * n_stages).reshape(n_blocks, n_stages, 2)
        self.norms = [[CondInstanceNormPP(c, num_classes, key=keys[i, j, 0]) for j in range(n_stages)]
                      for i in range(n_blocks)]
        self.convs = [[Conv2d(c, c, 3, bias=False, key=keys[i, j, 1]) for j in range(n_stages)]
                      for i in range(n_blocks)]

    def __call__(self, x: Float[Array, "h w c"], y: Int[Array, ""]) -> Float[Array, "h w c"]:
        for norms, convs in zip(self.norms, self.convs):
            r = x
            for norm, conv in zip(norms, convs):
                x = conv(norm(x, y, elu=True))
            x = x + r
        return x


class MSFBlock(eqx.Module):
    """``CondMSFBlock``: norm, 3x3 conv (bias), bilinear resize to the target, sum."""

    norms: list[CondInstanceNormPP]
    convs: list[Conv2d]

    def __init__(self, cins: tuple[int, ...], features: int, num_classes: int | None, *, key: PRNGKeyArray):
        keys = jax.random.split(key, 2 * len(cins)).reshape(len(cins), 2)
        self.norms = [CondInstanceNormPP(c, num_classes, key=keys[i, 0]) for i, c in enumerate(cins)]
        self.convs = [Conv2d(c, features, 3, key=keys[i, 1]) for i, c in enumerate(cins)]

    def __call__(self, xs: list[Array], y: Int[Array, ""], size: tuple[int, int]) -> Array:
        out = None
        for x, norm, conv in zip(xs, self.norms, self.convs):
            h = resize_bilinear(conv(norm(x, y)), size)
            out = h if out is None else out + h
        assert out is not None
        return out


class CRPBlock(eqx.Module):
    """``CondCRPBlock``: ELU, then per stage norm, 5x5 average pool, bias-free conv, accumulate."""

    norms: list[CondInstanceNormPP]
    convs: list[Conv2d]

    def __init__(self, c: int, n_stages: int, num_classes: int | None, *, key: PRNGKeyArray):
        keys = jax.random.split(key, 2 * n_stages).reshape(n_stages, 2)
        self.norms = [CondInstanceNormPP(c, num_classes, key=keys[i, 0]) for i in range(n_stages)]
        self.convs = [Conv2d(c, c, 3, bias=False, key=keys[i, 1]) for i in range(n_stages)]

    def __call__(self, x: Float[Array, "h w c"], y: Int[Array, ""]) -> Float[Array, "h w c"]:
        x = _elu(x)
        path = x
        for norm, conv in zip(self.norms, self.convs):
            path = conv(avg_pool5(norm(path, y)))
            x = path + x
        return x


class RefineBlock(eqx.Module):
    """``CondRefineBlock``: adapt RCUs (2x2), multi-resolution fusion, chained residual pooling, output RCU."""

    adapt: list[RCUBlock]
    msf: MSFBlock | None
    crp: CRPBlock
    output: RCUBlock

    def __init__(self, cins: tuple[int, ...], features: int, num_classes: int | None, *, end: bool = False,
                 key: PRNGKeyArray):
        keys = jax.random.split(key, len(cins) + 3)
        self.adapt = [RCUBlock(c, 2, 2, num_classes, key=keys[i]) for i, c in enumerate(cins)]
        self.msf = MSFBlock(cins, features, num_classes, key=keys[-3]) if len(cins) > 1 else None
        self.crp = CRPBlock(features, 2, num_classes, key=keys[-2])
        self.output = RCUBlock(features, 3 if end else 1, 2, num_classes, key=keys[-1])

    def __call__(self, xs: list[Array], y: Int[Array, ""], size: tuple[int, int]) -> Array:
        hs = [a(x, y) for a, x in zip(self.adapt, xs)]
        h = self.msf(hs, y, size) if self.msf is not None else hs[0]
        return self.output(self.crp(h, y), y)


class RefineNet(eqx.Module):
    """``CondRefineNetDilated`` on one (H, W, C) image in [0, 1]; returns the raw network
    output (the score for v1; the caller divides by sigma for v2)."""

    begin: Conv2d
    res1: list[ResidualBlock]
    res2: list[ResidualBlock]
    res3: list[ResidualBlock]
    res4: list[ResidualBlock]
    refine1: RefineBlock
    refine2: RefineBlock
    refine3: RefineBlock
    refine4: RefineBlock
    norm_out: CondInstanceNormPP
    end: Conv2d
    centered: bool = eqx.field(static=True)

    def __init__(self, channels: int, ngf: int, num_classes: int | None, *, centered: bool = True,
                 key: PRNGKeyArray):
        k = jax.random.split(key, 16)
        n = num_classes
        self.begin = Conv2d(channels, ngf, 3, key=k[0])
        self.res1 = [ResidualBlock(ngf, ngf, n, key=k[1]), ResidualBlock(ngf, ngf, n, key=k[2])]
        self.res2 = [ResidualBlock(ngf, 2 * ngf, n, down=True, key=k[3]),
                     ResidualBlock(2 * ngf, 2 * ngf, n, key=k[4])]
        self.res3 = [ResidualBlock(2 * ngf, 2 * ngf, n, down=True, dilation=2, key=k[5]),
                     ResidualBlock(2 * ngf, 2 * ngf, n, dilation=2, key=k[6])]
        self.res4 = [ResidualBlock(2 * ngf, 2 * ngf, n, down=True, dilation=4, key=k[7]),
                     ResidualBlock(2 * ngf, 2 * ngf, n, dilation=4, key=k[8])]
        self.refine1 = RefineBlock((2 * ngf,), 2 * ngf, n, key=k[9])
        self.refine2 = RefineBlock((2 * ngf, 2 * ngf), 2 * ngf, n, key=k[10])
        self.refine3 = RefineBlock((2 * ngf, 2 * ngf), ngf, n, key=k[11])
        self.refine4 = RefineBlock((ngf, ngf), ngf, n, end=True, key=k[12])
        self.norm_out = CondInstanceNormPP(ngf, n, key=k[13])
        self.end = Conv2d(ngf, channels, 3, key=k[14])
        self.centered = centered

    def __call__(self, x: Float[Array, "h w c"], y: Int[Array, ""]) -> Float[Array, "h w c"]:
        if self.centered:
            x = 2.0 * x - 1.0
        h = self.begin(x)
        layers = []
        for blocks in (self.res1, self.res2, self.res3, self.res4):
            for block in blocks:
                h = block(h, y)
            layers.append(h)
        l1, l2, l3, l4 = layers
        r1 = self.refine1([l4], y, l4.shape[:2])
        r2 = self.refine2([l3, r1], y, l3.shape[:2])
        r3 = self.refine3([l2, r2], y, l2.shape[:2])
        r4 = self.refine4([l1, r3], y, l1.shape[:2])
        return self.end(self.norm_out(r4, y, elu=True))
