"""The `source="tfds"` path: the same data sets through TensorFlow Datasets, same layout.

TensorFlow Datasets reads a prepared data set without TensorFlow when it is stored as
``array_record`` (its random-access format, through `tfds.data_source`); the older
``tfrecord`` format, and preparing (downloading and encoding) a data set, need TensorFlow.
The examples come in the TFDS data set's own order: TFDS shuffles a data set when it
prepares it, so the order differs from the raw files' (``source="local"``) unless the data
set was written with shuffling disabled.
"""

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
_INSTALL = 'Install it with: pip install "zoo[tfds]" (or use the default source="local").'


def tfds_available() -> bool:
    """Whether tensorflow_datasets can be imported."""
    return importlib.util.find_spec("tensorflow_datasets") is not None


def _tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def load_tfds(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """`name`/`split` from TensorFlow Datasets (prepared under `data_dir`, default TFDS's own),
    converted to the `Dataset` layout."""
    if name not in TFDS_NAMES:
        raise DataError(f"{name!r} is not available from source='tfds'; it has {sorted(TFDS_NAMES)}.")
    if not tfds_available():
        raise DataError(f"source='tfds' needs tensorflow_datasets, which is not installed. {_INSTALL}")
    import tensorflow_datasets as tfds

    tfds_name, has_labels, binary = TFDS_NAMES[name]
    builder = tfds.builder(tfds_name, data_dir=None if data_dir is None else os.fspath(data_dir))
    if not builder.is_prepared():
        if not _tensorflow_available():
            raise DataError(
                f"TensorFlow Datasets has no prepared {tfds_name!r} in {builder.data_dir}, and preparing it "
                "(download and encode) needs tensorflow, which is not installed. Pass data_dir= the folder "
                f"holding a prepared {tfds_name!r}, or pip install tensorflow to let TFDS prepare it, or use "
                'source="local".'
            )
        builder.download_and_prepare(file_format="array_record")
    tfds_split = _TFDS_SPLITS[split]
    if tfds_split not in builder.info.splits:
        raise DataError(
            f"the TFDS data set {tfds_name!r} in {builder.data_dir} has no split {tfds_split!r}; "
            f"it has {sorted(builder.info.splits)}."
        )
    if builder.info.file_format == tfds.core.file_adapters.FileFormat.ARRAY_RECORD:
        source = builder.as_data_source(split=tfds_split)
        if not len(source):
            raise DataError(f"the TFDS data set {tfds_name!r} in {builder.data_dir} has no {tfds_split!r} examples.")
        examples = source.__getitems__(list(range(len(source))))  # one batched read, decoded with PIL
        image = np.stack([e["image"] for e in examples])
        label = np.asarray([e["label"] for e in examples]) if has_labels else None
    else:
        if not _tensorflow_available():
            raise DataError(
                f"the TFDS data set {tfds_name!r} in {builder.data_dir} is stored as "
                f"{builder.info.file_format.value}, which only tensorflow reads; pip install tensorflow, or "
                "prepare it as array_record (builder.download_and_prepare(file_format='array_record'))."
            )
        data = tfds.as_numpy(builder.as_dataset(split=tfds_split, batch_size=-1))
        image = np.asarray(data["image"])
        label = np.asarray(data["label"]) if has_labels else None
    x = images(image, 1 if binary else 255)
    y = labels(label) if label is not None else None
    return Dataset(name, split, x, y, binary)
