"""Building and loading zoo's native handlers for XLA:CPU: the oneDNN convolutions (``conv.cc``) and NCSN's fused
norm (``cin.cc``), one library.

The handlers are compiled once per machine setup with the system's C++ compiler against JAX's
XLA FFI headers (`jax.ffi.include_dir`) and oneDNN (the ``onednn-devel-cpu-gomp`` wheel, a
dependency on Linux x86-64; or ``$ZOO_ONEDNN_ROOT``, a prefix holding ``include/`` and ``lib/``
of another oneDNN 3.x build), for this CPU with OpenMP (``-march=native -fopenmp``; a compiler that
refuses them builds it portable and the norm single-threaded), into ``cache_dir()/onednn/<hash>/``,
the hash covering the sources, jaxlib's version, the compiler, the oneDNN found and the CPU's
flags. Nothing here raises: `load` returns the
library or None (with the reason logged once), and zoo then convolves with XLA's kernels.
``ZOO_ONEDNN=0`` turns the handlers off. ``ZOO_ONEDNN_PREBUILT`` names a folder laid out as
``cache_dir()/onednn`` (``<hash>/libzoo_onednn.so``) that `load` reads first and never writes: a
library built there for the same hash is loaded as it is, else the usual cache folder is used (the
test suite builds the handlers once per run there for all its worker processes, tests/conftest.py).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax

from .._io import atomic_dir, cache_dir


logger = logging.getLogger("zoo")

SOURCE = Path(__file__).with_name("conv.cc")  # the convolutions (`_choice.kernels_id`)
SOURCES = (SOURCE, SOURCE.with_name("cin.cc"), SOURCE.with_name("common.h"))  # all that is built
LIBRARY = "libzoo_onednn.so"
TARGETS = ("zoo_onednn_conv_fwd", "zoo_onednn_conv_dgrad", "zoo_onednn_conv_wgrad", "zoo_cin_fwd", "zoo_cin_bwd")


def _find_onednn() -> tuple[Path, Path] | str:
    """oneDNN's (include dir, lib dir), or why none was found."""
    if root := os.environ.get("ZOO_ONEDNN_ROOT", "").strip():
        inc, lib = Path(root) / "include", Path(root) / "lib"
        if (inc / "oneapi" / "dnnl" / "dnnl.hpp").is_file() and any(lib.glob("libdnnl.so*")):
            return inc, lib
        return f"ZOO_ONEDNN_ROOT={root} holds no include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so"
    from importlib import metadata

    found: dict[str, Path] = {}
    for dist, suffix in (("onednn-devel-cpu-gomp", "/oneapi/dnnl/dnnl.hpp"), ("onednn-cpu-gomp", "/libdnnl.so.3")):
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError:
            return f"the {dist} package is not installed (pip install {dist})"
        for f in files:
            if f.as_posix().endswith(suffix):
                found[dist] = Path(f.locate()).resolve()
                break
        else:
            return f"the {dist} package holds no {suffix.lstrip('/')}"
    return found["onednn-devel-cpu-gomp"].parents[2], found["onednn-cpu-gomp"].parent


def _dnnl_library(lib: Path) -> Path:
    for name in ("libdnnl.so.3", "libdnnl.so"):
        if (lib / name).exists():
            return lib / name
    raise FileNotFoundError(f"no libdnnl.so in {lib}")


# Compiler flags tried in turn: the native library compiled for this CPU with the norm's handlers on all cores, else
# (a compiler without OpenMP, e.g. clang without libomp, or without -march=native) portable and single-threaded.
_FLAG_SETS = (("-march=native", "-fopenmp"), ())


def _compile(out: Path, cxx: str, inc: Path, lib: Path) -> None:
    dnnl = _dnnl_library(lib)
    errors = []
    for flags in _FLAG_SETS:
        cmd = [
            cxx, "-O3", *flags, "-std=c++17", "-shared", "-fPIC", "-w", f"-I{jax.ffi.include_dir()}", f"-I{inc}",
            *(str(f) for f in SOURCES if f.suffix == ".cc"), "-o", str(out / LIBRARY), f"-L{lib}", f"-l:{dnnl.name}",
            f"-Wl,-rpath,{lib}",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode == 0:
            if errors:
                last = (errors[0].strip().splitlines() or ["?"])[-1]
                logger.warning("zoo: the native library was built without %s (%s)", " ".join(_FLAG_SETS[0]), last)
            return
        errors.append(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    raise RuntimeError("\n".join(errors))


def _folder(name: str) -> Path:
    """The folder of the build `name` (its hash): ``$ZOO_ONEDNN_PREBUILT/<name>`` where that holds the library,
    else ``cache_dir()/onednn/<name>`` (built there if absent)."""
    if prebuilt := os.environ.get("ZOO_ONEDNN_PREBUILT", "").strip():
        if (Path(prebuilt) / name / LIBRARY).is_file():
            return Path(prebuilt) / name
    return cache_dir() / "onednn" / name


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled handlers, registered as XLA:CPU FFI targets; None where they cannot be had."""
    if os.environ.get("ZOO_ONEDNN", "").strip() == "0":
        return None
    if not sys.platform.startswith("linux"):
        return None
    found = _find_onednn()
    if isinstance(found, str):
        logger.info("zoo: convolutions run on XLA's kernels: %s", found)
        return None
    inc, lib = found
    cxx = os.environ.get("CXX", "").strip() or "g++"
    if shutil.which(cxx) is None:
        logger.warning("zoo: convolutions run on XLA's kernels: no C++ compiler %r to build the oneDNN ones", cxx)
        return None
    import jaxlib

    from ._choice import cpu_flags

    key = hashlib.sha256()
    cpu = cpu_flags().encode()  # compiled for this CPU (-march=native)
    for part in (*(f.read_bytes() for f in SOURCES), jaxlib.__version__.encode(), cxx.encode(), str(inc).encode(),
                 str(lib).encode(), cpu):
        key.update(part + b"\0")
    folder = _folder(key.hexdigest()[:16])
    try:
        if not (folder / LIBRARY).is_file():
            logger.warning("zoo: building the oneDNN convolutions for this machine, once (~10 s) ...")
            try:
                atomic_dir(folder, lambda tmp: _compile(tmp, cxx, inc, lib))
            except FileExistsError:  # another process built it meanwhile
                pass
        handle = ctypes.CDLL(str(folder / LIBRARY))
        for name in TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(handle, name)), platform="cpu")
    except Exception as e:  # a failed build or load: XLA's kernels, and the reason once
        logger.warning("zoo: convolutions run on XLA's kernels; the oneDNN ones failed: %s", e)
        return None
    return handle
