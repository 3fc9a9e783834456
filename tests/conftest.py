"""Test-suite settings: strict JAX, four virtual CPU devices, per-test PRNG keys."""

import os


# Four virtual CPU devices, so the data-parallel path of the training driver is exercised.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("ZOO_PROGRESS", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import itertools  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402


jax.config.update("jax_numpy_rank_promotion", "raise")
# Not "strict": optax (0.2.8) itself mixes Python floats with int32 step counts.
jax.config.update("jax_numpy_dtype_promotion", "standard")


@pytest.fixture
def getkey():
    """``getkey()`` returns a fresh, deterministic PRNG key each call."""
    counter = itertools.count()
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Each test writes caches under a temporary folder, never the user's."""
    cache = tmp_path_factory.mktemp("zoo-cache")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
