"""MNIST: grey (`mnist`, `dynamic_mnist`) and statically binarized (`binarized_mnist`)."""

from __future__ import annotations

import os

import numpy as np

from .._errors import DataError
from ._dataset import Dataset, images, labels
from ._paths import find_data_file
from ._readers import read_npz


MNIST_SPLITS = ("train", "test")
BINARIZED_MNIST_SPLITS = ("train", "valid", "test")


def load_mnist(split: str, data_dir: str | os.PathLike[str] | None, *, name: str = "mnist") -> Dataset:
    """The original 60000/10000 MNIST split from `mnist.npz`, grey levels / 255."""
    path = find_data_file("mnist.npz", data_dir)
    arrays = read_npz(path, (f"x_{split}", f"y_{split}"))
    return Dataset(name, split, images(arrays[f"x_{split}"], 255), labels(arrays[f"y_{split}"]), False)


def load_dynamic_mnist(split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """Grey MNIST, meant to be binarized afresh for every batch with `binarize`.

    The data set itself is grey (``binary=False``); the binarization belongs to the
    training loop, where each batch draws new Bernoulli pixels.
    """
    return load_mnist(split, data_dir, name="dynamic_mnist")


def load_binarized_mnist(split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """The static binarization of Larochelle & Murray (2011): 50000/10000/10000, no labels."""
    path = find_data_file("binarized_mnist.npz", data_dir)
    x = read_npz(path, (split,))[split]
    if x.dtype != np.uint8 or (x.size and x.max() > 1):
        raise DataError(f"{path}[{split!r}] should be uint8 in {{0, 1}}; got {x.dtype} up to {x.max()}.")
    return Dataset("binarized_mnist", split, images(x, 1), None, True)
