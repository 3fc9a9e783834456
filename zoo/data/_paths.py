"""Where raw data files are looked for. Derived caches go to the one `zoo._io.cache_dir`."""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import DataError
from .._io import cache_dir as cache_dir


def _checkout_data_dir() -> Path:
    # zoo/data/_paths.py -> the checkout root is parents[2]; the shared data sits next to it.
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _candidate_dirs() -> list[tuple[str, Path]]:
    """The directories searched for raw data files, in order, each with where it came from."""
    if env := os.environ.get("ZOO_DATA_DIR"):
        return [("$ZOO_DATA_DIR", Path(env).expanduser())]
    candidates = []
    checkout = _checkout_data_dir()
    if checkout.is_dir():
        candidates.append(("next to the source checkout", checkout))
    candidates.append(("the cache", cache_dir() / "data"))
    return candidates


def data_dir() -> Path:
    """The directory raw data files are read from.

    `$ZOO_DATA_DIR`, else `../shared/data` next to a source checkout if that exists, else
    `<cache_dir()>/data`.
    """
    return _candidate_dirs()[0][1]


def find_data_file(relpath: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The path of the raw data file `relpath`, or a `DataError` saying where it was sought."""
    if data_dir is not None:
        tried = [("the data_dir argument", Path(data_dir).expanduser())]
    else:
        tried = _candidate_dirs()
    for _, directory in tried:
        path = directory / relpath
        if path.is_file():
            return path
    where = "\n".join(f"  {directory / relpath}  ({origin})" for origin, directory in tried)
    raise DataError(
        f"Data file {relpath!r} not found. Looked for:\n{where}\n"
        f"Fix: set ZOO_DATA_DIR to the directory holding {relpath!r}, pass data_dir=..., "
        f"or put the file in {tried[0][1]}."
    )
