"""The ``zoo`` command line, run in-process through ``zoo._cli.main`` with captured output;
one test runs the installed ``zoo`` entry point in a separate process."""

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import zoo
from zoo._cli import main


ROOT = Path(__file__).resolve().parents[1]

def zoo_cli(capsys, *args, code=0):
    """Run ``zoo ARGS`` in this process; returns (stdout, stderr), checking the exit status."""
    capsys.readouterr()  # drop what earlier steps printed
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert rc == code, f"zoo {' '.join(map(str, args))} returned {rc}, not {code}:\n{out}\n{err}"
    return out, err


def test_list_info_and_sample_grid(tmp_path, capsys):
    out, _ = zoo_cli(capsys, "list")
    assert "toy-gmm8" in out and "bundled" in out
    out, _ = zoo_cli(capsys, "list", "--presets")
    assert "toy/gmm8" in out and "ncsn/mnist" in out
    info = json.loads(zoo_cli(capsys, "info", "toy-gmm8")[0])
    assert info["family"] == "toy" and info["training"]["steps"] > 0
    png = tmp_path / "grid.png"
    zoo_cli(capsys, "sample", "toy-gmm8", "-n", 256, "-o", png, "--npz", tmp_path / "s.npz")
    img = np.asarray(Image.open(png))
    assert img.ndim == 3 and img.shape[2] == 3 and img.min() < 128  # something was drawn
    trained = np.load(tmp_path / "s.npz")["samples"]
    assert trained.shape == (256, 2)
    # --set: the same weights under other sampler settings. One tiny Langevin step leaves the samples
    # at their N(0, init_scale^2) initialisation, off the 8 modes.
    zoo_cli(capsys, "sample", "toy-gmm8", "-n", 256, "-o", tmp_path / "b.png", "--npz", tmp_path / "b.npz",
            "--set", "langevin_steps=1", "--set", "init_scale=3.0")
    init = np.load(tmp_path / "b.npz")["samples"]
    assert abs(init.std() - 3.0) < 0.4 and abs(trained.std() - 3.0) > 0.5


def test_evaluate_without_n(capsys):
    # Regression: `zoo evaluate NAME` (the whole test split, no -n) raised UnboundLocalError.
    metrics = json.loads(zoo_cli(capsys, "evaluate", "toy-gmm8")[0])
    assert set(metrics) >= {"dsm_loss", "mean_error"} and all(np.isfinite(v) for v in metrics.values())


def test_evaluate_set_errors(capsys):
    _, err = zoo_cli(capsys, "evaluate", "toy-gmm8", "-n", 10, "--set", "sigmaa=0.5", code=2)
    assert "sigmaa" in err and "Did you mean" in err and "Traceback" not in err
    _, err = zoo_cli(capsys, "evaluate", "toy-gmm8", "-n", 10, "--set", "width=8", code=2)
    assert "width" in err and "parameters" in err
    _, err = zoo_cli(capsys, "evaluate", "toy-gmm8", "--set", "sigma", code=2)
    assert "KEY=VALUE" in err


def test_errors_are_clear(capsys):
    _, err = zoo_cli(capsys, "sample", "toy-gmm9", code=2)
    assert "Did you mean 'toy-gmm8'" in err and "Traceback" not in err
    _, err = zoo_cli(capsys, "train", "toy/nope", code=2)
    assert "toy/gmm8" in err
    _, err = zoo_cli(capsys, "train", "toy/gmm8", "--cpu-devices", 0, code=2)
    assert "--cpu-devices must be at least 1" in err


@pytest.mark.parametrize("args", [["sample"], ["push", "toy-gmm8"], ["train", "toy/gmm8", "--exp", "x"]])
def test_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "usage" in capsys.readouterr().err


def _weights(folder):
    bundle = zoo.load_bundle(folder)
    return bundle, [np.asarray(x) for x in jax.tree.leaves((bundle.model, bundle.ema))]


def test_train_resume_then_export(tmp_path, capsys):
    work, out, exported = tmp_path / "run", tmp_path / "model", tmp_path / "exported"
    common = ["--batch-size", 64, "--workdir", work, "--checkpoint-every", 20]
    # Not a terminal: one line per log step on stderr instead of a progress bar.
    _, err = zoo_cli(capsys, "train", "toy/gmm8", "--steps", 20, *common, "--out", out, "--name", "gmm-test")
    logged = [line for line in err.splitlines() if line.startswith("step ")]
    assert len(logged) == 1 and logged[0].startswith("step 20 {") and '"loss"' in logged[0]  # logs at the end
    meta = json.loads((out / "config.json").read_text())
    assert meta["name"] == "gmm-test" and meta["training"]["steps"] == 20
    assert meta["training"]["command"] == (
        f"zoo train toy/gmm8 --steps 20 --batch-size 64 --workdir {work} --checkpoint-every 20 --out {out} "
        "--name gmm-test"
    )
    assert meta["training"]["train_config"]["checkpoint_every"] == 20
    preset = zoo.get_preset("toy/gmm8")
    assert preset.tags and set(preset.tags) <= set(meta["card"]["tags"]) and meta["card"]["license"] == preset.license
    assert preset.tags[0] in (out / "README.md").read_text()
    # Rerunning with more steps resumes from the workdir's newest checkpoint.
    zoo_cli(capsys, "train", "toy/gmm8", "--steps", 30, *common, "--out", out)
    trained = json.loads((out / "config.json").read_text())["training"]
    assert trained["resumed_from"] == 20 and trained["steps"] == 30
    # --export trains nothing: it writes the newest training checkpoint (step 30), raw and EMA weights.
    zoo_cli(capsys, "train", "toy/gmm8", *common, "--export", exported)
    meta = json.loads((exported / "config.json").read_text())
    assert meta["name"] == "exported" and meta["training"]["steps"] == 30 and meta["training"]["resumed_from"] == 30
    assert meta["training"]["command"] == (
        f"zoo train toy/gmm8 --batch-size 64 --workdir {work} --checkpoint-every 20 --steps 30 --out {exported}"
    )
    assert meta["training"]["export_command"].endswith(f"--export {exported}")
    (a, wa), (b, wb) = _weights(out), _weights(exported)
    assert a.ema is not None and b.ema is not None and len(wa) == len(wb)
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    _, err = zoo_cli(capsys, "train", "toy/gmm8", *common, "--export", exported, "--steps", 40, code=2)
    assert "step 30" in err and "drop --steps" in err


def test_train_init_from_keeps_the_set_fields(tmp_path, capsys):
    """Fine-tuning from released weights (--init-from) trains them under their own config with the --set fields
    changed (e.g. NCSN's compute_dtype, a training objective); a field that would change the parameters fails
    before anything trains."""
    base = tmp_path / "base"
    zoo_cli(capsys, "train", "toy/gmm8", "--steps", 2, "--batch-size", 64, "--workdir", tmp_path / "w0", "--out", base)
    out = tmp_path / "tuned"
    zoo_cli(capsys, "train", "toy/gmm8", "--init-from", base, "--set", "objective=ssm", "--set", "sigma=0.2",
            "--steps", 2, "--batch-size", 64, "--workdir", tmp_path / "w1", "--out", out)  # fmt: skip
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["objective"] == "ssm" and config["sigma"] == 0.2
    assert zoo.load(out).config.objective == "ssm"
    _, err = zoo_cli(capsys, "train", "toy/gmm8", "--init-from", base, "--set", "width=8", "--steps", 2,
                     "--workdir", tmp_path / "w2", "--out", tmp_path / "bad", code=2)  # fmt: skip
    assert "width" in err and "changes the model's parameters" in err and not (tmp_path / "bad").exists()


def test_train_export_needs_a_checkpoint(tmp_path, capsys):
    _, err = zoo_cli(capsys, "train", "toy/gmm8", "--workdir", tmp_path / "empty", "--export", tmp_path / "x", code=2)
    assert "holds no training checkpoint" in err and not (tmp_path / "x").exists()
    _, err = zoo_cli(capsys, "train", "toy/gmm8", "--export", tmp_path / "x", "--out", tmp_path / "y", code=2)
    assert "drop --out" in err


def test_evaluate_set_record_push_download(tmp_path, capsys, hub_env):
    out = Path(shutil.copytree(zoo.bundled_path("toy-gmm8"), tmp_path / "toy-gmm8"))
    short = ["-n", 500, "--set", "langevin_steps=10"]  # a short chain: the test is about the CLI
    metrics = json.loads(zoo_cli(capsys, "evaluate", out, *short, "--record")[0])
    assert np.isfinite(metrics["dsm_loss"])
    recorded = {m["name"]: m for m in json.loads((out / "config.json").read_text())["metrics"]}
    assert recorded["dsm_loss"]["value"] == metrics["dsm_loss"]
    assert recorded["dsm_loss"]["command"] == f"zoo evaluate {out} -n 500 --set langevin_steps=10 --record"
    # --set forwards config fields: a wider DSM noise level changes the loss, not the (same-key) samples.
    wide = json.loads(zoo_cli(capsys, "evaluate", out, *short, "--set", "sigma=0.5")[0])
    assert wide["dsm_loss"] != metrics["dsm_loss"] and wide["mean_error"] == metrics["mean_error"]

    pushed, _ = zoo_cli(capsys, "push", out, "--repo-id", "org/toy", "--assets-dir", ROOT / "cards")
    sha = pushed.strip().rsplit("@", 1)[1]
    folder = zoo_cli(capsys, "download", f"hf://org/toy@{sha}")[0].strip()
    assert json.loads((Path(folder) / "config.json").read_text())["metrics"] == list(recorded.values())
    # A bundled model's card links its sample grid from cards/; push uploads it beside the card.
    sha = zoo_cli(capsys, "push", "toy-gmm8", "--repo-id", "org/gmm8")[0].strip().rsplit("@", 1)[1]
    folder = zoo_cli(capsys, "download", f"hf://org/gmm8@{sha}")[0].strip()
    assert (Path(folder) / "toy-gmm8.png").is_file()
    _, err = zoo_cli(capsys, "download", "hf://org/missing", code=2)
    assert "org/missing" in err


def test_installed_entry_point_trains_on_split_cpu_devices(tmp_path):
    # A separate process: --cpu-devices must act before JAX starts, which this process has done.
    exe = Path(sysconfig.get_path("scripts")) / "zoo"
    assert exe.is_file(), f"the `zoo` entry point is not installed in {exe.parent}; pip install -e ."
    env = {**os.environ, "ZOO_PROGRESS": "0"}
    env.pop("XLA_FLAGS", None)
    out = tmp_path / "model"
    proc = subprocess.run(
        [exe, "train", "toy/gmm8", "--steps", "4", "--batch-size", "64", "--workdir", tmp_path / "w", "--out", out,
         "--cpu-devices", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(str(out))
    assert "2 JAX device(s)" in json.loads((out / "config.json").read_text())["training"]["hardware"]
