"""Committed files name no absolute path of the machine that wrote them.

A path into the author's working, home or temporary folders means nothing on another machine (and
leaks how that machine is laid out): cards name data by dataset and file name, tests find the shared
data relative to the repository, checkpoints hold only what their format needs.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]

# An absolute path (a "/" not preceded by a word character, dot, tilde, slash, colon or dash, so URLs and
# relative paths do not count) into a folder that only exists on the machine that wrote it.
_FOLDERS = ("work", "root", "tmp", "var/tmp", "var/folders", "private/var", "mnt", "scratch")
_USER_FOLDERS = ("home", "Users")
ABSOLUTE = re.compile(
    r"(?<![\w.~/:\\-])/(?:"
    + "|".join(re.escape(f) for f in _FOLDERS)
    + "|"
    + "|".join(re.escape(f) + r"/[\w.-]+" for f in _USER_FOLDERS)
    + r")(?![\w.-])"
)


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # deleted in the working tree, or a submodule
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_absolute_paths(text: str) -> list[tuple[int, str]]:
    """(line number, matched path) of every machine-absolute path in `text`."""
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in ABSOLUTE.finditer(line):
            end = line.find(" ", m.start())
            hits.append((lineno, line[m.start() : end if end >= 0 else len(line)][:80]))
    return hits


@pytest.mark.parametrize(
    "text, found",
    [
        ("data at " + "/" + "work/shared/data/x.gz", True),
        ("--workdir " + "/" + "tmp", True),
        ("cache in " + "/" + "home/alice/.cache", True),
        ("(" + "/" + "root/.cache/zoo)", True),
        ('"' + "/" + 'tmp/x"', True),
        ("https://example.org/work/tmp/file", False),
        ("../shared/data/x.gz and runs/work/tmp", False),
        ("~/.cache/zoo, /workdir-less, hf://org/tmp", False),
    ],
)
def test_the_scan_tells_paths_from_urls(text, found):
    assert bool(find_absolute_paths(text)) == found


def test_no_tracked_file_holds_an_absolute_path_of_this_machine():
    offenders = []
    for path in _tracked_files():
        text = _text(path)
        if text is None:
            continue
        rel = path.relative_to(ROOT).as_posix()
        offenders += [f"{rel}:{lineno}: {hit}" for lineno, hit in find_absolute_paths(text)]
    assert not offenders, (
        "absolute paths of the machine that wrote them are committed (name data by dataset and file name, find "
        "shared files relative to the repository, pass temporary folders in at run time):\n" + "\n".join(offenders)
    )
