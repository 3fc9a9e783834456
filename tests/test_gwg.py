"""Exact checks of the binary samplers on tiny spaces (D <= 5), by enumerating all states.

Transition matrices are built from each sampler's own proposal / acceptance functions
(`GWG.propose`, `RandomScanGibbs.flip_prob`, `UniformMH.propose`); long-run empirical
frequencies of independent chains are checked with a chi-square bound.
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from discrete_targets import quadratic

from zoo import samplers
from zoo.ebm import IsingTarget, RBMTarget
from zoo.samplers._gwg import first_occurrence


def _states(d):
    return ((np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1).astype(np.float32)


def _index(x):
    return int(np.sum(np.asarray(x).astype(int) << np.arange(len(x))))


def _rbm(d, h, key, scale=1.0):
    k1, k2, k3 = jax.random.split(key, 3)
    return RBMTarget(scale * jax.random.normal(k1, (d, h)), scale * jax.random.normal(k2, (d,)),
                     scale * jax.random.normal(k3, (h,)))


def _pi(target, d):
    xs = jnp.asarray(_states(d))
    t = samplers.as_binary_target(target)
    logp = jax.vmap(lambda x: t.log_prob(x, t.init(x)))(xs)
    p = np.exp(np.asarray(logp, np.float64) - np.max(np.asarray(logp, np.float64)))
    return p / p.sum()


def _gwg_matrix(sampler, target, d):
    """P[x, y] = sum over index sequences of q(seq | x) * min(1, alpha)."""
    xs = _states(d)
    n = sampler.num_flips
    seqs = jnp.asarray(list(itertools.product(range(d), repeat=n)), jnp.int32)

    @jax.jit
    def row(x):
        state = sampler.init(target, x)

        def one(idx):
            log_alpha, x_new, _ = sampler.propose(target, x, state, idx)
            prob = jnp.exp(jnp.sum(state.log_q[idx]) + jnp.minimum(log_alpha, 0.0))
            return prob, x_new

        return jax.vmap(one)(seqs)

    P = np.zeros((2**d, 2**d))
    for i, x in enumerate(xs):
        probs, news = row(jnp.asarray(x))
        for p, y in zip(np.asarray(probs, np.float64), np.asarray(news)):
            P[i, _index(y)] += p
    P[np.arange(2**d), np.arange(2**d)] += 1 - P.sum(1)
    return P


def _single_flip_matrix(flip_prob, d):
    """P[x, flip_i x] = flip_prob(x, i) / d (random-scan kernels)."""
    xs = _states(d)
    probs = np.asarray(jax.jit(jax.vmap(jax.vmap(flip_prob, (None, 0)), (0, None)))(jnp.asarray(xs), jnp.arange(d)))
    P = np.zeros((2**d, 2**d))
    for i, x in enumerate(xs):
        for j in range(d):
            y = x.copy()
            y[j] = 1 - y[j]
            P[i, _index(y)] += float(probs[i, j]) / d
    P[np.arange(2**d), np.arange(2**d)] += 1 - P.sum(1)
    return P


def _check_exact(P, pi):
    assert np.all(P >= -1e-6) and np.allclose(P.sum(1), 1, atol=1e-9)
    flow = pi[:, None] * P
    np.testing.assert_allclose(flow, flow.T, atol=1e-6)  # detailed balance
    np.testing.assert_allclose(pi @ P, pi, atol=1e-6)  # stationarity
    # ... and pi is *the* stationary distribution (the chain is irreducible):
    w, v = np.linalg.eig(P.T)
    k = np.argmin(np.abs(w - 1))
    assert np.sum(np.abs(w - 1) < 1e-8) == 1
    stat = np.real(v[:, k]) / np.real(v[:, k]).sum()
    np.testing.assert_allclose(stat, pi, atol=1e-6)


@pytest.mark.parametrize("kind,num_flips", [("quadratic", 1), ("rbm", 1), ("ising", 2), ("rbm", 3)])
def test_gwg_exact_stationary(num_flips, kind, getkey):
    d = 4 if num_flips < 3 else 3
    if kind == "quadratic":
        target = quadratic(d, getkey())
    elif kind == "rbm":
        target = _rbm(d, 3, getkey())
    else:
        a = jax.random.normal(getkey(), (d, d))
        J = (a + a.T) * (1 - jnp.eye(d)) / 2
        target = IsingTarget(J, jax.random.normal(getkey(), (d,)))
    sampler = samplers.GWG(num_flips=num_flips)
    _check_exact(_gwg_matrix(sampler, target, d), _pi(target, d))


def test_gwg_wrong_correction_fails(getkey):
    """The exact check has power: dropping the reverse-proposal term breaks it."""

    class NoReverse(samplers.GWG):
        def propose(self, target, x, state, idx):
            log_alpha, x_new, s = super().propose(target, x, state, idx)
            return log_alpha - jnp.sum(s.log_q[idx]) + jnp.sum(state.log_q[idx]), x_new, s

    d = 4
    target = quadratic(d, getkey())
    P = _gwg_matrix(NoReverse(), target, d)
    with pytest.raises(AssertionError):
        _check_exact(P, _pi(target, d))


def test_gwg_proposal_is_softmax_of_half_gradient_difference(getkey):
    d = 5
    f = quadratic(d, getkey())
    x = jnp.asarray([1.0, 0.0, 0.0, 1.0, 1.0])
    state = samplers.GWG().init(f, x)
    g = jax.grad(f)(x)
    expected = jax.nn.log_softmax(-(2 * x - 1) * g / 2)
    np.testing.assert_allclose(state.log_q, expected, atol=1e-6)


def test_random_scan_gibbs_exact(getkey):
    d = 5
    target = _rbm(d, 3, getkey())
    sampler = samplers.RandomScanGibbs()

    def flip_prob(x, j):
        return sampler.flip_prob(target, x, sampler.init(target, x), j)[0]

    _check_exact(_single_flip_matrix(flip_prob, d), _pi(target, d))


def test_uniform_mh_exact(getkey):
    d = 5
    target = quadratic(d, getkey())
    sampler = samplers.UniformMH()

    def flip_prob(x, j):
        log_alpha = sampler.propose(target, x, sampler.init(target, x), jnp.reshape(j, (1,)))[0]
        return jnp.exp(jnp.minimum(log_alpha, 0.0))

    _check_exact(_single_flip_matrix(flip_prob, d), _pi(target, d))


def test_flip_cache_matches_recompute(getkey):
    """Incremental caches (RBM pre-activations, Ising fields) equal a fresh computation,
    and the targets' gradients equal autodiff of their log-density."""
    d = 6
    rbm = _rbm(d, 4, getkey())
    a = jax.random.normal(getkey(), (d, d))
    ising = IsingTarget((a + a.T) * (1 - jnp.eye(d)) / 2, jax.random.normal(getkey(), (d,)))
    x = jnp.asarray([1.0, 0, 1, 1, 0, 0])
    idx = jnp.asarray([2, 4, 2])

    for t in (rbm, ising):
        c = t.init(x)
        x_new, c_new = t.flip(x, c, idx, first_occurrence(idx))
        np.testing.assert_array_equal(x_new, jnp.asarray([1.0, 0, 0, 1, 1, 0]))
        np.testing.assert_allclose(c_new, t.init(x_new), atol=1e-5)
        np.testing.assert_allclose(t.grad(x, c), jax.grad(t)(x), atol=1e-5)


def _chi_square_pvalue(samples, pi):
    d = samples.shape[-1]
    idx = (samples.astype(int) << np.arange(d)).sum(-1)
    counts = np.bincount(idx, minlength=len(pi))
    return scipy.stats.chisquare(counts, len(idx) * pi).pvalue


@pytest.mark.parametrize(
    "sampler",
    [samplers.GWG(), samplers.GWG(num_flips=3), samplers.RandomScanGibbs(), samplers.UniformMH(),
     samplers.UniformMH(num_flips=2), samplers.BlockGibbs()],
    ids=["gwg", "gwg3", "gibbs", "mh", "mh2", "block"],
)
def test_empirical_frequencies(sampler, getkey):
    """3000 independent chains, 100 steps each, from one fixed start: the final states
    are i.i.d. draws whose histogram over the 32 states passes a chi-square test."""
    d = 5
    target = _rbm(d, 3, getkey())
    pi = _pi(target, d)
    x0 = jnp.zeros((3000, d))
    run = eqx.filter_jit(lambda s, t, x, k: samplers.run(s, t, x, num_steps=100, key=k, batched=True).final)
    final = np.asarray(run(sampler, target, x0, getkey()))
    assert _chi_square_pvalue(final, pi) > 1e-3
    # ... and the same test rejects a wrong distribution (power check):
    wrong = np.roll(pi, 1)
    assert _chi_square_pvalue(final, wrong) < 1e-6


def test_long_single_chain_time_average(getkey):
    """One long GWG chain: its time-averaged state frequencies converge to the target."""
    d = 4
    target = quadratic(d, getkey(), scale=0.7)
    pi = _pi(target, d)
    res = jax.jit(lambda k: samplers.run(samplers.GWG(), target, jnp.zeros(d), num_steps=100_000, key=k,
                                         burn_in=100, thin=1, save=True))(getkey())
    xs = np.asarray(res.samples)
    idx = (xs.astype(int) << np.arange(d)).sum(-1)
    freq = np.bincount(idx, minlength=2**d) / len(idx)
    np.testing.assert_allclose(freq, pi, atol=0.015)
    assert 0.0 < float(res.info["accept_prob"]) <= 1.0


def test_driver_stats_and_errors(getkey):
    target = quadratic(5, getkey())
    res = samplers.run(samplers.GWG(), target, jnp.zeros((7, 5)), num_steps=20, key=getkey(), batched=True,
                       thin=5, save=True)
    assert res.samples.shape == (4, 7, 5) and res.info["hops"].shape == (7,)
    assert set(np.unique(np.asarray(res.samples))) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="num_flips"):
        samplers.GWG(num_flips=0)
    with pytest.raises(TypeError, match="BlockGibbs needs"):
        samplers.run(samplers.BlockGibbs(), target, jnp.zeros(5), num_steps=1, key=getkey())
    with pytest.raises(TypeError, match="log-density callable"):
        samplers.as_binary_target(3)


@pytest.mark.parametrize("d", [1, 7, 50])
def test_sample_indices_is_inverse_cdf(d, getkey):
    from zoo.samplers._gwg import sample_indices

    log_q = jax.nn.log_softmax(jax.random.normal(getkey(), (d,)))
    u = jnp.linspace(0.0005, 0.9995, 1000)
    cdf = np.cumsum(np.exp(np.asarray(log_q, np.float64)))
    expected = np.minimum(np.searchsorted(cdf / cdf[-1], np.asarray(u), side="left"), d - 1)
    got = np.asarray(sample_indices(log_q, u))
    assert np.sum(got != expected) <= 2  # float32 vs float64 ties at block edges


def test_uniform_and_split_are_jax_random(getkey):
    """The straight-line threefry `uniform` and `split` give `jax.random.uniform`'s numbers and
    `jax.random.split`'s keys bit for bit (typed and raw threefry keys, under jit and vmap); other
    key implementations go to `jax.random`."""
    from zoo.samplers._random import split, uniform

    fast_u, fast_s = jax.jit(uniform, static_argnums=1), jax.jit(split, static_argnums=1)
    data = jax.random.key_data
    for key in (getkey(), jax.random.PRNGKey(7), jax.random.key(3, impl="rbg")):
        for n in (1, 2, 33):
            np.testing.assert_array_equal(fast_u(key, n), jax.random.uniform(key, (n,)))
            got, want = fast_s(key, n), jax.random.split(key, n)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(data(got), data(want))
    keys = jax.random.split(getkey(), 64)
    np.testing.assert_array_equal(jax.jit(jax.vmap(lambda k: uniform(k, 3)))(keys),
                                  jax.vmap(lambda k: jax.random.uniform(k, (3,)))(keys))
    np.testing.assert_array_equal(data(jax.jit(jax.vmap(lambda k: split(k, 3)))(keys)),
                                  data(jax.vmap(lambda k: jax.random.split(k, 3))(keys)))


def test_split_range_is_a_slice_of_split(getkey):
    """`split_range(key, start, length, total)` is ``jax.random.split(key, total)[start:start + length]`` bit for bit,
    with `start` traced (typed and raw threefry keys, and the rbg implementation's fallback)."""
    from zoo.samplers._random import split_range

    fn = jax.jit(split_range, static_argnums=(2, 3))
    for key in (getkey(), jax.random.PRNGKey(7), jax.random.key(3, impl="rbg")):
        full = jax.random.key_data(jax.random.split(key, 40))
        for start, length in ((0, 40), (3, 10), (39, 1)):
            got = fn(key, jnp.asarray(start), length, 40)
            np.testing.assert_array_equal(jax.random.key_data(got), full[start:start + length])


def test_sample_from_probs_skips_zero_mass():
    """Unnormalised probabilities with zeros: every uniform lands on a coordinate with mass, at
    the coordinate whose CDF interval holds it."""
    from zoo.samplers._gwg import sample_from_probs

    p = np.asarray([0.0, 0.6, 0.0, 0.0, 1.0, 0.4, 0.0, 0.0, 0.0, 0.0], np.float32)
    u = np.linspace(0.0005, 0.9995, 999, dtype=np.float32)
    got = np.asarray(sample_from_probs(jnp.asarray(p), jnp.asarray(u)))
    expected = np.searchsorted(np.cumsum(p) / p.sum(), u, side="left")
    assert set(got.tolist()) == {1, 4, 5} and np.sum(got != expected) <= 2


def test_gwg_rejects_a_draw_without_proposal_mass(getkey):
    """A drawn index whose forward probability is 0 (only rounding can draw one) is rejected."""
    target = quadratic(4, getkey())
    sampler, x = samplers.GWG(), jnp.asarray([1.0, 0.0, 1.0, 0.0])
    state = sampler.init(target, x)
    state = eqx.tree_at(lambda s: s.q, state, state.q.at[2].set(0.0))
    assert sampler.propose(target, x, state, jnp.asarray([2]))[0] == -jnp.inf
    assert np.isfinite(sampler.propose(target, x, state, jnp.asarray([1]))[0])


def test_gwg_step_state_and_hops(getkey):
    """After a step (accepted or not) the carried state is a fresh `init` at the new point, and
    `hops` counts the coordinates that changed (three draws, repeats possible)."""
    d, n = 6, 300
    target = _rbm(d, 4, getkey())
    sampler = samplers.GWG(num_flips=3)
    x0 = jax.random.bernoulli(getkey(), 0.5, (n, d)).astype(jnp.float32)
    step = jax.jit(jax.vmap(lambda x, k: sampler.step(target, x, sampler.init(target, x), key=k)))
    x1, s1, info = step(x0, jax.random.split(getkey(), n))
    fresh = jax.vmap(lambda x: sampler.init(target, x))(x1)
    np.testing.assert_allclose(s1.q, fresh.q, atol=1e-6)
    np.testing.assert_allclose(s1.log_p, fresh.log_p, atol=1e-5)
    np.testing.assert_allclose(s1.cache, fresh.cache, atol=1e-5)
    np.testing.assert_array_equal(info["hops"], np.sum(np.abs(np.asarray(x1) - np.asarray(x0)), axis=1))
    moved = np.asarray(info["hops"]) > 0
    assert 0.1 < moved.mean() < 1.0  # accepted and rejected proposals both occur


def test_rbm_log_prob_and_grad(getkey):
    """`RBMTarget.log_prob_and_grad` (one sigmoid per hidden unit) agrees with float64 softplus and
    with autodiff, over pre-activations from -80 to 80."""
    d, h = 6, 5
    t = _rbm(d, h, getkey(), scale=8.0)
    for x in jnp.asarray(_states(d)[::3]):
        for a in (t.init(x), jnp.asarray([-80.0, -17.0, -0.3, 0.0, 40.0])):
            lp, g = t.log_prob_and_grad(x, a)
            a64 = np.asarray(a, np.float64)
            ref = float(np.asarray(x, np.float64) @ np.asarray(t.b, np.float64) + np.sum(np.logaddexp(0.0, a64)))
            assert abs(float(lp) - ref) <= 1e-6 * max(1.0, abs(ref))
            np.testing.assert_allclose(g, t.grad(x, a), rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(t.log_prob_and_grad(x, t.init(x))[1], jax.grad(t)(x), rtol=1e-5, atol=1e-4)


def test_rbm_bfloat16_gradient(getkey):
    t = _rbm(5, 3, getkey())
    tb = t.with_grad_dtype(jnp.bfloat16)
    assert tb.grad_weights.dtype == jnp.bfloat16 and tb.grad_weights.shape == (3, 5)
    assert tb.with_grad_dtype(None).grad_weights is None and t.with_grad_dtype(jnp.float32).grad_weights is None
    x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0])
    g, gb = t.grad(x, t.init(x)), tb.grad(x, tb.init(x))
    assert 0 < float(jnp.max(jnp.abs(gb - g))) < 0.05 * float(jnp.max(jnp.abs(g)))
    assert tb.log_prob(x, tb.init(x)) == t.log_prob(x, t.init(x))  # f itself stays float32
    with pytest.raises(ValueError, match="floating dtype"):
        t.with_grad_dtype(jnp.int8)


@pytest.mark.parametrize("num_flips", [1, 2])
def test_gwg_bfloat16_gradient_exact(num_flips, getkey):
    """GWG with the bfloat16 gradient product: a different proposal, the same stationary law."""
    d = 4
    target = _rbm(d, 3, getkey(), scale=2.0)
    low = target.with_grad_dtype(jnp.bfloat16)
    sampler = samplers.GWG(num_flips=num_flips)
    x = jnp.asarray(_states(d)[5])
    assert float(jnp.max(jnp.abs(sampler.init(low, x).q - sampler.init(target, x).q))) > 1e-5
    _check_exact(_gwg_matrix(sampler, low, d), _pi(target, d))


def test_gwg_bfloat16_empirical_frequencies(getkey):
    d = 5
    target = _rbm(d, 3, getkey())
    pi = _pi(target, d)
    run = jax.jit(lambda t, k: samplers.run(samplers.GWG(), t, jnp.zeros((3000, d)), num_steps=100, key=k,
                                            batched=True).final)
    final = np.asarray(run(target.with_grad_dtype(jnp.bfloat16), getkey()))
    assert _chi_square_pvalue(final, pi) > 1e-3
    assert _chi_square_pvalue(final, np.roll(pi, 1)) < 1e-6
