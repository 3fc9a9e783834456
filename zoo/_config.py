"""Frozen configuration dataclasses and their JSON round trip.

Every model is built from a config: a frozen (hence hashable, hence usable as a static
field of an `eqx.Module`) dataclass, registered under a unique ``type_name`` so a
checkpoint's ``config.json`` can name the class to rebuild.

Config -> model goes by registration: a model class declares the config it is built
from with ``@zoo.model_for(ConfigClass)``, and `AbstractConfig.build` looks it up, so a
family's config module never imports its model module.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._errors import ConfigError, UnknownModelError


if TYPE_CHECKING:
    from ._model import AbstractModel


_CONFIG_TYPES: dict[str, type[AbstractConfig]] = {}
_MODEL_CLASSES: dict[type[AbstractConfig], type[AbstractModel]] = {}

_C = TypeVar("_C", bound="AbstractConfig")


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def _from_json(value: Any) -> Any:
    # JSON has no tuples; configs are frozen so every sequence becomes a tuple.
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


class AbstractConfig(abc.ABC):
    """Base of all model configs. Subclasses are ``@dataclass(frozen=True)``.

    Class variables: ``family`` (the model family name, e.g. ``"ncsn"``) and
    ``type_name`` (unique, e.g. ``"ncsn.NCSNConfig"``). `build` constructs the model
    class registered for the config's type (``@zoo.model_for``) with fresh parameters.
    Every method here is concrete and final: configs add fields, validation
    (``__post_init__``) and derived properties, never redefine these.
    """

    family: ClassVar[str]
    type_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name")
        if name is not None:
            other = _CONFIG_TYPES.get(name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise TypeError(f"config type_name {name!r} already used by {other}")
            _CONFIG_TYPES[name] = cls

    def build(self, *, key: Any) -> AbstractModel:
        """Build the model this config describes, with parameters drawn from `key`:
        ``ModelClass(self, key=key)`` for the class registered with ``@zoo.model_for``."""
        return model_class(type(self))(self, key=key)

    def to_dict(self) -> dict[str, Any]:
        assert dataclasses.is_dataclass(self)
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        assert dataclasses.is_dataclass(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field(s) {unknown}; valid fields are {sorted(names)}. "
                "The checkpoint may come from a newer zoo: upgrade with `pip install -U zoo`."
            )
        try:
            return cls(**{k: _from_json(v) for k, v in data.items()})
        except TypeError as e:
            raise ConfigError(f"cannot build {cls.__name__} from {data}: {e}") from e

    def replace(self: _C, **changes: Any) -> _C:
        """A copy with some fields changed (validated like a new config)."""
        assert dataclasses.is_dataclass(self)
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            close = [c for u in unknown for c in difflib.get_close_matches(u, names, n=1)]
            hint = f" Did you mean {close}?" if close else ""
            raise ConfigError(f"{type(self).__name__} has no field(s) {unknown}.{hint} Its fields are {names}.")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def register_model_class(config_cls: type[AbstractConfig], model_cls: type[AbstractModel]) -> None:
    """Record that `model_cls` is built from `config_cls` (see ``zoo.model_for``)."""
    if not (isinstance(config_cls, type) and issubclass(config_cls, AbstractConfig)):
        raise TypeError(f"{config_cls!r} is not an AbstractConfig subclass")
    if "type_name" not in config_cls.__dict__:
        raise TypeError(f"{config_cls.__name__} has no type_name of its own; only concrete configs build models")
    other = _MODEL_CLASSES.get(config_cls)
    if other is not None and other.__qualname__ != model_cls.__qualname__:
        raise TypeError(f"{config_cls.__name__} already builds {other.__qualname__}, not {model_cls.__qualname__}")
    _MODEL_CLASSES[config_cls] = model_cls


def model_class(config_cls: type[AbstractConfig]) -> type[AbstractModel]:
    """The model class registered for configs of type `config_cls`."""
    if config_cls not in _MODEL_CLASSES:
        from ._families import import_families

        import_families()
    try:
        return _MODEL_CLASSES[config_cls]
    except KeyError:
        raise ConfigError(
            f"no model class is registered for {config_cls.__name__}; decorate the model class with "
            f"`@zoo.model_for({config_cls.__name__})` and import its module"
        ) from None


def model_classes() -> dict[type[AbstractConfig], type[AbstractModel]]:
    """Every registered config class -> model class (after importing the shipped families)."""
    from ._families import import_families

    import_families()
    return dict(_MODEL_CLASSES)


def config_type(name: str) -> type[AbstractConfig]:
    """The registered config class called `name` (e.g. ``"ncsn.NCSNConfig"``)."""
    from ._families import import_families

    import_families()
    try:
        return _CONFIG_TYPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_CONFIG_TYPES), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise UnknownModelError(
            f"unknown config type {name!r}.{hint} Known types: {sorted(_CONFIG_TYPES)}. "
            "If it comes from a newer zoo, upgrade with `pip install -U zoo`."
        ) from None


def config_from_json(data: dict[str, Any]) -> AbstractConfig:
    """Inverse of ``{"config_type": c.type_name, "config": c.to_dict()}``."""
    return config_type(data["config_type"]).from_dict(data["config"])
