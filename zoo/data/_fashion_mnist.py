"""Fashion-MNIST from its four original idx gz files."""

from __future__ import annotations

import os

from .._errors import DataError
from ._dataset import Dataset, images, labels
from ._paths import find_data_file
from ._readers import read_idx


SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}


def load_fashion_mnist(split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """Fashion-MNIST (60000 train / 10000 test), grey levels / 255, labels 0..9."""
    prefix = _PREFIX[split]
    x = read_idx(find_data_file(f"fashion_mnist/{prefix}-images-idx3-ubyte.gz", data_dir))
    y = read_idx(find_data_file(f"fashion_mnist/{prefix}-labels-idx1-ubyte.gz", data_dir))
    if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
        raise DataError(f"Fashion-MNIST {split}: unexpected shapes images {x.shape}, labels {y.shape}.")
    return Dataset("fashion_mnist", split, images(x, 255), labels(y), False)
