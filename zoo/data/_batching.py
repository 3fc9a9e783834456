"""Deterministic, resumable minibatches over a pytree of arrays sharing a leading axis.

The order of epoch `e` is a permutation drawn from ``(seed, e)`` alone, so `batches`,
`batch_at` and the training driver (which draws `batch_indices`) agree, and a run resumed at
step `t` sees the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np


def _leaves(arrays: Any) -> tuple[list[Any], Any]:
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(arrays)
    if not leaves:
        raise ValueError("batches needs at least one array.")
    shapes = [np.shape(leaf) for leaf in leaves]
    if any(not shape for shape in shapes) or len({shape[0] for shape in shapes}) != 1:
        raise ValueError(f"All arrays must share a leading (example) axis; got shapes {shapes}.")
    return leaves, treedef


def _check_batch_size(batch_size: int, n: int, drop_last: bool) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if drop_last and batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples, so an epoch has no full batch.")


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    perm.flags.writeable = False
    return perm


def _take(leaves: list[Any], treedef: Any, index: np.ndarray) -> Any:
    import jax

    return jax.tree_util.tree_unflatten(treedef, [leaf[index] for leaf in leaves])


def batches(
    arrays: Any,
    batch_size: int,
    *,
    seed: int,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Iterator[Any]:
    """An iterator over one epoch of minibatches of `arrays` (any pytree of arrays with a shared leading axis).

    With `shuffle`, the order is a permutation drawn from ``(seed, epoch)`` only: the same
    seed and epoch give the same batches. Each example appears at most once per epoch;
    exactly once unless `drop_last` drops the final partial batch. Each batch has the
    structure of `arrays`, with leaves indexed as ``leaf[indices]`` (numpy leaves stay numpy).
    """
    leaves, treedef = _leaves(arrays)
    n = len(leaves[0])
    _check_batch_size(batch_size, n, drop_last)  # now, not at the first `next`
    order = _permutation(int(seed), int(epoch), n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return (_take(leaves, treedef, order[start : start + batch_size]) for start in range(0, stop, batch_size))


def batch_indices(n: int, batch_size: int, step: int, *, seed: int) -> np.ndarray:
    """The example indices (into `n` examples) of the batch that global training step `step`
    (counted from 0) sees: the one schedule of `batch_at` and of the training driver.

    Batch ``step % steps_per_epoch`` of epoch ``step // steps_per_epoch``'s permutation, where
    ``steps_per_epoch = n // batch_size`` (partial batches dropped). Read-only.
    """
    _check_batch_size(batch_size, n, drop_last=True)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}.")
    epoch, index = divmod(int(step), n // batch_size)
    start = index * batch_size
    return _permutation(int(seed), epoch, n)[start : start + batch_size]


def batch_at(arrays: Any, batch_size: int, step: int, *, seed: int) -> Any:
    """The batch that global training step `step` (counted from 0) sees.

    Equal to batch ``step % steps_per_epoch`` of ``batches(arrays, batch_size, seed=seed,
    epoch=step // steps_per_epoch)``, where ``steps_per_epoch = len // batch_size`` (shuffled,
    partial batches dropped); its indices are `batch_indices`.
    """
    leaves, treedef = _leaves(arrays)
    return _take(leaves, treedef, batch_indices(len(leaves[0]), batch_size, step, seed=seed))
