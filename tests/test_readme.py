"""The README's promises: its test command is CI's, and its model table is current."""

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "pytest" in ci
    assert f"\n{ci}\n" in (ROOT / "README.md").read_text()


def test_model_table_is_current():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_readme.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
