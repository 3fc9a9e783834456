"""Checkpoint folders: ``config.json`` + Orbax ``weights/`` + ``README.md`` (the card).

`save` builds the folder with `zoo._io.atomic_dir` (a temporary sibling renamed into place),
so an interrupted save never leaves a folder that loads. The array leaves go through the one
leaf codec, `zoo._leaves`. `load_checkpoint` rebuilds the module skeleton from the config with
`eqx.filter_eval_shape` and restores the array leaves into it, checking every file's SHA-256,
every leaf's shape and dtype first.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from . import _leaves
from ._card import existing_body, render_card
from ._config import AbstractConfig, config_type
from ._errors import CheckpointError, ConfigError, UnknownModelError
from ._hashing import sha256_file
from ._io import atomic_dir, atomic_write_text
from ._leaves import Sharding as Sharding
from ._model import AbstractModel, num_params
from ._version import __version__


FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_DIR = "weights"
CARD_FILE = "README.md"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model, its EMA twin (or None), config and metadata."""

    model: AbstractModel
    ema: AbstractModel | None
    config: AbstractConfig
    meta: dict[str, Any]
    path: Path


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
    leaves = _leaves.leaves_with_paths(model)  # their paths and shapes go to config.json
    tree: dict[str, Any] = {"model": _leaves.to_items(model)}
    if ema is not None:
        tree["ema"] = _leaves.to_items(ema)
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

    def fill(tmp: Path) -> None:
        _leaves.write(tmp / WEIGHTS_DIR, tree)
        meta["weights"] = {"format": "orbax", "files": _file_hashes(tmp / WEIGHTS_DIR)}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / CARD_FILE).write_text(render_card(meta, card_body))

    return atomic_dir(path, fill, overwrite=overwrite)


def _check_structure(model: AbstractModel) -> None:
    for p, leaf in _leaves.leaves_with_paths(model):
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
    path = Path(path)
    meta = read_meta(path)
    try:
        config = config_type(meta["config_type"]).from_dict(meta["config"])
    except UnknownModelError as e:
        raise UnknownModelError(f"{path / CONFIG_FILE}: {e}") from None
    _verify_files(path, meta)
    skeleton = _skeleton(config)
    _compare_leaves(path, meta["leaves"], _leaves.leaves_with_paths(skeleton, _leaves.is_shape))
    abstract = {"model": _leaves.abstract_items(skeleton, sharding, _leaves.is_shape)}
    if meta.get("has_ema"):
        abstract["ema"] = dict(abstract["model"])
    try:
        restored = _leaves.restore(path / WEIGHTS_DIR, abstract)
    except Exception as e:  # tensorstore / orbax errors are not user-friendly
        raise CheckpointError(
            f"could not read the weights in {path / WEIGHTS_DIR}: {type(e).__name__}: {e}. "
            "Re-download or re-save the checkpoint."
        ) from e

    model = _leaves.from_items(skeleton, restored["model"], _leaves.is_shape)
    ema = _leaves.from_items(skeleton, restored["ema"], _leaves.is_shape) if "ema" in restored else None
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
    config: dict[str, Any] | None = None,
) -> None:
    """Add measured `metrics` (merged by name), `training` facts or card fields to an
    existing checkpoint, rewriting ``config.json`` and ``README.md`` atomically.
    The weights are untouched; a hand-written card body is kept (pass `card_body` to
    replace it) and its generated training/metrics tables are refreshed.

    `config`: changes to config fields that leave the weights as they are (e.g. an NCSN's
    sampler settings, ``{"steps_per_level": 20}``): checked by building the changed config's
    model skeleton, whose arrays must be the stored ones (a change that alters them raises
    `CheckpointError` and writes nothing)."""
    path = Path(path)
    meta = read_meta(path)
    if config:
        changed = config_type(meta["config_type"]).from_dict(meta["config"]).replace(**config)
        _compare_leaves(path, meta["leaves"], _leaves.leaves_with_paths(_skeleton(changed), _leaves.is_shape))
        meta["config"] = changed.to_dict()
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
        card_body = existing_body(path / CARD_FILE)  # keep a hand-written card, refresh its facts
    for name, text in ((CONFIG_FILE, json.dumps(meta, indent=2) + "\n"), (CARD_FILE, render_card(meta, card_body))):
        atomic_write_text(path / name, text)
