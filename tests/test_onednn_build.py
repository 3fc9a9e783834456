"""zoo._onednn._build: where the handlers are loaded from. The suite builds them once per run (tests/conftest.py)
into the folder named by ``ZOO_ONEDNN_PREBUILT``, which `load` reads and never writes."""

import os
import shutil
from pathlib import Path

import pytest

from zoo import _onednn
from zoo._io import cache_dir
from zoo._onednn import _build


def test_a_prebuilt_folder_is_read_first_and_never_written(tmp_path, monkeypatch):
    prebuilt = tmp_path / "prebuilt"
    (prebuilt / "abc").mkdir(parents=True)
    (prebuilt / "abc" / _build.LIBRARY).write_bytes(b"")
    monkeypatch.setenv("ZOO_ONEDNN_PREBUILT", str(prebuilt))
    assert _build._folder("abc") == prebuilt / "abc"
    # another build (another source, compiler or oneDNN) is looked for, and built, in the cache dir
    assert _build._folder("def") == cache_dir() / "onednn" / "def"
    monkeypatch.delenv("ZOO_ONEDNN_PREBUILT")
    assert _build._folder("abc") == cache_dir() / "onednn" / "abc"


@pytest.mark.skipif(not _onednn.available(), reason="oneDNN handlers not available here")
def test_workers_load_the_runs_one_build(tmp_path, monkeypatch):
    """This process loaded the handlers the run built once (tests/conftest.py) and built none itself; `load`
    without that build compiles into the cache dir and loads from there, leaving the prebuilt folder alone."""
    library = Path(_build.load()._name)
    assert library.parent.parent == Path(os.environ["ZOO_ONEDNN_PREBUILT"])
    assert not (cache_dir() / "onednn").exists()
    # The uncached `load` with an empty prebuilt folder: the compiler (here a copy of the run's build) writes
    # cache_dir()/onednn/<hash>/, which is loaded and registered.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("ZOO_ONEDNN_PREBUILT", str(empty))
    built, registered = [], []
    monkeypatch.setattr(_build, "_compile", lambda out, *a: built.append(shutil.copy(library, out / _build.LIBRARY)))
    monkeypatch.setattr(_build.jax.ffi, "register_ffi_target", lambda name, *a, **k: registered.append(name))
    handle = _build.load.__wrapped__()
    assert Path(handle._name) == cache_dir() / "onednn" / library.parent.name / _build.LIBRARY
    assert len(built) == 1 and registered == list(_build.TARGETS) and not any(empty.iterdir())
