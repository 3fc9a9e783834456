"""Grey images quantised to K levels (equal-width bins of [0, 1]), e.g. ``mnist_k4``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._errors import DataError
from ._dataset import Dataset
from ._mnist import load_mnist


def quantize(x: Any, num_values: int) -> np.ndarray:
    """The level index ``min(floor(x * K), K - 1)`` of each value of `x` in [0, 1], as uint8.

    Equal-width bins: level ``j`` holds ``[j / K, (j + 1) / K)`` (and 1 itself the top level).
    Idempotent on the levels' own grey values ``j / (K - 1)`` (what a quantised set stores), so
    quantising a quantised set with the same `num_values` gives its levels back."""
    if not 2 <= num_values <= 256:
        raise DataError(f"num_values must be in 2..256, got {num_values}")
    a = np.asarray(x, np.float32)
    if a.size and (not np.isfinite(a).all() or a.min() < 0 or a.max() > 1):
        raise DataError(f"quantize takes grey values in [0, 1]; got values in [{a.min()}, {a.max()}]")
    return np.minimum(np.floor(a * num_values), num_values - 1).astype(np.uint8)


def load_quantized_mnist(
    split: str, data_dir: str | os.PathLike[str] | None, *, num_values: int, name: str
) -> Dataset:
    """Grey MNIST (the 60000/10000 split) with each pixel quantised to `num_values` levels
    (`quantize`), stored as the grey values ``level / (K - 1)`` (float32 NHWC, like every image set)."""
    grey = load_mnist(split, data_dir)
    x = quantize(grey.x, num_values).astype(np.float32) / np.float32(num_values - 1)
    return Dataset(name, split, x, grey.y, False)


def load_mnist_k4(split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """``mnist_k4``: MNIST with 4 grey levels (bins [0, 1/4), [1/4, 1/2), [1/2, 3/4), [3/4, 1])."""
    return load_quantized_mnist(split, data_dir, num_values=4, name="mnist_k4")
