"""The wheel `pip install .` builds holds what a plain install needs: the bundled checkpoints (so `zoo.load` of a
bundled model works offline) and the native handlers' sources. Slow (an isolated build: pip fetches setuptools), so
CI skips it; run it with ``python -m pytest -m slow tests/test_packaging.py``."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from zoo._onednn._build import SOURCES


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_holds_the_bundled_checkpoints_and_the_kernels_source(tmp_path):
    # built from a copy: setuptools builds in the source tree, and a build/ folder left there would fill the wheel
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
                   check=True, cwd=tmp_path, capture_output=True)
    (wheel,) = tmp_path.glob("zoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {p.relative_to(ROOT).as_posix() for p in (ROOT / "checkpoints").rglob("*") if p.is_file()}
    assert bundled and {"zoo/" + name for name in bundled} <= names
    assert {f"zoo/_onednn/{f.name}" for f in SOURCES} <= names  # what zoo._onednn._build compiles
