"""`zoo.load`: by registered name, by ``hf://org/repo[@revision]``, or from a folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ._checkpoint import Checkpoint, Sharding, load_checkpoint
from ._errors import CheckpointError, HubError
from ._model import AbstractModel
from ._registry import _MODELS, _load_all, bundled_path, model_info


def resolve(name_or_uri: str | os.PathLike, *, offline: bool | None = None) -> Path:
    """The local checkpoint folder for a name, ``hf://`` URI or path (downloading if needed).

    Resolution order: ``hf://`` URIs go to the Hub; a registered name resolves to its
    bundled checkpoint, else to its Hub repo at the pinned revision; anything else is a
    folder. (Prefix a folder that shares a registered name with ``./``.)
    """
    from . import _hub

    if isinstance(name_or_uri, os.PathLike):
        return _as_folder(Path(name_or_uri))
    s = str(name_or_uri)
    if s.startswith("hf://"):
        repo_id, revision = _hub.parse_hf_uri(s)
        return _hub.download(repo_id, revision, offline=offline)
    _load_all()
    if s in _MODELS:
        local = bundled_path(s)
        if local is not None:
            return local
        entry = model_info(s)
        if entry.hub_repo is None:
            raise HubError(f"model {s!r} has neither a bundled checkpoint nor a Hub repo; reinstall zoo")
        try:
            return _hub.download(entry.hub_repo, entry.revision, offline=offline)
        except HubError as e:
            if entry.how_to_obtain is None:
                raise
            raise HubError(f"{e}\n{entry.how_to_obtain}") from e
    p = Path(s).expanduser()
    if p.exists() or os.sep in s or s.startswith("."):
        return _as_folder(p)
    model_info(s)  # raises UnknownModelError with suggestions
    raise AssertionError("unreachable")


def _as_folder(p: Path) -> Path:
    if not p.exists():
        raise CheckpointError(f"no checkpoint folder at {p}")
    return p


def load_bundle(
    name_or_uri: str | os.PathLike, *, offline: bool | None = None, sharding: Sharding = None
) -> Checkpoint:
    """Like `load`, returning the whole `Checkpoint` (model, EMA, config, metadata)."""
    return load_checkpoint(resolve(name_or_uri, offline=offline), sharding=sharding)


def load(
    name_or_uri: str | os.PathLike,
    *,
    weights: Literal["ema", "raw"] | None = None,
    offline: bool | None = None,
    sharding: Sharding = None,
) -> AbstractModel:
    """Load a pretrained model.

    **Arguments:**

    - `name_or_uri`: a registered name (``"ncsn-mnist"``; see `zoo.list_models`), a Hub
      URI ``"hf://org/repo"`` or ``"hf://org/repo@revision"``, or a checkpoint folder.
    - `weights`: ``"ema"`` (the default where the checkpoint has EMA weights: what its
      card's samples and metrics used) or ``"raw"`` (the optimiser's weights).
    - `offline`: force (True) or forbid (False) cache-only Hub access; default follows
      ``HF_HUB_OFFLINE``.
    - `sharding`: where to place the arrays (default: the first device).

    The model is ready for `zoo.sample` / `zoo.evaluate` and for `zoo.train` (fine-tuning).
    """
    ckpt = load_bundle(name_or_uri, offline=offline, sharding=sharding)
    if weights is None:
        weights = "ema" if ckpt.ema is not None else "raw"
    if weights == "ema":
        if ckpt.ema is None:
            raise CheckpointError(f"{ckpt.path} has no EMA weights; use weights='raw'")
        return ckpt.ema
    if weights != "raw":
        raise ValueError(f"weights must be 'ema' or 'raw', not {weights!r}")
    return ckpt.model
