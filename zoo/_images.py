"""Image grids and scatter plots as PNG, with PIL only."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ._io import atomic_open


def grid(images: np.ndarray, *, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, H, W, C) images in [0, 1] into one uint8 (H', W', 3) image."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C), got {x.shape}")
    n, h, w, c = x.shape
    if c == 1:
        x = np.repeat(x, 3, axis=-1)
    elif c != 3:
        raise ValueError(f"expected 1 or 3 channels, got {c}")
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    out = np.ones((ncol * (h + pad) + pad, nrow * (w + pad) + pad, 3), np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = x[i]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def scatter(points: np.ndarray, *, size: int = 256, lim: float | None = None) -> np.ndarray:
    """Render 2-D points as a (size, size, 3) float image in [0, 1] (first two coordinates)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    p = p[np.all(np.isfinite(p), axis=1)]
    lim = lim or float(max(np.abs(p).max(initial=1.0) * 1.1, 1e-6))
    img = np.ones((size, size, 3), np.float32)
    ij = np.clip(((p / lim + 1) / 2 * (size - 1)).round().astype(int), 0, size - 1)
    img[size - 1 - ij[:, 1], ij[:, 0]] = (0.1, 0.2, 0.7)
    return img


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 (H, W, 3) image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_open(path, "wb") as f:
        Image.fromarray(np.asarray(image, np.uint8)).save(f, format="PNG")
    return path


def save_grid(images: np.ndarray, path: str | os.PathLike, *, nrow: int | None = None) -> Path:
    """`grid` then `save_png`."""
    return save_png(grid(images, nrow=nrow), path)
