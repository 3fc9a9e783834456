"""Checkpoint folders: ``config.json`` + Orbax ``weights/`` + ``README.md`` (the card).

`save` writes into a temporary sibling folder and renames it into place, so an
interrupted save never leaves a folder that loads. `load_checkpoint` rebuilds the module
skeleton from the config with `eqx.filter_eval_shape` and restores the array leaves
into it, checking every file's SHA-256, every leaf's shape and dtype first.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from ._config import AbstractConfig, config_type
from ._errors import CheckpointError, ConfigError, UnknownModelError
from ._hashing import sha256_file
from ._model import AbstractModel, num_params
from ._version import __version__


FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_DIR = "weights"
CARD_FILE = "README.md"

Sharding = jax.sharding.Sharding | Callable[[jax.ShapeDtypeStruct], jax.sharding.Sharding] | None


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model, its EMA twin (or None), config and metadata."""

    model: AbstractModel
    ema: AbstractModel | None
    config: AbstractConfig
    meta: dict[str, Any]
    path: Path


def _is_shape(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct)


def _leaves_with_paths(tree: Any, is_leaf: Callable[[Any], bool]) -> list[tuple[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat if is_leaf(leaf)]


def _array_leaves(model: Any) -> list[tuple[str, Any]]:
    return _leaves_with_paths(eqx.filter(model, eqx.is_array), eqx.is_array)


def _as_dict(leaves: list[tuple[str, Any]]) -> dict[str, Any]:
    # Orbax item names: zero-padded indices (the paths themselves are in config.json).
    return {f"{i:05d}": leaf for i, (_, leaf) in enumerate(leaves)}




def _file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _leaf_spec(leaves: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [{"path": p, "shape": list(x.shape), "dtype": str(x.dtype)} for p, x in leaves]


def save(
    model: AbstractModel,
    path: str | os.PathLike,
    *,
    ema: AbstractModel | None = None,
    name: str | None = None,
    training: dict[str, Any] | None = None,
    metrics: list[dict[str, Any]] | None = None,
    card: dict[str, Any] | None = None,
    card_body: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Save `model` (and its EMA twin `ema`) as a checkpoint folder at `path`.

    **Arguments:**

    - `training`: facts about training (steps, dataset, hardware, wall_time_s, command).
    - `metrics`: measured metrics, each ``{"name", "value", "dataset", "split", "command"}``.
    - `card`: card metadata (``license``, ``tags``, ``summary``, ``datasets``).
    - `card_body`: the model card's Markdown body (else one is generated).
    - `overwrite`: replace an existing checkpoint at `path` (atomically).

    Returns the path. The folder appears complete or not at all.
    """
    if not isinstance(model, AbstractModel):
        raise TypeError(f"zoo.save expects a zoo model, got {type(model).__name__}")
    config = model.config
    if ema is not None and (type(ema) is not type(model) or ema.config != config):
        raise ConfigError("the EMA model must have the same type and config as the model")
    path = Path(path)
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    for m in (model, ema):
        if m is not None:
            _check_structure(m)
    leaves = _array_leaves(model)
    tree: dict[str, Any] = {"model": _as_dict(leaves)}
    if ema is not None:
        tree["ema"] = _as_dict(_array_leaves(ema))
    for metric in metrics or []:
        missing = {"name", "value", "command"} - set(metric)
        if missing:
            raise ValueError(f"metric {metric} lacks {sorted(missing)}: every reported figure names its command")
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "zoo_version": __version__,
        "name": name or path.name,
        "family": type(config).family,
        "config_type": type(config).type_name,
        "config": config.to_dict(),
        "num_params": num_params(model),
        "has_ema": ema is not None,
        "leaves": _leaf_spec(leaves),
        "training": dict(training or {}),
        "metrics": list(metrics or []),
        "card": dict(card or {}),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        _write_weights(tmp / WEIGHTS_DIR, tree)
        meta["weights"] = {"format": "orbax", "files": _file_hashes(tmp / WEIGHTS_DIR)}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / CARD_FILE).write_text(render_card(meta, card_body))
        _swap_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


FACTS_MARKER = "<!-- zoo:facts -->"


def render_card(meta: dict[str, Any], body: str | None = None) -> str:
    """The model card (Hub front matter + Markdown) for checkpoint metadata `meta`.

    A hand-written `body` gets the training facts and the measured metrics (each with
    the command that measured it) generated from `meta` at its ``<!-- zoo:facts -->``
    marker, or at its end: numbers on cards come from config.json, never typed by hand.
    """
    from ._hub import _generated_body, build_card

    if body is not None:
        generated = _generated_body(meta, None, str(meta.get("name", "")))
        cut = min(
            (i for i in (generated.find("## Training"), generated.find("## Metrics")) if i >= 0), default=len(generated)
        )
        facts = generated[cut:].strip()
        # Delimited, so `annotate` can regenerate the facts inside a hand-written card later.
        facts = f"{_FACTS_START}\n{facts}\n{_FACTS_END}"
        if FACTS_MARKER in body:
            body = body.replace(FACTS_MARKER, facts)
        else:
            body = body.rstrip() + "\n\n" + facts + "\n"
    return str(build_card(meta, body))


_FACTS_START, _FACTS_END = "<!-- zoo:facts:start -->", "<!-- zoo:facts:end -->"


def _existing_body(path: Path) -> str | None:
    """The hand-written body of a checkpoint's card, with its generated facts replaced by
    the marker again; None for a fully generated card."""
    from ._hub import _strip_front_matter

    card = path / CARD_FILE
    text = _strip_front_matter(card.read_text()) if card.is_file() else ""
    if _FACTS_START not in text or _FACTS_END not in text:
        return None
    head, rest = text.split(_FACTS_START, 1)
    return head + FACTS_MARKER + rest.split(_FACTS_END, 1)[1]


def _write_weights(directory: Path, tree: dict[str, Any]) -> None:
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory.absolute(), tree)
        ckptr.wait_until_finished()


def _swap_into_place(tmp: Path, path: Path) -> None:
    if not path.exists():
        os.rename(tmp, path)
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _check_structure(model: AbstractModel) -> None:
    for p, leaf in _array_leaves(model):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            raise TypeError(f"leaf {p} is a PRNG key array; store raw key data instead")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint folder's ``config.json``."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint folder at {path}")
    cfg = path / CONFIG_FILE
    if not cfg.is_file():
        raise CheckpointError(
            f"{cfg} is missing: {path} is not a zoo checkpoint (expected {CONFIG_FILE}, {WEIGHTS_DIR}/, {CARD_FILE}). "
            "Re-download it (`zoo download NAME`) or save it again with zoo.save."
        )
    try:
        meta = json.loads(cfg.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{cfg} is not valid JSON ({e}); the checkpoint is corrupt: re-download or re-save it"
        ) from e
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{cfg} has no integer format_version; it was not written by zoo.save")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg} has format_version {version}, newer than this zoo understands ({FORMAT_VERSION}); "
            "upgrade zoo: `pip install -U zoo`"
        )
    for field in ("family", "config_type", "config", "leaves", "weights"):
        if field not in meta:
            raise CheckpointError(
                f"{cfg} lacks the field {field!r}; the checkpoint is corrupt: re-download or re-save it"
            )
    return meta


def _verify_files(path: Path, meta: dict[str, Any]) -> None:
    root = path / WEIGHTS_DIR
    expected: dict[str, str] = meta["weights"]["files"]
    if not root.is_dir():
        raise CheckpointError(f"{root} is missing; re-download the checkpoint (`zoo download NAME`)")
    for rel, digest in expected.items():
        f = root / rel
        if not f.is_file():
            raise CheckpointError(
                f"weights file {f} is missing; the checkpoint is incomplete: re-download or re-save it"
            )
        if sha256_file(f) != digest:
            raise CheckpointError(
                f"weights file {f} is corrupt or truncated (SHA-256 mismatch); re-download or re-save the checkpoint"
            )


def _skeleton(config: AbstractConfig) -> AbstractModel:
    return eqx.filter_eval_shape(lambda k: config.build(key=k), jax.random.key(0))


def _abstract(leaves: list[tuple[str, jax.ShapeDtypeStruct]], sharding: Sharding) -> dict[str, jax.ShapeDtypeStruct]:
    out = {}
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    for i, (_, s) in enumerate(leaves):
        sh = sharding(s) if callable(sharding) else (sharding or default)
        out[f"{i:05d}"] = jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh)
    return out


def _compare_leaves(path: Path, stored: list[dict[str, Any]], wanted: list[tuple[str, Any]]) -> None:
    cfg = path / CONFIG_FILE
    if len(stored) != len(wanted):
        raise CheckpointError(
            f"{cfg} lists {len(stored)} weight arrays but its config builds a model with {len(wanted)}: "
            "the checkpoint was written by a different version of this model; re-save it with the current zoo"
        )
    for s, (p, w) in zip(stored, wanted):
        if s["path"] != p or tuple(s["shape"]) != tuple(w.shape) or s["dtype"] != str(w.dtype):
            raise CheckpointError(
                f"{cfg}: weight {s['path']} is {s['dtype']}{tuple(s['shape'])} but the config builds "
                f"{p} as {w.dtype}{tuple(w.shape)}; the weights do not match the config (edited config.json, "
                "or a checkpoint from another zoo version): re-download or re-save it"
            )


def load_checkpoint(path: str | os.PathLike, *, sharding: Sharding = None) -> Checkpoint:
    """Load a checkpoint folder. `sharding` places each restored array (default: the
    first device); pass a `Sharding` or a function of the leaf's `ShapeDtypeStruct` to
    restore into another device layout."""
    import orbax.checkpoint as ocp

    path = Path(path)
    meta = read_meta(path)
    try:
        config = config_type(meta["config_type"]).from_dict(meta["config"])
    except UnknownModelError as e:
        raise UnknownModelError(f"{path / CONFIG_FILE}: {e}") from None
    _verify_files(path, meta)
    skeleton = _skeleton(config)
    wanted = _leaves_with_paths(skeleton, _is_shape)
    _compare_leaves(path, meta["leaves"], wanted)
    abstract = {"model": _abstract(wanted, sharding)}
    if meta.get("has_ema"):
        abstract["ema"] = _abstract(wanted, sharding)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            restored = ckptr.restore((path / WEIGHTS_DIR).absolute(), abstract)
    except Exception as e:  # tensorstore / orbax errors are not user-friendly
        raise CheckpointError(
            f"could not read the weights in {path / WEIGHTS_DIR}: {type(e).__name__}: {e}. "
            "Re-download or re-save the checkpoint."
        ) from e

    def build(arrays: dict[str, Any]) -> AbstractModel:
        values = [arrays[f"{i:05d}"] for i in range(len(wanted))]
        flat, treedef = jax.tree_util.tree_flatten(skeleton, is_leaf=_is_shape)
        it = iter(values)
        flat = [next(it) if _is_shape(x) else x for x in flat]
        return jax.tree_util.tree_unflatten(treedef, flat)

    model = build(restored["model"])
    ema = build(restored["ema"]) if "ema" in restored else None
    return Checkpoint(model=model, ema=ema, config=config, meta=meta, path=path)


def count_bytes(path: Path) -> int:
    return int(sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()))


def annotate(
    path: str | os.PathLike,
    *,
    metrics: list[dict[str, Any]] | None = None,
    training: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    card_body: str | None = None,
) -> None:
    """Add measured `metrics` (merged by name), `training` facts or card fields to an
    existing checkpoint, rewriting ``config.json`` and ``README.md`` atomically.
    The weights are untouched; a hand-written card body is kept (pass `card_body` to
    replace it) and its generated training/metrics tables are refreshed."""
    path = Path(path)
    meta = read_meta(path)
    if metrics:
        for metric in metrics:
            missing = {"name", "value", "command"} - set(metric)
            if missing:
                raise ValueError(f"metric {metric} lacks {sorted(missing)}: every reported figure names its command")
        new = {m["name"] for m in metrics}
        meta["metrics"] = [m for m in meta.get("metrics", []) if m["name"] not in new] + list(metrics)
    if training:
        meta["training"] = {**meta.get("training", {}), **training}
    if card:
        meta["card"] = {**meta.get("card", {}), **card}
    if card_body is None:
        card_body = _existing_body(path)  # keep a hand-written card, refresh its facts
    for name, text in ((CONFIG_FILE, json.dumps(meta, indent=2) + "\n"), (CARD_FILE, render_card(meta, card_body))):
        tmp = path / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.write_text(text)
        os.replace(tmp, path / name)
