"""The shared sampler driver `zoo.samplers.run` and the Langevin sampler."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

import zoo
from zoo import samplers


class Counter(samplers.AbstractSampler):
    """x <- x + 1; info reports x, so averages are checkable exactly."""

    def init(self, target, x):
        return jnp.zeros((), jnp.int32)

    def step(self, target, x, state, *, key):
        return x + 1.0, state + 1, {"x": x + 1.0}


def test_burn_in_thin_and_info_average(getkey):
    res = jax.jit(
        lambda k: samplers.run(Counter(), None, jnp.zeros(()), num_steps=6, burn_in=3, thin=2, save=True, key=k)
    )(getkey())
    np.testing.assert_array_equal(res.samples, [5.0, 7.0, 9.0])
    assert float(res.final) == 9.0
    assert float(res.info["x"]) == pytest.approx(np.mean([4, 5, 6, 7, 8, 9]))


def test_batched_layout(getkey):
    x0 = jnp.arange(3.0)
    res = samplers.run(Counter(), None, x0, num_steps=4, thin=2, save=True, batched=True, key=getkey())
    assert res.samples.shape == (2, 3)  # (saved, chains)
    np.testing.assert_array_equal(res.samples[-1], x0 + 4)
    assert res.info["x"].shape == (3,)


def test_bad_arguments(getkey):
    with pytest.raises(ValueError, match="multiple of thin"):
        samplers.run(Counter(), None, jnp.zeros(()), num_steps=5, thin=2, key=getkey())
    with pytest.raises(ValueError, match="unroll"):
        samplers.run(Counter(), None, jnp.zeros(()), num_steps=4, unroll=0, key=getkey())


@pytest.mark.parametrize("burn_in,thin,unroll", [(0, 1, 5), (2, 3, 6)])
def test_unroll_gives_the_same_chain(burn_in, thin, unroll, getkey):
    """`unroll` changes only the compiled loop, not the chain: same keys, same states."""
    sampler, key = samplers.Langevin(0.1), getkey()

    def go(unroll):
        return jax.jit(
            lambda k: samplers.run(sampler, lambda x: -x, jnp.ones((3, 2)), num_steps=12, burn_in=burn_in, thin=thin,
                                   save=True, batched=True, unroll=unroll, key=k)
        )(key)

    base, res = go(1), go(unroll)
    np.testing.assert_allclose(res.samples, base.samples, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(res.final, base.final, rtol=1e-6, atol=1e-6)
    assert base.samples.shape == (12 // thin, 3, 2)


def test_langevin_stationary_gaussian(getkey):
    # ULA on N(0, 1) with step h has the exact stationary law N(0, 1 / (1 - h / 2)).
    h, n = 0.2, 4000
    sampler = samplers.Langevin(h)
    res = jax.jit(
        lambda k: samplers.run(sampler, lambda x: -x, jnp.zeros((n,)), num_steps=100, burn_in=100, key=k, batched=True)
    )(getkey())
    x = np.asarray(res.final)
    var = 1 / (1 - h / 2)
    assert abs(x.mean()) < 4 * np.sqrt(var / n)
    # Var of the sample variance of n normals is 2 var^2 / (n - 1).
    assert abs(x.var() - var) < 4 * np.sqrt(2 * var**2 / (n - 1))


def test_progress_bar_inside_jit(getkey, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_PROGRESS", "1")
    res = jax.jit(
        lambda k: samplers.run(Counter(), None, jnp.zeros((2,)), num_steps=4, batched=True, progress=True, key=k)
    )(getkey())
    jax.block_until_ready(res.final)
    assert "Counter" in capsys.readouterr().err


class _Shifted(eqx.Module):
    """The score of N(mu, I) at every noise level: a target with an array, which `run(sharding=)` replicates."""

    mu: jax.Array

    def __call__(self, x, level):
        return self.mu - x


@pytest.mark.parametrize("path", ["scan", "host-loop", "under-jit"])
def test_sharded_chains_are_the_chains_of_one_device(path, getkey):
    """`sharding=` spreads the chains over the test's 4 CPU devices: same keys, so the same chains (and
    statistics) as on one device, in the jitted scan, the progress bar's host loop and the caller's jit."""
    assert len(jax.devices()) == 4  # tests/conftest.py
    sharding = NamedSharding(zoo.data_mesh(), PartitionSpec("data"))
    target, x0, key = _Shifted(jnp.arange(3.0)), jax.random.normal(getkey(), (8, 3)), getkey()
    # A sampler with a per-chain state (its step counter), which must go where the chains are.
    sampler = samplers.AnnealedLangevin.v1(np.array([1.0, 0.5]), steps_per_level=4, step_lr=0.1)

    def go(sharding):
        kw = dict(num_steps=6, burn_in=2, batched=True, key=key, sharding=sharding)
        if path == "under-jit":
            return jax.jit(lambda x: samplers.run(sampler, target, x, **kw))(x0)
        if path == "host-loop":
            return samplers.run(sampler, target, x0, progress=True, **kw)
        return samplers.run(sampler, target, x0, compiler_options={"xla_cpu_enable_fast_math": False}, **kw)

    one, many = go(None), go(sharding)
    np.testing.assert_allclose(many.final, one.final, rtol=1e-6, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), many.info, one.info)
    assert many.final.sharding.is_equivalent_to(sharding, 2)
    assert len(one.final.sharding.device_set) == 1


def test_sharding_errors(getkey):
    sharding = NamedSharding(zoo.data_mesh(), PartitionSpec("data"))
    x0, lang = jnp.zeros((6, 2)), samplers.Langevin(0.1)
    with pytest.raises(ValueError, match="6 chains do not split evenly over the 4 devices"):
        samplers.run(lang, lambda x: -x, x0, num_steps=2, batched=True, sharding=sharding, key=getkey())
    with pytest.raises(ValueError, match="needs batched=True"):
        samplers.run(lang, lambda x: -x, x0, num_steps=2, sharding=sharding, key=getkey())
    with pytest.raises(TypeError, match="NamedSharding"):
        samplers.run(lang, lambda x: -x, x0, num_steps=2, batched=True, sharding=jax.devices()[0], key=getkey())


class _CountingScore(eqx.Module):
    """-x, counting how often it is traced (a Python side effect runs only when JAX traces it)."""

    def __call__(self, x):
        _TRACES.append(1)
        return -x


_TRACES: list[int] = []


def test_an_eager_call_is_compiled_once(getkey):
    """`run` called outside jit jits its chain itself, with a cache: the second call with the same sampler, target
    and shapes neither re-traces nor recompiles (an eager `lax.scan` re-traced its body at every call)."""
    _TRACES.clear()
    x0, target = jnp.zeros((5, 3)), _CountingScore()
    first = samplers.run(samplers.Langevin(0.1), target, x0, num_steps=4, batched=True, key=getkey())
    traced = len(_TRACES)
    second = samplers.run(samplers.Langevin(0.1), target, x0 + 1.0, num_steps=4, batched=True, key=getkey())
    assert traced > 0 and len(_TRACES) == traced
    assert not np.allclose(first.final, second.final)
