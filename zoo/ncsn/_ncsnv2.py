"""The NCSNv2 score networks (Song & Ermon 2020): `NCSNv2`, `NCSNv2Deeper`, `NCSNv2Deepest`.

Follows ``ermongroup/ncsnv2`` ``models/ncsnv2.py`` and ``models/layers.py`` layer for layer, on ONE example in
NHWC layout (batch with `jax.vmap`, like `zoo.ncsn.RefineNet`):

* every norm is an unconditional InstanceNorm++ (``InstanceNorm2dPlus``: one gamma, alpha, beta per channel;
  `CondInstanceNormPP` with ``num_classes=None``); the network never sees the level index;
* the encoder is `ResidualBlock`s (shared with the NCSN v1 network): 'down' halves the size with a mean pool,
  unless dilated (then it only widens the receptive field);
* the RefineNet decoder has NO norms (``RefineBlock``: ``RCUBlock``, ``MSFBlock``, ``CRPBlock``) and its chained
  residual pooling is a 5x5 MAX pool (stride 1, padding 2: padded cells never win), where NCSN v1 used a norm and an
  average pool;
* the input in [0, 1] is mapped to ``2x - 1``; the caller (`zoo.ncsn.NCSN.score`) divides the output by sigma.

The three networks differ only in their encoder stages (the class attributes): `NCSNv2` (CIFAR-10 32, CelebA 64;
halves the size once, at ``res2``), `NCSNv2Deeper` (LSUN 64/128: halves it at ``res2`` and ``res3``, widens to
4 ngf), `NCSNv2Deepest` (FFHQ 256: one more halving stage, ``res31``).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._network import CondInstanceNormPP, Conv2d, ResidualBlock, resize_bilinear


def _elu(x: Array) -> Array:
    return jax.nn.elu(x)


def max_pool5(x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
    """``MaxPool2d(5, stride=1, padding=2)`` on one image, as separable maxima of shifted slices (-inf padding)."""
    p = jnp.pad(x, ((2, 2), (2, 2), (0, 0)), constant_values=-jnp.inf)
    h = jnp.maximum(jnp.maximum(jnp.maximum(p[0:-4], p[1:-3]), jnp.maximum(p[2:-2], p[3:-1])), p[4:])
    return jnp.maximum(
        jnp.maximum(jnp.maximum(h[:, 0:-4], h[:, 1:-3]), jnp.maximum(h[:, 2:-2], h[:, 3:-1])), h[:, 4:]
    )


class PlainRCUBlock(eqx.Module):
    """``RCUBlock``: `n_blocks` residual units of `n_stages` (ELU, bias-free 3x3 conv); no norms."""

    convs: list[list[Conv2d]]

    def __init__(self, c: int, n_blocks: int, n_stages: int, *, key: PRNGKeyArray):
        keys = jax.random.split(key, n_blocks * n_stages).reshape(n_blocks, n_stages)
        self.convs = [[Conv2d(c, c, 3, bias=False, key=keys[i, j]) for j in range(n_stages)] for i in range(n_blocks)]

    def __call__(self, x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
        for convs in self.convs:
            r = x
            for conv in convs:
                x = conv(_elu(x))
            x = x + r
        return x


class PlainMSFBlock(eqx.Module):
    """``MSFBlock``: per input a 3x3 conv (bias), bilinearly resized (align_corners) to the target, summed."""

    convs: list[Conv2d]

    def __init__(self, cins: tuple[int, ...], features: int, *, key: PRNGKeyArray):
        keys = jax.random.split(key, len(cins))
        self.convs = [Conv2d(c, features, 3, key=k) for c, k in zip(cins, keys)]

    def __call__(self, xs: list[Array], size: tuple[int, int]) -> Array:
        out = None
        for x, conv in zip(xs, self.convs):
            h = resize_bilinear(conv(x), size)
            out = h if out is None else out + h
        assert out is not None
        return out


class MaxCRPBlock(eqx.Module):
    """``CRPBlock(maxpool=True)``: ELU, then per stage a 5x5 max pool and a bias-free conv, accumulated."""

    convs: list[Conv2d]

    def __init__(self, c: int, n_stages: int, *, key: PRNGKeyArray):
        self.convs = [Conv2d(c, c, 3, bias=False, key=k) for k in jax.random.split(key, n_stages)]

    def __call__(self, x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
        x = _elu(x)
        path = x
        for conv in self.convs:
            path = conv(max_pool5(path))
            x = path + x
        return x


class PlainRefineBlock(eqx.Module):
    """``RefineBlock``: adapt RCUs (2 x 2), multi-resolution fusion (two inputs), max-pool CRP, output RCU (3 blocks
    at the end, else 1)."""

    adapt: list[PlainRCUBlock]
    msf: PlainMSFBlock | None
    crp: MaxCRPBlock
    output: PlainRCUBlock

    def __init__(self, cins: tuple[int, ...], features: int, *, end: bool = False, key: PRNGKeyArray):
        keys = jax.random.split(key, len(cins) + 3)
        self.adapt = [PlainRCUBlock(c, 2, 2, key=keys[i]) for i, c in enumerate(cins)]
        self.msf = PlainMSFBlock(cins, features, key=keys[-3]) if len(cins) > 1 else None
        self.crp = MaxCRPBlock(features, 2, key=keys[-2])
        self.output = PlainRCUBlock(features, 3 if end else 1, 2, key=keys[-1])

    def __call__(self, xs: list[Array], size: tuple[int, int]) -> Array:
        hs = [a(x) for a, x in zip(self.adapt, xs)]
        h = self.msf(hs, size) if self.msf is not None else hs[0]
        return self.output(self.crp(h))


class AbstractNCSNv2Net(eqx.Module):
    """The NCSNv2 network family on one (H, W, C) image in [0, 1]; returns the raw output (divide by sigma).

    A concrete network names its encoder stages (class attributes): ``widths`` (channels of each stage in units of
    ngf), ``dilations`` (None: a 'down' stage halves the size; 2 or 4: a dilated stage keeps it; the first stage
    never resamples) and, for the converter, the official attribute names of the stages and refine blocks."""

    widths: eqx.AbstractClassVar[tuple[int, ...]]
    dilations: eqx.AbstractClassVar[tuple[int | None, ...]]
    stage_names: eqx.AbstractClassVar[tuple[str, ...]]  # ``res1``... as in models/ncsnv2.py
    refine_names: eqx.AbstractClassVar[tuple[str, ...]]  # deepest first: ``refine1``...

    begin: Conv2d
    stages: list[list[ResidualBlock]]
    refines: list[PlainRefineBlock]
    norm_out: CondInstanceNormPP
    end: Conv2d
    centered: bool = eqx.field(static=True)

    def __init__(self, channels: int, ngf: int, *, centered: bool = True, key: PRNGKeyArray):
        n = len(self.widths)
        k = jax.random.split(key, 3 + 2 * n + n)
        w = [ngf * m for m in self.widths]
        self.begin = Conv2d(channels, ngf, 3, key=k[0])
        stages = []
        cin = ngf
        for i in range(n):
            first = i > 0  # every stage but the first starts with a 'down' block
            d = self.dilations[i]
            stages.append([
                ResidualBlock(cin, w[i], None, down=first, dilation=d, key=k[1 + 2 * i]),
                ResidualBlock(w[i], w[i], None, dilation=d, key=k[2 + 2 * i]),
            ])
            cin = w[i]
        self.stages = stages
        refines = []
        for j, i in enumerate(reversed(range(n))):  # deepest stage first
            cins = (w[i],) if j == 0 else (w[i], w[i])
            out = w[i - 1] if i > 0 else w[0]
            refines.append(PlainRefineBlock(cins, out, end=i == 0, key=k[1 + 2 * n + j]))
        self.refines = refines
        self.norm_out = CondInstanceNormPP(ngf, None, key=k[-2])
        self.end = Conv2d(ngf, channels, 3, key=k[-1])
        self.centered = centered

    @classmethod
    def downsampling(cls) -> int:
        """How many times the encoder halves the image size (image sizes must be divisible by 2 to this power)."""
        return sum(1 for i, d in enumerate(cls.dilations) if i > 0 and d is None)

    def __call__(self, x: Float[Array, "h w c"], y: Int[Array, ""] | None = None) -> Float[Array, "h w c"]:
        """The network output for one image; `y` (the level) is unused: the norms are unconditional."""
        del y
        if self.centered:
            x = 2.0 * x - 1.0
        h = self.begin(x)
        layers = []
        for blocks in self.stages:
            for block in blocks:
                h = block(h, None)
            layers.append(h)
        r = None
        for refine, skip in zip(self.refines, reversed(layers)):
            r = refine([skip] if r is None else [skip, r], skip.shape[:2])
        assert r is not None
        return self.end(self.norm_out(r, None, elu=True))


class NCSNv2(AbstractNCSNv2Net):
    """``NCSNv2`` (CIFAR-10 32, CelebA 64): stages ngf, 2ngf (down), 2ngf (dilation 2), 2ngf (dilation 4)."""

    widths: ClassVar[tuple[int, ...]] = (1, 2, 2, 2)
    dilations: ClassVar[tuple[int | None, ...]] = (None, None, 2, 4)
    stage_names: ClassVar[tuple[str, ...]] = ("res1", "res2", "res3", "res4")
    refine_names: ClassVar[tuple[str, ...]] = ("refine1", "refine2", "refine3", "refine4")


class NCSNv2Deeper(AbstractNCSNv2Net):
    """``NCSNv2Deeper`` (LSUN 64 and 128): ngf, 2ngf (down), 2ngf (down), 4ngf (dilation 2), 4ngf (dilation 4)."""

    widths: ClassVar[tuple[int, ...]] = (1, 2, 2, 4, 4)
    dilations: ClassVar[tuple[int | None, ...]] = (None, None, None, 2, 4)
    stage_names: ClassVar[tuple[str, ...]] = ("res1", "res2", "res3", "res4", "res5")
    refine_names: ClassVar[tuple[str, ...]] = ("refine1", "refine2", "refine3", "refine4", "refine5")


class NCSNv2Deepest(AbstractNCSNv2Net):
    """``NCSNv2Deepest`` (FFHQ 256): ngf, 2ngf (down) x 3 (``res2``, ``res3``, ``res31``), 4ngf (dilation 2),
    4ngf (dilation 4)."""

    widths: ClassVar[tuple[int, ...]] = (1, 2, 2, 2, 4, 4)
    dilations: ClassVar[tuple[int | None, ...]] = (None, None, None, None, 2, 4)
    stage_names: ClassVar[tuple[str, ...]] = ("res1", "res2", "res3", "res31", "res4", "res5")
    refine_names: ClassVar[tuple[str, ...]] = ("refine1", "refine2", "refine31", "refine3", "refine4", "refine5")


NCSNV2_NETWORKS: dict[str, type[AbstractNCSNv2Net]] = {
    "ncsnv2": NCSNv2,
    "ncsnv2-deeper": NCSNv2Deeper,
    "ncsnv2-deepest": NCSNv2Deepest,
}
