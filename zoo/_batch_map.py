"""One padded, jitted map over the leading axis of a data set, a fixed-size batch at a time.

Evaluation code (FID and classifier features, DVAE bounds, NCSN per-level DSM) applies a per-batch function to a
data set too large for one call. `batch_map` is the one loop that does it: every batch has the same shape (the
last one is padded and its padding dropped), so the function compiles once per batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from . import _malloc
from ._conv import filter_jit_with


__all__ = ["batch_map"]


def _apply(fn: Callable[..., PyTree[Array]], batch: PyTree[Array], key: PRNGKeyArray | None, index: Array) -> Any:
    if key is None:
        return fn(batch)
    return fn(batch, key=jax.random.fold_in(key, index))


def _pad(leaf: np.ndarray, size: int) -> np.ndarray:
    """`leaf` grown to `size` rows by repeating its last row: padded rows are valid inputs (zeros may not be)."""
    missing = size - leaf.shape[0]
    if missing == 0:
        return leaf
    return np.concatenate([leaf, np.repeat(leaf[-1:], missing, axis=0)])


def _check_outputs(out: PyTree[Array], batch_size: int) -> None:
    for leaf in jax.tree_util.tree_leaves(out):
        shape = getattr(leaf, "shape", ())
        if not shape or shape[0] != batch_size:
            raise ValueError(
                f"batch_map's function must return arrays with one row per example (leading axis {batch_size}, "
                f"the batch size), got an output of shape {tuple(shape)}. Return per-example values and reduce "
                "the concatenated result instead."
            )


def batch_map(
    fn: Callable[..., PyTree[Array]],
    arrays: PyTree[np.ndarray | Array],
    *,
    batch_size: int,
    key: PRNGKeyArray | None = None,
    progress: bool | str = False,
    compiler_options: Mapping[str, Any] | None = None,
) -> PyTree[np.ndarray]:
    """Apply a per-batch function to `arrays` (a pytree of arrays with a shared leading axis of size `n`),
    `batch_size` rows at a time, and concatenate the per-example outputs.

    **Arguments:**

    - `fn`: maps a batch (the pytree `arrays` with leading axis `batch_size`) to a pytree of arrays with the same
      leading axis: one row per example (typically `jax.vmap` of a single-example function). It is called as
      `fn(batch)`, or `fn(batch, key=k)` when `key` is given. It is jitted with `eqx.filter_jit`, so arrays it
      holds are traced, not baked in: pass an `eqx.Module` (e.g. `network`), a bound method of one
      (`model.bounds`), or `eqx.Partial(f, model, ...)` with a module-level `f`; then one compilation serves
      every call with the same batch shape. (A fresh lambda closing over a model recompiles on every call.)
    - `arrays`: numpy or JAX arrays, read on the host and sent to the device one batch at a time, so the data set
      need not fit in device memory.
    - `batch_size`: rows per call. Every call has exactly this many rows: the last batch is padded by repeating
      its final row, and the padded rows are dropped from the result. Pass `min(batch_size, n)` to avoid
      padding a set smaller than one batch.
    - `key`: when given, batch `i` gets `jax.random.fold_in(key, i)`, so results are deterministic given `key`
      and `batch_size`.
    - `progress`: show a tqdm bar over the examples (`zoo._progress`; hidden off a terminal); a string is its
      description.
    - `compiler_options`: XLA options for the jitted `fn` (e.g. a convolutional model's ``compiler_options()``).

    **Returns:** the concatenated outputs, a pytree of numpy arrays with leading axis `n`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    leaves, treedef = jax.tree_util.tree_flatten(arrays)
    if not leaves:
        raise ValueError("batch_map needs at least one array to map over; got an empty pytree")
    leaves = [np.asarray(leaf) for leaf in leaves]
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        shapes = [leaf.shape for leaf in leaves]
        raise ValueError(f"batch_map's arrays must share a leading axis (one row per example), got shapes {shapes}")
    (n,) = sizes

    def batch(start: int) -> PyTree[np.ndarray]:
        rows = [_pad(leaf[start : start + batch_size], batch_size) for leaf in leaves]
        return jax.tree_util.tree_unflatten(treedef, rows)

    if n == 0:  # no call to make: the outputs' shapes come from tracing one batch
        zeros = [np.zeros((batch_size, *leaf.shape[1:]), leaf.dtype) for leaf in leaves]
        template = jax.tree_util.tree_unflatten(treedef, zeros)
        shapes = eqx.filter_eval_shape(_apply, fn, template, key, np.asarray(0, np.int32))
        _check_outputs(shapes, batch_size)
        return jax.tree_util.tree_map(lambda s: np.zeros((0, *s.shape[1:]), s.dtype), shapes)

    apply = filter_jit_with(_apply, compiler_options)
    bar = None
    if progress:
        from ._progress import tqdm_bar

        bar = tqdm_bar(n, desc=progress if isinstance(progress, str) else "")
    results: list[PyTree[np.ndarray]] = []

    def collect(out: PyTree[Array], rows: int) -> None:
        results.append(jax.tree_util.tree_map(lambda a: np.asarray(a)[:rows], out))
        if bar is not None:
            bar.update(rows)

    pending = None
    try:
        for i, start in enumerate(range(0, n, batch_size)):
            out = apply(fn, batch(start), key, np.asarray(i, np.int32))  # dispatched asynchronously
            _check_outputs(out, batch_size)
            if pending is not None:  # fetch the previous batch while this one runs
                collect(*pending)
            pending = (out, min(batch_size, n - start))
            if i == 0 and _malloc.applied():  # the first batch compiled and ran: settle the heap (zoo/_malloc.py)
                collect(*pending)
                pending = None
                _malloc.settle()
        if pending is not None:
            collect(*pending)
    finally:
        if bar is not None:
            bar.close()
    return jax.tree_util.tree_map(lambda *parts: np.concatenate(parts), *results)
