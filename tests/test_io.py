"""zoo._io: whole-or-nothing writes and the cache directory."""

import os

import pytest

from zoo._io import atomic_dir, atomic_open, atomic_write_bytes, atomic_write_text, cache_dir


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert oct(p.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(os.listdir(p.parent)) == ["a.txt"]  # no temporary file left behind


def test_interrupted_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(p, "w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_atomic_open_refuses_append(tmp_path):
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open(tmp_path / "a", "a"):
            pass


def test_atomic_dir(tmp_path):
    target = tmp_path / "ckpt"
    atomic_dir(target, lambda d: (d / "x").write_text("1"))
    with pytest.raises(FileExistsError):
        atomic_dir(target, lambda d: None)

    def broken(d):
        (d / "x").write_text("2")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_dir(target, broken, overwrite=True)
    assert (target / "x").read_text() == "1"  # untouched by the failed rewrite
    atomic_dir(target, lambda d: (d / "y").write_text("3"), overwrite=True)
    assert sorted(os.listdir(target)) == ["y"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_atomic_dir_first_builder_wins(tmp_path):
    """Two processes building the same folder (the oneDNN handlers' cache): the one that finishes second
    finds the first's folder, leaves it alone and gets FileExistsError."""
    target = tmp_path / "lib"

    def racing(d):
        (d / "mine").write_text("2")
        atomic_dir(target, lambda other: (other / "theirs").write_text("1"))  # the other builder finishes first

    with pytest.raises(FileExistsError):
        atomic_dir(target, racing)
    assert sorted(os.listdir(target)) == ["theirs"]
    assert sorted(os.listdir(tmp_path)) == ["lib"]


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "z"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "z"
    monkeypatch.delenv("ZOO_CACHE_DIR")
    assert cache_dir() == tmp_path / "x" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "zoo"
