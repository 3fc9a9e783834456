"""Toy 2-D data sets, generated deterministically: one fixed seed per (set, split).

The shapes follow the FFJORD toy sets (Grathwohl et al., 2019) that score-matching and
Stein papers reuse:

- ``toy:gmm8``: 8 Gaussians (std 0.5) centred on a ring of radius 4, all divided by
  1.414; labels are the component (0..7).
- ``toy:spirals``: two interleaved spirals, 540 degrees each, plus N(0, 0.1^2) noise;
  labels are the arm (0 or 1).
- ``toy:checkerboard``: uniform on the 8 dark squares of a 4x4 board spanning [-4, 4]^2;
  no labels.

`x` is float32 (n, 2). The seed of a split is a CRC32 of ``"<name>/<split>"``, so the
splits are different samples and the same on every machine and Python process.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from .._errors import DataError
from ._dataset import Dataset


SPLITS = ("train", "valid", "test")
DEFAULT_N = 10_000


def _gmm8(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    angles = np.arange(8) * (np.pi / 4)
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    component = rng.integers(0, 8, size=n)
    x = (centers[component] + 0.5 * rng.standard_normal((n, 2))) / 1.414
    return x, component


def _spirals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    arm = rng.integers(0, 2, size=n)
    t = np.sqrt(rng.random(n)) * np.deg2rad(540.0)
    x = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + 0.5 * rng.random((n, 2))
    x = np.where(arm[:, None] == 1, -x, x) / 3.0
    return x + 0.1 * rng.standard_normal((n, 2)), arm


def _checkerboard(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - 2 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1), None


_GENERATORS: dict[str, Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray | None]]] = {
    "toy:gmm8": _gmm8,
    "toy:spirals": _spirals,
    "toy:checkerboard": _checkerboard,
}
NAMES = tuple(_GENERATORS)


def seed(name: str, split: str) -> int:
    """The fixed seed of `split` of the toy set `name`."""
    return zlib.crc32(f"{name}/{split}".encode())


def load_toy(name: str, split: str, n: int | None = None) -> Dataset:
    """`n` points (default 10000) of the toy set `name`, the same on every call."""
    n = DEFAULT_N if n is None else n
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise DataError(f"n must be a positive integer, got {n!r}.")
    x, y = _GENERATORS[name](np.random.default_rng(seed(name, split)), int(n))
    return Dataset(name, split, x.astype(np.float32), None if y is None else y.astype(np.int32), False)
