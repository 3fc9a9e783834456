"""Readers for the plain on-disk formats: idx (optionally gzipped) and `.npz`."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np

from .._errors import DataError


# The idx type byte -> numpy big-endian dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (`.gz` or not) as an array in native byte order."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"Cannot read idx file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an idx file (bad magic number {raw[:4]!r}).")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: {len(raw)} bytes, expected {expected}.")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays `keys` of an `.npz` file (never unpickling anything)."""
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks arrays {missing}; it holds {sorted(z.files)}.")
            return {k: z[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"Cannot read {path}: {e}") from e
