"""Read PyTorch files without torch and without running anything in them: one restricted reader.

PyTorch writes its files with `pickle` plus raw tensor storages, in two layouts:

- the zip archive (`torch.save` since torch 1.6, and every TorchScript `.pt`): `<root>/data.pkl` (the pickle) and
  `<root>/data/<key>` (each storage's raw bytes; `<root>/byteorder` says big or little endian);
- the legacy stream (`torch.save` before 1.6, or with `_use_new_zipfile_serialization=False`): five pickles in a row
  (a magic number, a protocol version, a dict of system facts, the object itself, the list of storage keys), then
  each storage as an 8-byte element count followed by its bytes, in that order.

Either way the object pickle is read by `Unpickler`, which resolves only these globals:

- `torch._utils._rebuild_tensor_v2`: replaced by our own function that views the storage with numpy (bounds checked);
- `torch.<Type>Storage` and `torch.cuda.<Type>Storage` (the typed storages of numeric dtypes; files saved from a
  GPU by torch < 1.13 name the CUDA ones): inert markers naming a numpy dtype, read to the CPU;
- `collections.OrderedDict`;
- what the caller adds (`extra_globals`, `find_extra`: the TorchScript reader adds its list builders and inert
  records for scripted classes).

Any other global (`os.system`, `builtins.eval`, `torch.nn.Module`, ...) raises `CheckpointError` before it is
resolved, so nothing in the file executes. `lazy_load` yields the object with `TorchTensor` records for its tensors,
whose bytes are read only when asked for (`.array`, `materialise`: a checkpoint's weights without its optimiser
state); `load` returns the whole object with numpy arrays in their place.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ._errors import CheckpointError


__all__ = ["TorchTensor", "Unpickler", "lazy_load", "load", "materialise", "read_zip_pickle", "zip_root"]

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

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# The legacy stream starts with these two pickled ints (torch/serialization.py).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class Sealed:
    """Base of our stand-ins: pickle's `BUILD` opcode (which calls `__setstate__`) cannot alter them."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise CheckpointError(f"The file tries to modify a {type(self).__name__}; refusing it.")


class _StorageType(Sealed):
    """Marker for a `torch.<Type>Storage` global: just the numpy dtype it stands for."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: np.dtype):
        self.name = name
        self.dtype = np.dtype(dtype)


class _Storage(Sealed):
    """One storage: a read-only 1-d numpy array, read from the file on first use (`loader`); a legacy view is a
    slice of another storage."""

    __slots__ = ("_array", "_loader", "dtype", "numel", "base", "offset")

    def __init__(self, dtype: np.dtype, numel: int, *, loader: Callable[[], np.ndarray] | None = None,
                 base: _Storage | None = None, offset: int = 0):
        self._array: np.ndarray | None = None
        self._loader = loader
        self.dtype, self.numel, self.base, self.offset = dtype, numel, base, offset

    def set_loader(self, loader: Callable[[], np.ndarray]) -> None:
        self._loader = loader

    @property
    def array(self) -> np.ndarray:
        if self.base is not None:
            return self.base.array[self.offset : self.offset + self.numel]
        if self._array is None:
            if self._loader is None:
                raise CheckpointError("A tensor refers to a storage whose bytes are missing; the file is truncated.")
            self._array = self._loader()
        return self._array


class TorchTensor(Sealed):
    """A tensor of the file: storage, offset, size and stride, copied out as a numpy array on first use."""

    __slots__ = ("_array", "storage", "storage_offset", "size", "stride")

    def __init__(self, storage: _Storage, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.storage, self.storage_offset, self.size, self.stride = storage, storage_offset, size, stride
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = _strided_copy(self.storage.array, self.storage_offset, self.size, self.stride)
        return self._array


def _strided_copy(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> np.ndarray:
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if extent > storage.size:
        raise CheckpointError("A tensor in the file reaches past the end of its storage.")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.ascontiguousarray(view)


class Function(Sealed):
    """An allow-listed callable: one of our own functions, sealed against `BUILD`."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., Any]):
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> TorchTensor:
    """Our replacement for `torch._utils._rebuild_tensor_v2`: a checked strided view of a storage."""
    del requires_grad, backward_hooks, metadata
    if not isinstance(storage, _Storage):
        raise CheckpointError("A tensor in the file does not refer to a storage.")
    ints = (storage_offset, *size, *stride) if isinstance(size, tuple) and isinstance(stride, tuple) else None
    if ints is None or len(size) != len(stride) or not all(type(i) is int and i >= 0 for i in ints):
        raise CheckpointError("A tensor in the file has a malformed size or stride.")
    if all(n > 0 for n in size) and storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
        raise CheckpointError("A tensor in the file reaches past the end of its storage.")
    return TorchTensor(storage, storage_offset, size, stride)


def _storage_dtypes() -> dict[str, np.dtype]:
    out = {name: np.dtype(code) for name, code in _STORAGE_DTYPES.items()}
    try:  # bfloat16 comes with jax's ml_dtypes
        import ml_dtypes

        out["BFloat16Storage"] = np.dtype(ml_dtypes.bfloat16)
    except ImportError:  # pragma: no cover
        pass
    return out


_ALLOWED: dict[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): Function(_rebuild_tensor_v2),
    ("collections", "OrderedDict"): Function(collections.OrderedDict),
    # Storages of tensors saved on CPU, and (torch < 1.13 on a GPU; the official 2019/2020 checkpoints) on CUDA.
    **{(module, name): _StorageType(name, dtype) for name, dtype in _storage_dtypes().items()
       for module in ("torch", "torch.cuda")},
}


class Unpickler(pickle.Unpickler):
    """A pickle reader that resolves only the allow-listed globals (module docstring) and PyTorch's storage
    references; `extra_globals` adds exact `(module, name)` entries, `find_extra(module, name)` may return a
    stand-in for other names (or None to refuse them)."""

    def __init__(
        self,
        file: BinaryIO,
        storage: Callable[[tuple], _Storage],
        *,
        extra_globals: Mapping[tuple[str, str], object] | None = None,
        find_extra: Callable[[str, str], object | None] | None = None,
        allowed: str = "tensor rebuilding, storage types and OrderedDict",
    ):
        super().__init__(file)
        self._storage = storage
        self._extra = dict(extra_globals or {})
        self._find_extra = find_extra
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if key in self._extra:
            return self._extra[key]
        found = self._find_extra(module, name) if self._find_extra is not None else None
        if found is not None:
            return found
        raise CheckpointError(
            f"Refusing to load the pickle global {module}.{name}: only {self._allowed} are allowed. "
            "The file is not a plain weights file (it may run code when loaded with torch)."
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(
                f"Unsupported persistent id {pid!r:.80} in the file: only tensor storages are read "
                "(a pickled nn.Module is not a state dict; save `model.state_dict()` instead)."
            )
        return self._storage(pid)


def _check_storage_ref(pid: tuple, n: int) -> tuple[_StorageType, str, int]:
    if len(pid) != n:
        raise CheckpointError(f"Malformed storage reference in the file: {pid!r:.80}")
    _, storage_type, key, _location, numel = pid[:5]
    if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
        raise CheckpointError(f"Malformed storage reference in the file: {pid!r:.80}")
    return storage_type, key, numel


def zip_root(archive: zipfile.ZipFile, source: object) -> str:
    """The `<root>/` folder of a PyTorch zip archive (the one holding `data.pkl`)."""
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError(f"{source} has no single <root>/data.pkl; it is not a PyTorch zip archive.")
    return pickles[0][: -len("data.pkl")]


def read_zip_pickle(
    archive: zipfile.ZipFile,
    source: object,
    *,
    extra_globals: Mapping[tuple[str, str], object] | None = None,
    find_extra: Callable[[str, str], object | None] | None = None,
    allowed: str = "tensor rebuilding, storage types and OrderedDict",
) -> Any:
    """The object in `<root>/data.pkl` of a PyTorch zip archive, its storages read from `<root>/data/`.

    Tensors are `TorchTensor` records, whose storages are read on first use: use them while `archive` is open.
    `source` names the file in error messages."""
    root = zip_root(archive, source)
    names = set(archive.namelist())
    big_endian = f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() == b"big"
    storages: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
        storage_type, key, numel = _check_storage_ref(pid, 5)
        if key in storages:
            return storages[key]
        member = f"{root}data/{key}"
        if not IDENTIFIER.match("k" + key) or member not in names:
            raise CheckpointError(f"Storage {key!r} is missing from {source}; the file is incomplete.")
        dtype = storage_type.dtype
        if archive.getinfo(member).file_size != numel * dtype.itemsize:
            raise CheckpointError(
                f"Storage {key!r} in {source} has {archive.getinfo(member).file_size} bytes, expected {numel} elements."
            )

        def read() -> np.ndarray:
            raw = archive.read(member)
            return np.frombuffer(raw, dtype.newbyteorder(">") if big_endian else dtype).astype(dtype.newbyteorder("="))

        storages[key] = _Storage(dtype, numel, loader=read)
        return storages[key]

    try:
        data = archive.read(f"{root}data.pkl")
        return Unpickler(
            io.BytesIO(data), storage, extra_globals=extra_globals, find_extra=find_extra, allowed=allowed
        ).load()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any malformed pickle or zip member is reported the same way
        raise CheckpointError(f"Could not read the pickle in {source}: {type(e).__name__}: {e}") from e


def _read_legacy(f: BinaryIO, source: object) -> Any:
    """The object of a legacy (torch < 1.6) `torch.save` stream; its storages, located in the stream's tail (and
    checked to be there), are read on first use."""

    def plain(what: str) -> Any:
        return Unpickler(f, _refuse_storage, allowed=f"plain values in the {what}").load()

    magic = plain("header")
    if magic != _LEGACY_MAGIC:
        raise CheckpointError(f"{source} is not a PyTorch checkpoint (no zip archive, no legacy magic number).")
    protocol = plain("header")
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{source} has legacy protocol version {protocol!r}, not {_LEGACY_PROTOCOL}.")
    sys_info = plain("header")
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    order = "<" if little else ">"
    roots: dict[str, _Storage] = {}
    views: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
        storage_type, key, numel = _check_storage_ref(pid, 6)
        root = roots.get(key)
        if root is None:
            root = roots[key] = _Storage(storage_type.dtype, numel)  # its bytes follow the object pickle
        view = pid[5]
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and all(type(v) is int and v >= 0 for v in view[1:])):
            raise CheckpointError(f"Malformed storage view in {source}: {view!r:.80}")
        view_key, offset, size = view
        if offset + size > root.numel:
            raise CheckpointError(f"A storage view in {source} reaches past the end of its storage.")
        return views.setdefault(view_key, _Storage(root.dtype, size, base=root, offset=offset))

    obj = Unpickler(f, storage).load()
    keys = plain("storage list")
    tail = f.tell()
    if not isinstance(keys, list) or not all(isinstance(k, str) and k in roots for k in keys):
        raise CheckpointError(f"{source} has a malformed storage list.")
    end = f.seek(0, io.SEEK_END)
    position = f.seek(tail)
    for key in keys:
        s = roots[key]
        f.seek(position)
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{source} is truncated: storage {key!r} is missing.")
        (numel,) = struct.unpack(order + "q", head)
        if numel != s.numel:
            raise CheckpointError(f"Storage {key!r} in {source} has {numel} elements, expected {s.numel}.")
        nbytes = numel * s.dtype.itemsize
        if position + 8 + nbytes > end:
            raise CheckpointError(f"{source} is truncated: storage {key!r} has only part of its bytes.")
        s.set_loader(functools.partial(_read_at, f, position + 8, numel, s.dtype.newbyteorder(order)))
        position += 8 + nbytes
    return obj


def _read_at(f: BinaryIO, offset: int, numel: int, dtype: np.dtype) -> np.ndarray:
    f.seek(offset)
    raw = np.fromfile(f, dtype, numel) if _is_real_file(f) else np.frombuffer(f.read(numel * dtype.itemsize), dtype)
    if raw.size != numel:
        raise CheckpointError("A storage of the file ends early; the file is truncated.")
    return raw.astype(dtype.newbyteorder("="), copy=False)


def _is_real_file(f: BinaryIO) -> bool:
    try:
        f.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return False
    return True


def _refuse_storage(pid: tuple) -> _Storage:
    raise CheckpointError(f"Unexpected storage reference {pid!r:.80} in a legacy header.")


def materialise(obj: Any, depth: int = 0) -> Any:
    """The object with every `TorchTensor` replaced by its numpy array (containers rebuilt, types kept)."""
    if depth > 100:
        raise CheckpointError("The checkpoint is nested too deeply.")
    if isinstance(obj, TorchTensor):
        return obj.array
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, materialise(v, depth + 1)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: materialise(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(materialise(v, depth + 1) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    raise CheckpointError(f"Unexpected {type(obj).__name__} in the checkpoint.")


@contextlib.contextmanager
def lazy_load(file: str | os.PathLike[str] | BinaryIO) -> Iterator[Any]:
    """Open a `torch.save` file (zip archive or legacy stream) without torch, executing nothing from it, and yield
    the saved object with `TorchTensor` records for its tensors: their bytes are read when `.array` (or
    `materialise`) asks for them, while the context is open. `load` reads everything at once.

    **Raises:** `CheckpointError` when the file is not a PyTorch file, is truncated, or names any pickle global
    outside the allow-list of this module.
    """
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        if not path.is_file():
            raise CheckpointError(f"No file at {path}.")
        with open(path, "rb") as f:
            with _open(f, str(path)) as obj:
                yield obj
    else:
        with _open(file, getattr(file, "name", "the file")) as obj:
            yield obj


@contextlib.contextmanager
def _open(f: BinaryIO, source: str) -> Iterator[Any]:
    f.seek(0)
    head = f.read(4)
    f.seek(0)
    if head == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError(f"{source} is a truncated or corrupt zip archive ({e}); download it again.") from e
        with archive:
            yield read_zip_pickle(archive, source)
        return
    if head[:1] != b"\x80":
        raise CheckpointError(
            f"{source} is not a PyTorch checkpoint: it is neither a zip archive (torch >= 1.6) nor a pickle stream "
            "(older torch)."
        )
    try:
        obj = _read_legacy(f, source)
    except CheckpointError:
        raise
    except EOFError as e:
        raise CheckpointError(f"{source} is truncated (the pickle ends early); download it again.") from e
    except Exception as e:  # noqa: BLE001 - any malformed pickle is reported the same way
        raise CheckpointError(f"Could not read {source} as a legacy PyTorch file: {type(e).__name__}: {e}") from e
    yield obj


def load(file: str | os.PathLike[str] | BinaryIO) -> Any:
    """Read a `torch.save` file (zip archive or legacy stream) without torch, executing nothing from it.

    **Returns:** the saved object (dicts, lists, tuples, numbers, strings) with numpy arrays for its tensors.

    **Raises:** `CheckpointError` when the file is not a PyTorch file, is truncated, or names any pickle global
    outside the allow-list of this module.
    """
    with lazy_load(file) as obj:
        return materialise(obj)
