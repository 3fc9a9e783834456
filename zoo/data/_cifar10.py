"""CIFAR-10 from `cifar10_jpeg.tar.gz`, decoded once and cached as an `.npz`.

The archive holds ``<split>/<class>/NNNN.jpg``. The first load decodes every JPEG with
PIL, in class order (airplane..truck) then file-name order, and writes both splits as
uint8 to ``<cache_dir()>/datasets/cifar10-v<format>-<archive sha256 prefix>.npz``,
atomically (a temporary file in the same directory, then `os.replace`). Later loads read
that cache after checking its format, source digest, shapes, dtypes and the sha256 of
every array; a cache that fails any check is reported with a warning and rebuilt.

The JPEGs are a lossy re-encoding, so pixel statistics differ slightly from the original
CIFAR-10 binaries (and FID against them is not comparable to published FID).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .._errors import DataError
from .._hashing import sha256_file
from .._io import atomic_open
from ._dataset import Dataset, images, labels
from ._paths import cache_dir, find_data_file


SPLITS = ("train", "test")
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
ARCHIVE = "cifar10_jpeg.tar.gz"
_FORMAT = 1
_SHAPE = (32, 32, 3)




def _sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()


def cache_path(archive_digest: str) -> Path:
    """Where the decoded cache for the archive with sha256 `archive_digest` lives."""
    return cache_dir() / "datasets" / f"cifar10-v{_FORMAT}-{archive_digest[:16]}.npz"


def decode_archive(archive: Path) -> dict[str, np.ndarray]:
    """Every image of `archive` as ``x_<split>`` uint8 (N, 32, 32, 3) and ``y_<split>`` uint8 (N,)."""
    from PIL import Image

    class_index = {c: i for i, c in enumerate(CLASSES)}
    files: dict[str, list[tuple[int, str, bytes]]] = {s: [] for s in SPLITS}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = member.name.removeprefix("./").split("/")
                if len(parts) != 3 or parts[0] not in files or parts[1] not in class_index:
                    raise DataError(
                        f"{archive}: unexpected member {member.name!r}; expected "
                        f"<{'|'.join(SPLITS)}>/<class>/<name>.jpg with class one of {CLASSES}."
                    )
                data = tar.extractfile(member)
                assert data is not None  # a regular file always has contents
                files[parts[0]].append((class_index[parts[1]], parts[2], data.read()))
    except (OSError, EOFError, tarfile.TarError) as e:
        raise DataError(f"Cannot read {archive}: {e}") from e

    arrays = {}
    for split, entries in files.items():
        if not entries:
            raise DataError(f"{archive} has no images under {split}/.")
        entries.sort(key=lambda entry: entry[:2])
        x = np.empty((len(entries), *_SHAPE), np.uint8)
        for i, (label, name, data) in enumerate(entries):
            member = f"{split}/{CLASSES[label]}/{name}"
            try:
                with Image.open(io.BytesIO(data)) as im:
                    pixels = np.asarray(im.convert("RGB"))
            except OSError as e:
                raise DataError(f"{archive}: cannot decode {member}: {e}") from e
            if pixels.shape != _SHAPE:
                raise DataError(f"{archive}: {member} is {pixels.shape[1::-1]} pixels, not 32x32.")
            x[i] = pixels
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = np.array([c for c, _, _ in entries], np.uint8)
    return arrays


def write_cache(path: Path, arrays: dict[str, np.ndarray], archive_digest: str) -> None:
    """Write `arrays` and their checksums to `path` atomically (`zoo._io.atomic_open`)."""
    meta = {
        "format": _FORMAT,
        "source_sha256": archive_digest,
        "arrays": {
            k: {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": _sha256_array(a)} for k, a in arrays.items()
        },
    }
    with atomic_open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def read_cache(path: Path, split: str, archive_digest: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(x, y)`` of `split`, or None when there is no cache or it fails a check.

    A failing cache is reported with a `RuntimeWarning`; the caller rebuilds it.
    """
    if not path.is_file():
        return None
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta["format"] != _FORMAT or meta["source_sha256"] != archive_digest:
                raise ValueError("it was built from another archive or by another version")
            out = []
            for key in (f"x_{split}", f"y_{split}"):
                a, expected = z[key], meta["arrays"][key]
                if list(a.shape) != expected["shape"] or a.dtype.str != expected["dtype"]:
                    raise ValueError(f"{key} is {a.dtype}{a.shape}, expected {expected['dtype']}{expected['shape']}")
                if _sha256_array(a) != expected["sha256"]:
                    raise ValueError(f"{key} does not match its checksum")
                out.append(a)
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        warnings.warn(f"CIFAR-10 cache {path} is unusable ({e}); rebuilding it.", RuntimeWarning, stacklevel=4)
        return None
    x, y = out
    if x.shape[1:] != _SHAPE or y.shape != x.shape[:1]:
        warnings.warn(
            f"CIFAR-10 cache {path} has shapes {x.shape}, {y.shape}; rebuilding it.", RuntimeWarning, stacklevel=4
        )
        return None
    return x, y


def load_cifar10(split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """CIFAR-10 `split` as float32 (N, 32, 32, 3) in [0, 1], labels 0..9 in `CLASSES` order."""
    archive = find_data_file(ARCHIVE, data_dir)
    digest = sha256_file(archive)
    path = cache_path(digest)
    cached = read_cache(path, split, digest)
    if cached is None:
        arrays = decode_archive(archive)
        try:
            write_cache(path, arrays, digest)
        except OSError as e:
            warnings.warn(
                f"Cannot write the CIFAR-10 cache {path} ({e}); it will be decoded again next time.",
                RuntimeWarning,
                stacklevel=3,
            )
        cached = arrays[f"x_{split}"], arrays[f"y_{split}"]
    x, y = cached
    return Dataset("cifar10", split, images(x, 255), labels(y), False)
