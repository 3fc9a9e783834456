"""What makes a second ``zoo sample`` fast and its progress bar right: the command line's persistent JAX
compilation cache (``ZOO_COMPILATION_CACHE``), and `zoo.samplers.run` with ``progress=True`` outside `jit`
(a host loop of jitted transitions: the same chain as the `lax.scan`, no callback in the compiled step)."""

import os
import subprocess
import sysconfig
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import samplers
from zoo._cli import compilation_cache_dir
from zoo.ncsn import NCSNConfig


def test_cache_folder_is_in_zoo_cache_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("ZOO_COMPILATION_CACHE", raising=False)
    assert compilation_cache_dir() == tmp_path / "jax"
    for off in ("0", "false", "OFF", " no "):
        monkeypatch.setenv("ZOO_COMPILATION_CACHE", off)
        assert compilation_cache_dir() is None
    monkeypatch.setenv("ZOO_COMPILATION_CACHE", "1")
    assert compilation_cache_dir() == tmp_path / "jax"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "own"))
    assert compilation_cache_dir() is None  # JAX's own setting is left to JAX


@pytest.mark.slow  # a child process compiles: CI time
def test_installed_entry_point_fills_the_cache(tmp_path):
    # A separate process: the cache folder is set before JAX compiles anything, which this process has done.
    exe = Path(sysconfig.get_path("scripts")) / "zoo"
    assert exe.is_file(), f"the `zoo` entry point is not installed in {exe.parent}; pip install -e ."
    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    for var in ("ZOO_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS"):
        env.pop(var, None)
    proc = subprocess.run([exe, "sample", "toy-gmm8", "-n", "16", "-o", tmp_path / "g.png"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert any((tmp_path / "cache" / "jax").iterdir())


class _Noisy(samplers.AbstractSampler):
    """x <- x + z, with per-step statistics of two dtypes (float and bool) to average."""

    def init(self, target, x):
        return jnp.zeros((), jnp.int32)

    def step(self, target, x, state, *, key):
        return x + jax.random.normal(key, x.shape), state + 1, {"x": x, "up": x > 0}


@pytest.mark.parametrize("batched,burn_in,thin", [(True, 2, 3), (False, 0, 1)])
def test_progress_outside_jit_runs_the_same_chain_from_the_host(batched, burn_in, thin, getkey, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_PROGRESS", "1")
    x0, key = jnp.zeros((3, 2) if batched else (2,)), getkey()

    def go(k, progress):
        return samplers.run(_Noisy(), None, x0, num_steps=6, burn_in=burn_in, thin=thin, batched=batched,
                            progress=progress, key=k)

    base = jax.jit(lambda k: go(k, False))(key)
    host = go(key, True)
    np.testing.assert_allclose(host.final, base.final, rtol=1e-6)
    for name in ("x", "up"):
        np.testing.assert_allclose(host.info[name], base.info[name], rtol=1e-6)
    assert not np.allclose(go(getkey(), True).final, base.final)  # and the key matters
    assert "_Noisy" in capsys.readouterr().err  # the bar was drawn


@pytest.mark.slow  # two compilations of the RefineNet
def test_ncsn_sample_with_progress_is_the_jitted_sample(getkey):
    model = NCSNConfig(image_size=8, ngf=2, variant="v1-unconditional", num_scales=3, steps_per_level=2,
                       denoise=True).build(key=getkey())
    key = getkey()
    jitted = eqx.filter_jit(lambda m, k: m.sample(3, key=k))(model, key)
    np.testing.assert_allclose(model.sample(3, progress=True, key=key), jitted, rtol=1e-5, atol=1e-5)
