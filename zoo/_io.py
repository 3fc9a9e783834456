"""Files written whole or not at all, and the one cache directory.

Every writer in zoo (checkpoints, cards, PNG grids, the FID weights, decoded data sets) goes
through these helpers, so an interrupted write never leaves a file or folder that looks
complete, and every derived file lives under `cache_dir()`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def cache_dir() -> Path:
    """The directory for everything zoo derives and keeps: decoded data sets, the FID
    weights, and (as ``hub/``) Hub downloads when ``ZOO_CACHE_DIR`` is set.

    ``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/zoo``, else ``~/.cache/zoo``. Not created
    here: writers create what they need when they first write.
    """
    if env := os.environ.get("ZOO_CACHE_DIR", "").strip():
        return Path(env).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME", "").strip():
        return Path(xdg).expanduser() / "zoo"
    return Path.home() / ".cache" / "zoo"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on a clean exit it is flushed,
    synced and renamed over `path` (readable like any other file), else removed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; ours are as readable as their folder
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_dir(path: str | os.PathLike[str], fill: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Build a folder at `path` atomically: `fill(tmp)` writes into an empty sibling folder,
    which is then renamed into place (swapping out an existing `path` if `overwrite`).
    If `fill` raises, nothing at `path` changes. Without `overwrite`, a `path` that appears
    while `fill` runs (another process building the same folder) wins: the new folder is
    discarded and `FileExistsError` raised."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        fill(tmp)
        if overwrite:
            _swap_into_place(tmp, path)
        else:
            try:
                os.rename(tmp, path)  # atomic; fails where `path` now exists (a non-empty folder)
            except OSError as e:
                if not path.exists():
                    raise
                raise FileExistsError(f"{path} already exists") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


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
