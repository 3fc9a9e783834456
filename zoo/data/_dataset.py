"""The `Dataset` record every loader returns."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a data set, held in memory as numpy arrays.

    Fields:
        name: the name it was loaded under, e.g. ``"mnist"`` or ``"toy:gmm8"``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        x: images as float32 NHWC in [0, 1] ((N, 28, 28, 1) for the MNIST-like sets,
            (N, 32, 32, 3) for CIFAR-10); float32 (N, 2) points for the toy sets.
        y: int32 (N,) labels, or None where the set has none.
        binary: whether every value of `x` is exactly 0. or 1.
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray | None
    binary: bool

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"x has {len(self.x)} examples but y has {len(self.y)}.")

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.dtype}{list(self.y.shape)}"
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, x={self.x.dtype}{list(self.x.shape)}, "
            f"y={y}, binary={self.binary})"
        )


def images(x: np.ndarray, scale: float) -> np.ndarray:
    """Integer or bool images (N, H, W) or (N, H, W, C) as float32 NHWC `x / scale`."""
    out = x.astype(np.float32)
    if scale != 1:
        out /= np.float32(scale)
    return out[..., None] if out.ndim == 3 else out


def labels(y: np.ndarray) -> np.ndarray:
    """Labels as int32 (N,)."""
    return np.asarray(y).reshape(-1).astype(np.int32)
