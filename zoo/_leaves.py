"""Pytrees as Orbax items: the one leaf codec of checkpoints and training state.

The selected leaves of a pytree (its arrays, in `jax.tree_util` order) are stored as a flat dict
``{"00000": leaf, "00001": leaf, ...}``: Orbax sees neither the tree structure nor Python objects,
and the structure comes back from a template (a freshly built model, its `eqx.filter_eval_shape`
skeleton, or the live training state). Checkpoint folders (`zoo.save`) write such dicts with
`write`/`restore`; the training driver hands the same dicts to an Orbax `CheckpointManager`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree


Sharding = jax.sharding.Sharding | Callable[[jax.ShapeDtypeStruct], jax.sharding.Sharding] | None

# Orbax writes this (holding the absolute path it committed to) into every folder it saves; the format
# does not need it (local saves are atomic by rename) and a path of the writing machine must not ship.
_COMMIT_FILE = "commit_success.txt"


def item_name(i: int) -> str:
    """The Orbax item name of leaf `i`: a zero-padded index."""
    return f"{i:05d}"


def is_shape(x: Any) -> bool:
    """A leaf of an `eqx.filter_eval_shape` skeleton."""
    return isinstance(x, jax.ShapeDtypeStruct)


def leaves_with_paths(tree: PyTree, is_leaf: Callable[[Any], bool] = eqx.is_array) -> list[tuple[str, Any]]:
    """``(keystr path, leaf)`` of the leaves of `tree` that `is_leaf` selects, in flattening order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat if is_leaf(leaf)]


def to_items(tree: PyTree, is_leaf: Callable[[Any], bool] = eqx.is_array) -> dict[str, Any]:
    """``{"00000": leaf, ...}`` of the leaves of `tree` that `is_leaf` selects."""
    flat = jax.tree_util.tree_leaves(tree, is_leaf=is_leaf)
    return {item_name(i): leaf for i, leaf in enumerate(x for x in flat if is_leaf(x))}


def abstract_items(
    tree: PyTree, sharding: Sharding = None, is_leaf: Callable[[Any], bool] = eqx.is_array
) -> dict[str, jax.ShapeDtypeStruct]:
    """The restore template of `to_items(tree)`: each selected leaf's shape and dtype, placed by
    `sharding` (a `Sharding`, or a function of the leaf's `ShapeDtypeStruct`), else where the leaf
    itself lives (else on the first device)."""
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    out = {}
    for name, leaf in to_items(tree, is_leaf).items():
        shape = jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
        if callable(sharding):
            sh = sharding(shape)
        elif sharding is not None:
            sh = sharding
        else:
            sh = getattr(leaf, "sharding", None)
            sh = sh if isinstance(sh, jax.sharding.Sharding) else default
        out[name] = jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sh)
    return out


def from_items(template: PyTree, items: dict[str, Any], is_leaf: Callable[[Any], bool] = eqx.is_array) -> PyTree:
    """`template` with its selected leaves replaced, in order, by ``items["00000"], ...``."""
    flat, treedef = jax.tree_util.tree_flatten(template, is_leaf=is_leaf)
    count = sum(map(is_leaf, flat))
    if len(items) != count:
        raise ValueError(f"{len(items)} stored arrays for a template with {count}")
    values = iter(items[item_name(i)] for i in range(count))
    return jax.tree_util.tree_unflatten(treedef, [next(values) if is_leaf(x) else x for x in flat])


def save_args(items: dict[str, Any]) -> Any:
    """The Orbax save argument of an items dict (for a `CheckpointManager` item)."""
    import orbax.checkpoint as ocp

    return ocp.args.StandardSave(items)


def restore_args(abstract: dict[str, jax.ShapeDtypeStruct]) -> Any:
    """The Orbax restore argument of an `abstract_items` template."""
    import orbax.checkpoint as ocp

    return ocp.args.StandardRestore(abstract)


def write(directory: str | os.PathLike, tree: dict[str, dict[str, Any]]) -> None:
    """Write a (nested) dict of items to the new folder `directory` with Orbax, keeping only what
    the format needs."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory, tree)
        ckptr.wait_until_finished()
    (directory / _COMMIT_FILE).unlink(missing_ok=True)


def restore(directory: str | os.PathLike, abstract: dict[str, Any]) -> dict[str, Any]:
    """Read what `write` wrote, into the layout of `abstract` (nested `abstract_items` dicts)."""
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(Path(directory).absolute(), abstract)
