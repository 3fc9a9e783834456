"""Omniglot at 28x28, downsampled here from the full-resolution 105x105 images.

Splits: ``train`` is the background set (964 characters x 20 drawers = 19280 images),
``test`` the evaluation set (659 x 20 = 13180), i.e. Lake et al.'s alphabet split. This
is *not* the 24345/8070 28x28 split of Burda et al. (2016) used by IWAE-style papers,
so likelihoods are not comparable with those tables.

The files store True for background; we invert so ink is 1, then shrink 105 -> 28 with
PIL's BOX (area-averaging) filter. The result is grey (``binary=False``): binarize it
with `binarize` per batch, or threshold it yourself. Labels are the character index
within the split (0..963 for train, 0..658 for test).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from .._errors import DataError
from ._dataset import Dataset, labels
from ._paths import find_data_file
from ._readers import read_npz


SPLITS = ("train", "test")
_FILES = {"train": "omniglot_background.npz", "test": "omniglot_evaluation.npz"}
_FULL, _SIZE = 105, 28
_CHUNK = 1024


@functools.cache
def _box_weights(n_in: int, n_out: int) -> np.ndarray:
    """PIL's BOX resize from `n_in` to `n_out` pixels along one axis, as an (n_out, n_in) matrix.

    The filter is linear and separable, so resizing every image with PIL one at a time
    equals `W @ image @ W.T`; we read `W` off PIL by resizing the unit vectors once.
    """
    from PIL import Image

    w = np.empty((n_out, n_in), np.float32)
    for j in range(n_in):
        unit = np.zeros((1, n_in), np.float32)
        unit[0, j] = 1.0
        w[:, j] = np.asarray(Image.fromarray(unit).resize((n_out, 1), Image.Resampling.BOX))[0]
    return w


def downsample(ink: np.ndarray, size: int = _SIZE) -> np.ndarray:
    """Float (N, H, W) images shrunk to (N, size, size) float32 with PIL's BOX filter."""
    n, h, w = ink.shape
    wh, ww = _box_weights(h, size), _box_weights(w, size)
    out = np.empty((n, size, size), np.float32)
    for start in range(0, n, _CHUNK):
        chunk = ink[start : start + _CHUNK].astype(np.float32)
        out[start : start + _CHUNK] = wh @ chunk @ ww.T
    return np.clip(out, 0.0, 1.0, out=out)


def load_omniglot(split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """Omniglot `split` as float32 (N, 28, 28, 1), ink = 1, with character labels."""
    path = find_data_file(_FILES[split], data_dir)
    arrays = read_npz(path, ("images", "labels"))
    background, y = arrays["images"], arrays["labels"]
    if background.dtype != np.bool_ or background.shape[-2:] != (_FULL, _FULL):
        raise DataError(f"{path}: expected bool images (..., 105, 105), got {background.dtype}{background.shape}.")
    if y.shape != background.shape[:-2]:
        raise DataError(f"{path}: labels {y.shape} do not match images {background.shape}.")
    ink = ~background.reshape(-1, _FULL, _FULL)
    x = downsample(ink)[..., None]
    return Dataset("omniglot", split, x, labels(y), False)
