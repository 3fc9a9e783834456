"""The registry of data set names and the `load` entry point."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable

from .._errors import DataError
from . import _cifar10, _fashion_mnist, _mnist, _omniglot, _quantize, _toy
from ._dataset import Dataset
from ._tfds import load_tfds


_Loader = Callable[[str, "str | os.PathLike[str] | None"], Dataset]

# name -> (valid splits, loader(split, data_dir)); toy sets are handled apart.
_FILE_SETS: dict[str, tuple[tuple[str, ...], _Loader]] = {
    "mnist": (_mnist.MNIST_SPLITS, _mnist.load_mnist),
    "binarized_mnist": (_mnist.BINARIZED_MNIST_SPLITS, _mnist.load_binarized_mnist),
    "dynamic_mnist": (_mnist.MNIST_SPLITS, _mnist.load_dynamic_mnist),
    "fashion_mnist": (_fashion_mnist.SPLITS, _fashion_mnist.load_fashion_mnist),
    "omniglot": (_omniglot.SPLITS, _omniglot.load_omniglot),
    "cifar10": (_cifar10.SPLITS, _cifar10.load_cifar10),
    "mnist_k4": (_mnist.MNIST_SPLITS, _quantize.load_mnist_k4),
}
_SOURCES = ("local", "tfds")


def available() -> list[str]:
    """The names `load` accepts, sorted."""
    return sorted([*_FILE_SETS, *_toy.NAMES])


def splits(name: str) -> tuple[str, ...]:
    """The splits of the data set `name`."""
    if name in _FILE_SETS:
        return _FILE_SETS[name][0]
    if name in _toy.NAMES:
        return _toy.SPLITS
    close = difflib.get_close_matches(name, available(), n=3)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise DataError(f"Unknown data set {name!r}.{hint} Available: {', '.join(available())}.")


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    source: str = "local",
    n: int | None = None,
) -> Dataset:
    """Load one split of a data set into memory.

    Arguments:
        name: one of `available()`, e.g. ``"mnist"``, ``"cifar10"`` or ``"toy:gmm8"``.
        split: one of `splits(name)`: ``"train"`` and ``"test"``, plus ``"valid"`` for
            ``binarized_mnist`` and the toy sets.
        data_dir: the directory holding the raw files; default `data_dir()`'s search.
        source: ``"local"`` reads the files of `data_dir`; ``"tfds"`` goes through
            TensorFlow Datasets (``pip install "zoo[tfds]"``) for mnist, dynamic_mnist,
            fashion_mnist, cifar10 and binarized_mnist.
        n: the number of points of a toy set (default 10000); toy sets only.

    Raises `DataError` for an unknown name, split or source, or a missing or bad file.
    """
    if source not in _SOURCES:
        raise DataError(f"Unknown source {source!r}; use one of {_SOURCES}.")
    valid = splits(name)
    if split not in valid:
        raise DataError(f"{name!r} has no split {split!r}; valid splits: {', '.join(valid)}.")
    if name in _toy.NAMES:
        if source != "local":
            raise DataError(f"{name!r} is generated here; it has no source {source!r}.")
        return _toy.load_toy(name, split, n)
    if n is not None:
        raise DataError(f"n= sets the size of a toy set; {name!r} is a fixed data set.")
    if source == "tfds":
        return load_tfds(name, split, data_dir)
    return _FILE_SETS[name][1](split, data_dir)
