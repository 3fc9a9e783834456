"""Registered pretrained models and training presets, and the name -> object tables.

Families register their pretrained models (``register_model``) and training presets
(``register_preset``) when imported. A registered model resolves to the checkpoint
bundled under ``checkpoints/<name>`` when present, else to its Hub repo at the pinned
revision.

`Registry` is the one helper behind every other name table (estimators, kernel score
estimators, samplers, ...): filled by a ``@table.register(name)`` decorator next to what
it names, read by ``table.get(name)``, which explains an unknown name.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from ._errors import ConfigError, UnknownModelError


_T = TypeVar("_T")


class Registry(Generic[_T]):
    """A table from names to objects (classes, builder functions), filled by a decorator.

        SAMPLERS = Registry("sampler")

        @SAMPLERS.register("gwg")
        class GWG(AbstractSampler): ...

        SAMPLERS.get("gwg")  # GWG; an unknown name raises a ConfigError with close matches

    Iterating yields the names in registration order; ``name in table`` tests membership.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, _T] = {}

    def register(self, name: str) -> Callable[[_T], _T]:
        """Decorator: register the decorated object under `name` and return it unchanged."""

        def decorate(obj: _T) -> _T:
            other = self._entries.get(name)
            if other is not None and getattr(other, "__qualname__", other) != getattr(obj, "__qualname__", obj):
                raise ValueError(f"{self.kind} name {name!r} is already registered to {other!r}")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> _T:
        """The object registered as `name`; a `ConfigError` naming close matches and every
        registered name otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(self._entries)
            raise ConfigError(f"unknown {self.kind} {name!r}.{hint} Choose one of: {known}.") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A pretrained model: its name, family, data set and where its weights live."""

    name: str
    family: str
    dataset: str
    summary: str
    hub_repo: str | None = None
    revision: str | None = None  # a pinned commit sha of `hub_repo`
    preset: str | None = None  # the training preset that produced it
    how_to_obtain: str | None = None  # said when the weights cannot be fetched (e.g. a conversion command)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named training recipe: model config, train config and data set."""

    name: str  # "family/config", e.g. "ncsn/mnist"
    config: Any  # AbstractConfig
    train: Any  # TrainConfig
    dataset: str
    split: str = "train"
    summary: str = ""
    tags: tuple[str, ...] = ()  # model-card tags of what it trains (beside "zoo" and the family)
    license: str = "mit"  # model-card license of what it trains


_MODELS: dict[str, ModelEntry] = {}
_PRESETS: dict[str, Preset] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    _MODELS[entry.name] = entry
    return entry


def register_preset(preset: Preset) -> Preset:
    _PRESETS[preset.name] = preset
    return preset


def _load_all() -> None:
    from ._families import import_families

    import_families()


def _unknown(kind: str, name: str, known: list[str]) -> UnknownModelError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(f"unknown {kind} {name!r}.{hint} Run `zoo list` to see them all.")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style `pattern` (``"ncsn-*"``)."""
    _load_all()
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelEntry:
    _load_all()
    if name not in _MODELS:
        raise _unknown("model", name, list(_MODELS))
    return _MODELS[name]


def list_presets(pattern: str = "*") -> list[str]:
    _load_all()
    return sorted(n for n in _PRESETS if fnmatch.fnmatchcase(n, pattern))


def get_preset(name: str) -> Preset:
    _load_all()
    if name not in _PRESETS:
        raise _unknown("training preset", name, list(_PRESETS))
    return _PRESETS[name]


def checkpoints_dir() -> Path:
    """Where bundled checkpoints live: ``$ZOO_CHECKPOINTS_DIR``, else the repo's or the
    installed package's ``checkpoints/``."""
    env = os.environ.get("ZOO_CHECKPOINTS_DIR")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parent.parent / "checkpoints"
    if source.is_dir():
        return source
    import importlib.util

    spec = importlib.util.find_spec("zoo.checkpoints")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return source


def bundled_path(name: str) -> Path | None:
    p = checkpoints_dir() / name
    return p if (p / "config.json").is_file() else None
