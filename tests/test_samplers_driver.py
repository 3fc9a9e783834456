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


class KeyWalk(samplers.AbstractSampler):
    """x <- x + u(key): elementwise, so a chain's states are exact whatever the batch it runs in, and they show
    which key each transition got."""

    def init(self, target, x):
        return jnp.zeros((), jnp.int32)

    def step(self, target, x, state, *, key):
        x = x + jax.random.uniform(key, x.shape)
        return x, state + 1, {"x": x, "steps": state + 1}


@pytest.mark.parametrize("path", ["scan", "saved", "host-loop"])
@pytest.mark.parametrize("groups", [2, 4])
def test_groups_are_the_chains_of_one_execution(path, groups, getkey):
    """`groups=` runs the chains as equal groups, one execution each: every chain keeps its keys, so the states,
    saved samples and statistics are those of one execution (the progress bar's host loop and the caller's jit, where
    groups have no effect, give them too)."""
    x0, key = jax.random.normal(getkey(), (8, 3)), getkey()

    def go(groups):
        kw = dict(num_steps=6, burn_in=2, batched=True, key=key, groups=groups)
        if path == "saved":
            kw.update(save=True, thin=2)
        return samplers.run(KeyWalk(), None, x0, progress=path == "host-loop", **kw)

    one, split = go(1), go(groups)
    np.testing.assert_array_equal(split.final, one.final)
    jax.tree.map(np.testing.assert_array_equal, split.info, one.info)
    if path == "saved":
        assert split.samples.shape == (3, 8, 3)  # (saved, chains, ...)
        np.testing.assert_array_equal(split.samples, one.samples)
    # the chains of one call under the caller's jit, where groups has no effect
    traced = jax.jit(lambda x: samplers.run(KeyWalk(), None, x, num_steps=6, burn_in=2, batched=True, key=key,
                                            groups=groups, save=path == "saved", thin=2 if path == "saved" else 1))(x0)
    np.testing.assert_array_equal(traced.final, one.final)


def test_gwg_in_groups_is_gwg_in_one_execution(getkey):
    """GWG on an Ising-type target with integer couplings (every sum exact in float32, whatever the batch): the
    same chains, accept probabilities and hops in 2 groups as in one execution."""
    j = jax.random.randint(getkey(), (12, 12), -2, 3).astype(jnp.float32)
    j = (j + j.T) / 2

    def log_p(x):
        return x @ j @ x / 4 + jnp.sum(x)

    x0 = jax.random.bernoulli(getkey(), 0.5, (6, 12)).astype(jnp.float32)
    key = getkey()
    one, two = (samplers.run(samplers.GWG(), log_p, x0, num_steps=30, batched=True, key=key, groups=g) for g in (1, 2))
    np.testing.assert_array_equal(two.final, one.final)
    jax.tree.map(np.testing.assert_array_equal, two.info, one.info)


def test_groups_default_one_per_core(getkey, monkeypatch):
    """``groups=None`` (the default) on a CPU: the most groups dividing the chains, up to one per core and with 16
    chains at least; each group's executions hold its share of the chains (else one execution, not in pieces)."""
    from zoo.samplers import _driver

    seen = []
    piece = _driver._piece

    def spy(sampler, target, x, *args):
        seen.append(x.shape[0])  # at trace time: the chains of one execution
        return piece(sampler, target, x, *args)

    monkeypatch.setattr(_driver, "_piece", spy)
    monkeypatch.setattr(_driver, "cpus", lambda: {0, 1, 2, 3})
    # 96: 4 groups; 48: 3 (16 chains each at least); 40: 2; 20 (fewer than 2 x 16) and 31 (prime): one execution
    for n, per_group in [(96, [24]), (48, [16]), (40, [20]), (20, []), (31, [])]:
        seen.clear()
        x0 = jnp.zeros((n, 5))  # a new group shape each time (traced anew: seen once)
        samplers.run(KeyWalk(), None, x0, num_steps=2, batched=True, key=getkey())
        assert seen == per_group, n


def test_groups_errors(getkey):
    x0 = jnp.zeros((8, 2))
    with pytest.raises(ValueError, match="8 chains do not split into 3 equal groups"):
        samplers.run(KeyWalk(), None, x0, num_steps=2, batched=True, groups=3, key=getkey())
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="groups must be a positive int"):
            samplers.run(KeyWalk(), None, x0, num_steps=2, batched=True, groups=bad, key=getkey())


@pytest.mark.parametrize("burn_in,num_steps,thin,piece", [(0, 12, 1, 5), (7, 12, 3, 4), (5, 9, 3, 2), (3, 8, 4, 1)])
def test_a_run_in_pieces_is_one_run(burn_in, num_steps, thin, piece, getkey, monkeypatch):
    """Concurrent groups run as a sequence of short executions (`_PIECE` transitions each, here a few): burn-in and
    saved blocks split anywhere give the states, saved samples and statistics of one execution; the same in the
    progress bar's pieces (one bar, group 0's)."""
    from zoo.samplers import _driver

    monkeypatch.setattr(_driver, "_PIECE", piece)
    x0, key = jax.random.normal(getkey(), (4, 3)), getkey()
    kw = dict(num_steps=num_steps, burn_in=burn_in, thin=thin, save=True, batched=True, key=key)
    one = samplers.run(KeyWalk(), None, x0, groups=1, **kw)
    for progress in (False, True):
        split = samplers.run(KeyWalk(), None, x0, groups=2, progress=progress, **kw)
        np.testing.assert_array_equal(split.final, one.final)
        np.testing.assert_array_equal(split.samples, one.samples)
        np.testing.assert_allclose(split.info["x"], one.info["x"], rtol=1e-6)
        np.testing.assert_array_equal(split.info["steps"], one.info["steps"])


def test_pieces_cover_the_run():
    from zoo.samplers._driver import _pieces

    for total in range(0, 60):
        for most in (1, 4, 7, 256):
            got = _pieces(total, most)
            assert [a for a, _ in got] == list(np.cumsum([0] + [n for _, n in got])[:-1])
            assert sum(n for _, n in got) == total and all(0 < n <= most for _, n in got)
            assert len({n for _, n in got[:-1]}) <= 1  # one length, the last piece at most shorter
    assert _pieces(20000, 256) == [(a, 250) for a in range(0, 20000, 250)]  # 80 equal pieces: one program


_BARRIER: list = []


class _Meet(samplers.AbstractSampler):
    """x <- x + 1, after a host callback that waits at the barrier `_BARRIER[0]`."""

    def init(self, target, x):
        return jnp.zeros((), jnp.int32)

    def step(self, target, x, state, *, key):
        def meet(x):
            _BARRIER[0].wait()  # raises BrokenBarrierError after its timeout: the executions did not run at once
            return x

        x = jax.pure_callback(meet, jax.ShapeDtypeStruct(x.shape, x.dtype), x, vmap_method="broadcast_all")
        return x + 1.0, state + 1, {}


def test_groups_run_at_once(getkey):
    """The groups' executions run concurrently: each step of each group waits at a barrier for the other group's
    same step, which only passes if both executions are under way together. (The first call, which compiles, is made
    with a barrier of one: JAX may run a program's very first executions one after another.)"""
    import threading

    for parties in (1, 2):
        _BARRIER[:] = [threading.Barrier(parties, timeout=20)]
        res = samplers.run(_Meet(), None, jnp.zeros((4, 2)), num_steps=3, batched=True, groups=2, key=getkey())
        np.testing.assert_array_equal(res.final, np.full((4, 2), 3.0))


def test_a_failing_group_stops_the_others(getkey, monkeypatch):
    """A group whose execution fails raises its error from `run`, and the other groups start no further piece: with
    one transition per piece, group 1 fails at its first while group 0 counts its own (a host callback); group 0 stops
    long before its 2000 transitions."""
    from zoo.samplers import _driver

    monkeypatch.setattr(_driver, "_PIECE", 1)
    counted = []

    def check(x):
        if x[0, 0] > 0:  # group 1's chains (x0 below: positive in the second half)
            raise RuntimeError("group 1 fails")
        counted.append(1)
        return x

    class Check(samplers.AbstractSampler):
        def init(self, target, x):
            return jnp.zeros((), jnp.int32)

        def step(self, target, x, state, *, key):
            x = jax.pure_callback(check, jax.ShapeDtypeStruct(x.shape, x.dtype), x, vmap_method="broadcast_all")
            return x, state + 1, {}

    samplers.run(Check(), None, -jnp.ones((4, 2)), num_steps=2, batched=True, groups=2, key=getkey())  # compiles
    counted.clear()
    x0 = jnp.concatenate([-jnp.ones((2, 2)), jnp.ones((2, 2))])
    with pytest.raises(Exception, match="group 1 fails"):
        samplers.run(Check(), None, x0, num_steps=2000, batched=True, groups=2, key=getkey())
    assert len(counted) < 1000
