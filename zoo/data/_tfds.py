"""The `source="tfds"` path: the same data sets through TensorFlow Datasets, same layout."""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from .._errors import DataError
from ._dataset import Dataset, images, labels


# zoo name -> (tfds name, has labels, binary)
TFDS_NAMES = {
    "mnist": ("mnist", True, False),
    "dynamic_mnist": ("mnist", True, False),
    "fashion_mnist": ("fashion_mnist", True, False),
    "cifar10": ("cifar10", True, False),
    "binarized_mnist": ("binarized_mnist", False, True),
}
_TFDS_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


def tfds_available() -> bool:
    """Whether tensorflow_datasets can be imported."""
    return importlib.util.find_spec("tensorflow_datasets") is not None


def load_tfds(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """`name`/`split` from TensorFlow Datasets, converted to the `Dataset` layout."""
    if name not in TFDS_NAMES:
        raise DataError(f"{name!r} is not available from source='tfds'; it has {sorted(TFDS_NAMES)}.")
    if not tfds_available():
        raise DataError(
            "source='tfds' needs tensorflow_datasets, which is not installed. "
            'Install it with: pip install "zoo[tfds]" (or use the default source="local").'
        )
    import tensorflow_datasets as tfds

    tfds_name, has_labels, binary = TFDS_NAMES[name]
    data = tfds.as_numpy(
        tfds.load(
            tfds_name,
            split=_TFDS_SPLITS[split],
            batch_size=-1,
            data_dir=None if data_dir is None else os.fspath(data_dir),
        )
    )
    x = np.asarray(data["image"])
    x = images(x, 1 if binary else 255)
    y = labels(data["label"]) if has_labels else None
    return Dataset(name, split, x, y, binary)
