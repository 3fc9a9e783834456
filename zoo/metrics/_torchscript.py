"""Read the arrays of a TorchScript archive (`torch.jit.save`'s zip) without torch and without running its code.

A TorchScript `.pt` file is a zip holding `<root>/data.pkl` (a pickle of the module tree), `<root>/data/<key>`
(raw little-endian tensor storages) and `<root>/code/` (TorchScript source, which we only ever read as text).

The pickle is read by `_RestrictedUnpickler`, which resolves only these globals:

- `torch._utils._rebuild_tensor_v2`: replaced by our own function that slices the storage with numpy;
- `torch.<Type>Storage` (the typed storages of numeric dtypes): inert markers naming a numpy dtype;
- `collections.OrderedDict`;
- `torch.jit._pickle.build_intlist` / `build_doublelist` / `build_boollist`: replaced by list checkers;
- `__torch__.<path>.<Class>` (the classes of the scripted modules themselves): replaced by `_ScriptObject`, an inert
  record that only stores the attribute dict it is given. No class from the archive is ever imported.

Any other global (`os.system`, `builtins.eval`, ...) raises `CheckpointError` before it is resolved, so nothing in
the file executes.
"""

import collections
import io
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._errors import CheckpointError


__all__ = ["read_torchscript"]

_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _Sealed:
    """Base of our stand-ins: pickle's `BUILD` opcode (which calls `__setstate__`) cannot alter them."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise CheckpointError(f"The archive tries to modify a {type(self).__name__}; refusing it.")


class _StorageType(_Sealed):
    """Marker for a `torch.<Type>Storage` global: just the numpy dtype it stands for."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: str):
        self.name = name
        self.dtype = np.dtype(dtype)


class _Storage(_Sealed):
    """One raw storage read from `data/<key>`, as a read-only 1-d numpy array."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


class _Tensor(_Sealed):
    """A tensor rebuilt from the archive (a contiguous numpy copy)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


class _Function(_Sealed):
    """An allow-listed callable: one of our own functions, sealed against `BUILD`."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., Any]):
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


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


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Tensor:
    """Our replacement for `torch._utils._rebuild_tensor_v2`: a bounds-checked strided view, copied."""
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _Storage):
        raise CheckpointError("A tensor in the archive does not refer to a storage.")
    storage = storage.array
    ints = (storage_offset, *size, *stride) if isinstance(size, tuple) and isinstance(stride, tuple) else None
    if ints is None or len(size) != len(stride) or not all(type(i) is int and i >= 0 for i in ints):
        raise CheckpointError("A tensor in the archive has a malformed size or stride.")
    extent = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if all(n > 0 for n in size) and extent > storage.size:
        raise CheckpointError("A tensor in the archive reaches past the end of its storage.")
    if any(n == 0 for n in size):
        return _Tensor(np.zeros(size, storage.dtype))
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return _Tensor(np.ascontiguousarray(view))


_ALLOWED: dict[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): _Function(_rebuild_tensor_v2),
    ("collections", "OrderedDict"): _Function(collections.OrderedDict),
    ("torch.jit._pickle", "build_intlist"): _Function(_check_list(int)),
    ("torch.jit._pickle", "build_doublelist"): _Function(_check_list(float)),
    ("torch.jit._pickle", "build_boollist"): _Function(_check_list(bool)),
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for `data.pkl` that resolves only the allow-listed globals (see the module docstring)."""

    def __init__(self, file: BinaryIO, read_storage: Callable[[str, np.dtype, int], np.ndarray]):
        super().__init__(file)
        self._read_storage = read_storage
        self._script_classes: dict[str, type[_ScriptObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        parts = module.split(".")
        if parts[0] == "__torch__" and all(_IDENTIFIER.match(p) for p in [*parts, name]):
            qualified = f"{module}.{name}"
            if qualified not in self._script_classes:
                # A fresh subclass of our own inert record; the archive's class itself is never looked up.
                self._script_classes[qualified] = type(name, (_ScriptObject,), {"qualified_name": qualified})
            return self._script_classes[qualified]
        raise CheckpointError(
            f"Refusing to load the pickle global {module}.{name}: only tensor rebuilding, storage types, "
            "OrderedDict and TorchScript module records are allowed. The file is not a plain weights archive."
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"Unsupported persistent id in the archive: {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or type(numel) is not int:
            raise CheckpointError(f"Malformed storage reference in the archive: {pid!r:.80}")
        return _Storage(self._read_storage(key, storage_type.dtype, numel))


def _flatten(obj: object, prefix: str, tensors: dict, attributes: dict) -> None:
    if isinstance(obj, _ScriptObject):
        for key, value in obj._attributes.items():
            _flatten(value, f"{prefix}.{key}" if prefix else key, tensors, attributes)
    elif isinstance(obj, _Tensor):
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
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(f"{file} has no single <root>/data.pkl; it is not a TorchScript archive.")
        root = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        big_endian = f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() == b"big"

        def read_storage(key: str, dtype: np.dtype, numel: int) -> np.ndarray:
            member = f"{root}data/{key}"
            if not _IDENTIFIER.match("k" + key) or member not in names:
                raise CheckpointError(f"Storage {key!r} is missing from {file}.")
            raw = archive.read(member)
            if len(raw) != numel * dtype.itemsize:
                raise CheckpointError(f"Storage {key!r} in {file} has {len(raw)} bytes, expected {numel} elements.")
            storage = np.frombuffer(raw, dtype.newbyteorder(">") if big_endian else dtype)
            return storage.astype(dtype.newbyteorder("="), copy=False)

        try:
            obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), read_storage).load()
        except CheckpointError:
            raise
        except Exception as e:  # noqa: BLE001 - any malformed pickle is reported the same way
            raise CheckpointError(f"Could not read the pickle in {file}: {type(e).__name__}: {e}") from e
    tensors: dict[str, np.ndarray] = {}
    attributes: dict[str, object] = {}
    try:
        _flatten(obj, "", tensors, attributes)
    except RecursionError as e:
        raise CheckpointError(f"The module tree in {file} is nested too deeply.") from e
    return tensors, attributes
