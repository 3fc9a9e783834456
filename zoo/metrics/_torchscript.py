"""Read the arrays of a TorchScript archive (`torch.jit.save`'s zip) without torch and without running its code.

A TorchScript `.pt` file is a zip holding `<root>/data.pkl` (a pickle of the module tree), `<root>/data/<key>`
(raw little-endian tensor storages) and `<root>/code/` (TorchScript source, which we only ever read as text).

The pickle is read by zoo's one restricted PyTorch reader (`zoo._torch_pickle`: tensor rebuilding, storage types and
`collections.OrderedDict`, nothing else), to which this module adds only:

- `torch.jit._pickle.build_intlist` / `build_doublelist` / `build_boollist`: replaced by list checkers;
- `__torch__.<path>.<Class>` (the classes of the scripted modules themselves): replaced by `_ScriptObject`, an inert
  record that only stores the attribute dict it is given. No class from the archive is ever imported.

Any other global (`os.system`, `builtins.eval`, ...) raises `CheckpointError` before it is resolved, so nothing in
the file executes.
"""

import collections
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._errors import CheckpointError
from .._torch_pickle import IDENTIFIER, Function, TorchTensor, read_zip_pickle


__all__ = ["read_torchscript"]


class _ScriptObject:
    """Inert stand-in for an instance of a scripted `__torch__.*` class: it records the attribute dict, nothing more."""

    qualified_name: str = "__torch__"

    def __new__(cls):
        self = object.__new__(cls)
        self.__dict__["_attributes"] = {}
        return self

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise CheckpointError(f"TorchScript object {self.qualified_name} has a non-dict state.")
        self.__dict__["_attributes"] = dict(state)

    def __setattr__(self, name: str, value: object) -> None:
        raise CheckpointError("TorchScript objects are read-only records.")


def _check_list(kind: type) -> Callable[[Any], list]:
    def build(values: Any) -> list:
        if not isinstance(values, list) or not all(type(v) is kind for v in values):
            raise CheckpointError(f"Malformed TorchScript {kind.__name__} list.")
        return list(values)

    return build


_LIST_BUILDERS: dict[tuple[str, str], object] = {
    ("torch.jit._pickle", "build_intlist"): Function(_check_list(int)),
    ("torch.jit._pickle", "build_doublelist"): Function(_check_list(float)),
    ("torch.jit._pickle", "build_boollist"): Function(_check_list(bool)),
}


def _script_classes() -> Callable[[str, str], type[_ScriptObject] | None]:
    """Resolves `__torch__.<path>.<Class>` to a fresh subclass of our inert record (one per name and archive)."""
    classes: dict[str, type[_ScriptObject]] = {}

    def find(module: str, name: str) -> type[_ScriptObject] | None:
        parts = module.split(".")
        if parts[0] != "__torch__" or not all(IDENTIFIER.match(p) for p in [*parts, name]):
            return None
        qualified = f"{module}.{name}"
        if qualified not in classes:
            # The archive's class itself is never looked up.
            classes[qualified] = type(name, (_ScriptObject,), {"qualified_name": qualified})
        return classes[qualified]

    return find


def _flatten(obj: object, prefix: str, tensors: dict, attributes: dict) -> None:
    if isinstance(obj, _ScriptObject):
        for key, value in obj._attributes.items():
            _flatten(value, f"{prefix}.{key}" if prefix else key, tensors, attributes)
    elif isinstance(obj, TorchTensor):
        tensors[prefix] = obj.array
    elif isinstance(obj, (dict, collections.OrderedDict)) and not obj:
        return
    elif obj is None or isinstance(obj, (bool, int, float, str, list, tuple)):
        attributes[prefix] = obj
    else:
        raise CheckpointError(f"Unexpected value of type {type(obj).__name__} at {prefix!r} in the archive.")


def read_torchscript(file: str | Path | BinaryIO) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Read a TorchScript archive's tensors and plain attributes, executing nothing from it.

    **Arguments:**

    - `file`: the `.pt` file (a path, or a binary file object positioned anywhere).

    **Returns:** `(tensors, attributes)`, both keyed by the dotted attribute path from the root module
    (`"net.layers.conv.weight"`); tensors are contiguous numpy arrays, attributes the ints, lists and flags.

    **Raises:** `CheckpointError` if the file is not such an archive, or its pickle names any global outside the
    allow-list of this module.
    """
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{file} is not a TorchScript zip archive: {e}") from e
    tensors: dict[str, np.ndarray] = {}
    attributes: dict[str, object] = {}
    with archive:  # the storages are read as _flatten asks for them
        obj = read_zip_pickle(
            archive, file, extra_globals=_LIST_BUILDERS, find_extra=_script_classes(),
            allowed="tensor rebuilding, storage types, OrderedDict and TorchScript module records",
        )
        try:
            _flatten(obj, "", tensors, attributes)
        except RecursionError as e:
            raise CheckpointError(f"The module tree in {file} is nested too deeply.") from e
    return tensors, attributes
