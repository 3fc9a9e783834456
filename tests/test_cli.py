"""The ``zoo`` command, run as a user would: in a subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hub_server import HubServer
from PIL import Image


def zoo_cli(*args, env=None, check=True):
    full_env = {**os.environ, "ZOO_PROGRESS": "0", **(env or {})}
    full_env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "zoo._cli", *args], capture_output=True, text=True, env=full_env, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_list_info_and_sample_grid(tmp_path):
    out = zoo_cli("list").stdout
    assert "toy-gmm8" in out and "bundled" in out
    info = json.loads(zoo_cli("info", "toy-gmm8").stdout)
    assert info["family"] == "toy" and info["training"]["steps"] > 0
    png = tmp_path / "grid.png"
    zoo_cli("sample", "toy-gmm8", "-n", "64", "-o", str(png), "--npz", str(tmp_path / "s.npz"))
    img = np.asarray(Image.open(png))
    assert img.ndim == 3 and img.shape[2] == 3 and img.min() < 128  # something was drawn
    assert np.load(tmp_path / "s.npz")["samples"].shape == (64, 2)


def test_errors_are_clear():
    proc = zoo_cli("sample", "toy-gmm9", check=False)
    assert proc.returncode == 2
    assert "Did you mean 'toy-gmm8'" in proc.stderr and "Traceback" not in proc.stderr
    proc = zoo_cli("train", "toy/nope", check=False)
    assert proc.returncode == 2 and "toy/gmm8" in proc.stderr
    proc = zoo_cli("train", "toy/gmm8", "--cpu-devices", "0", check=False)
    assert proc.returncode == 2 and "--cpu-devices must be at least 1" in proc.stderr


def test_train_resume_evaluate_push_download(tmp_path):
    work, out = tmp_path / "run", tmp_path / "model"
    zoo_cli("train", "toy/gmm8", "--steps", "20", "--batch-size", "64", "--workdir", str(work), "--out", str(out))
    meta = json.loads((out / "config.json").read_text())
    assert meta["training"]["steps"] == 20 and meta["training"]["command"].startswith("zoo train toy/gmm8")
    # Rerunning with more steps resumes from the workdir's checkpoint, here data-parallel over 2 CPU devices.
    zoo_cli("train", "toy/gmm8", "--steps", "30", "--batch-size", "64", "--workdir", str(work), "--out", str(out),
            "--cpu-devices", "2")
    meta = json.loads((out / "config.json").read_text())
    assert meta["training"]["resumed_from"] == 20
    assert "2 JAX device(s)" in meta["training"]["hardware"]
    metrics = json.loads(zoo_cli("evaluate", str(out), "-n", "500", "--record").stdout)
    assert np.isfinite(metrics["dsm_loss"])
    recorded = json.loads((out / "config.json").read_text())["metrics"]
    assert {m["name"] for m in recorded} >= {"dsm_loss"} and all(
        m["command"].startswith("zoo evaluate") for m in recorded
    )

    with HubServer(token="t") as hub:
        env = {
            "ZOO_HF_ENDPOINT": hub.url,
            "HF_TOKEN": "t",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "ZOO_CACHE_DIR": str(tmp_path / "cache"),
        }
        pushed = zoo_cli("push", str(out), "--repo-id", "org/toy", env=env).stdout
        sha = pushed.strip().rsplit("@", 1)[1]
        folder = zoo_cli("download", f"hf://org/toy@{sha}", env=env).stdout.strip()
        with open(os.path.join(folder, "config.json")) as f:
            assert json.loads(f.read())["metrics"] == recorded
        # A bundled model's card links its sample grid from cards/; push uploads it beside the card.
        sha = zoo_cli("push", "toy-gmm8", "--repo-id", "org/gmm8", env=env).stdout.strip().rsplit("@", 1)[1]
        folder = zoo_cli("download", f"hf://org/gmm8@{sha}", env=env).stdout.strip()
        assert os.path.isfile(os.path.join(folder, "toy-gmm8.png"))
        proc = zoo_cli("download", "hf://org/missing", env=env, check=False)
        assert proc.returncode == 2 and "org/missing" in proc.stderr


@pytest.mark.parametrize("args", [["sample"], ["push", "toy-gmm8"]])
def test_usage_errors(args):
    proc = zoo_cli(*args, check=False)
    assert proc.returncode == 2 and "usage" in proc.stderr
