"""Discrete models of the GWG paper's inference experiments: Potts targets (lattice and dense),
Erdos-Renyi Ising, the factorial HMM, and structure learning by PCD (`PairwiseMRF` through
`zoo.train`), against brute-force enumeration on small spaces."""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import zoo
from zoo import samplers
from zoo.ebm import (
    FHMM,
    DensePottsTarget,
    IsingTarget,
    PairwiseMRFConfig,
    PottsTarget,
    coupling_rmse,
    erdos_renyi_coupling,
    erdos_renyi_ising,
    lattice_ising,
    lattice_potts,
    symmetric_couplings,
)
from zoo.samplers._gwg import first_occurrence


def _one_hot_states(d, k):
    v = (np.arange(k**d)[:, None] // k ** np.arange(d)[None, :]) % k
    return np.eye(k, dtype=np.float32)[v]


def _random_potts(d, k, key):
    k1, k2 = jax.random.split(key)
    a = jax.random.normal(k1, (d, d))
    return PottsTarget((a + a.T) / 2 * (1 - jnp.eye(d)), jax.random.normal(k2, (d, k)))


def _random_dense(d, k, key):
    k1, k2 = jax.random.split(key)
    return DensePottsTarget(symmetric_couplings(jax.random.normal(k1, (d, d, k, k))), jax.random.normal(k2, (d, k)))


@pytest.mark.parametrize("kind", ["potts", "dense"])
def test_potts_targets_brute_force_cache_and_gradient(kind, getkey):
    d, k = 5, 4
    t = _random_potts(d, k, getkey()) if kind == "potts" else _random_dense(d, k, getkey())
    x = jnp.asarray(np.eye(k, dtype=np.float32)[[0, 3, 1, 1, 2]])
    v = np.argmax(np.asarray(x), -1)
    if kind == "potts":
        J, b = np.asarray(t.J, np.float64), np.asarray(t.b, np.float64)
        brute = sum(J[i, j] * (v[i] == v[j]) for i in range(d) for j in range(d))
    else:
        W, b = np.asarray(t.W, np.float64), np.asarray(t.b, np.float64)
        brute = sum(0.5 * W[i, j, v[i], v[j]] for i in range(d) for j in range(d))
    brute += sum(b[i, v[i]] for i in range(d))
    np.testing.assert_allclose(float(t(x)), brute, rtol=1e-5)
    # the gradient is autodiff of the cached log-density's continuous extension
    np.testing.assert_allclose(t.grad(x, t.init(x)), jax.grad(lambda z: t.log_prob(z, t.init(z)))(x), atol=1e-5)
    # an incremental change (a repeated index applies its first value only) equals a fresh cache
    idx, vals = jnp.asarray([1, 4, 1]), jnp.asarray([2, 0, 0])
    x_new, c_new = t.change(x, t.init(x), idx, vals, first_occurrence(idx))
    np.testing.assert_array_equal(np.argmax(np.asarray(x_new), -1), [0, 2, 1, 1, 0])
    np.testing.assert_allclose(c_new, t.init(x_new), atol=1e-5)


def test_lattice_potts_with_two_colours_is_lattice_ising():
    potts, ising = lattice_potts(3, 2, 0.4), lattice_ising(3, 0.4)
    xb = jnp.asarray(((np.arange(2**9)[:, None] >> np.arange(9)) & 1).astype(np.float32))
    xc = jax.nn.one_hot(xb.astype(jnp.int32), 2)
    fp, fi = jax.vmap(potts)(xc), jax.vmap(ising)(xb)
    np.testing.assert_allclose(fp - fp[0], fi - fi[0], atol=1e-5)  # equal up to a constant
    assert lattice_potts(4, 3, 0.1).J.shape == (16, 16) and lattice_potts(4, 3, 0.1).b.shape == (16, 3)
    with pytest.raises(ValueError, match="num_colors"):
        lattice_potts(3, 1, 0.1)


def test_categorical_gwg_exact_on_cached_potts_target(getkey):
    """The transition matrix of categorical GWG (two changes) on the cached targets: reversible for pi."""
    from test_categorical_samplers import _check_exact, _gwg_matrix, _pi

    xs = _one_hot_states(3, 3)
    for t in (_random_potts(3, 3, getkey()), _random_dense(3, 3, getkey())):
        _check_exact(_gwg_matrix(samplers.CategoricalGWG(num_changes=2), t, xs, 3), _pi(t, xs))


def test_erdos_renyi_ising(getkey):
    n, deg = 200, 4.0
    J = np.asarray(erdos_renyi_coupling(n, deg, key=getkey()))
    assert np.allclose(J, J.T) and np.all(np.diag(J) == 0)
    edges = np.count_nonzero(np.triu(J))
    expected = n * (n - 1) / 2 * deg / n
    assert abs(edges - expected) < 4 * np.sqrt(expected)
    w = J[np.triu(J) != 0] / 2  # the official weights
    assert abs(np.std(w) - (1 / deg) ** 0.5) < 0.1
    t = erdos_renyi_ising(10, 2.0, 0.3, key=getkey())
    assert isinstance(t, IsingTarget) and np.allclose(t.h, 0.3)
    with pytest.raises(ValueError, match="avg_degree"):
        erdos_renyi_coupling(5, 10.0, key=getkey())


def test_fhmm_prior_is_normalised_and_sampled(getkey):
    model = FHMM.random(num_steps=3, num_chains=2, keep_prob=0.7, x0_mean=0.3, key=getkey())
    xs = jnp.asarray(((np.arange(64)[:, None] >> np.arange(6)) & 1).astype(np.float32)).reshape(64, 3, 2)
    p = np.exp(np.asarray(jax.vmap(model.log_prior)(xs), np.float64))
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-5)
    draws = jax.vmap(lambda k: model.sample_x(key=k))(jax.random.split(getkey(), 20000))
    idx = (np.asarray(draws).reshape(-1, 6).astype(int) << np.arange(6)).sum(-1)
    assert scipy.stats.chisquare(np.bincount(idx, minlength=64), 20000 * p / p.sum()).pvalue > 1e-3
    # the posterior is a plain log-density: log p(X) + log p(y | X)
    y = model.sample_y(xs[5], key=getkey())
    post = model.posterior(y)
    np.testing.assert_allclose(post(xs[5].reshape(-1)), model.log_prior(xs[5]) + model.log_likelihood(y, xs[5]),
                               rtol=1e-6)
    assert float(model.reconstruction_error(y, xs[5])) >= 0


def test_fhmm_posterior_inference_reduces_reconstruction_error(getkey):
    model = FHMM.random(num_steps=40, num_chains=4, sigma=0.3, key=getkey())
    x_true = model.sample_x(key=getkey())
    y = model.sample_y(x_true, key=getkey())
    x0 = jax.vmap(lambda k: model.sample_x(key=k))(jax.random.split(getkey(), 8)).reshape(8, -1)
    run = eqx.filter_jit(lambda s, x, k: samplers.run(s, model.posterior(y), x, num_steps=400, key=k, batched=True))
    final = run(samplers.GWG(), x0, getkey()).final
    err = jax.vmap(lambda x: model.reconstruction_error(y, x.reshape(40, 4)))
    assert float(jnp.mean(err(final))) < 0.5 * float(jnp.mean(err(x0)))


# ----------------------------------------------------------------------------- structure learning


def _exact_draws(target, xs, n, key):
    t = samplers.as_discrete_target(target)
    logp = jax.vmap(lambda x: t.log_prob(x, t.init(x)))(jnp.asarray(xs))
    return np.asarray(jnp.asarray(xs)[jax.random.categorical(key, logp, shape=(n,))])


def test_pseudo_log_likelihood_brute_force(getkey):
    for k in (2, 3):
        config = PairwiseMRFConfig(num_nodes=4, num_values=k, init_std=0.5, learn_bias=True,
                                   train_sampler="gwg" if k == 2 else "categorical_gwg")
        model = config.build(key=getkey())
        model = eqx.tree_at(lambda m: m.b, model, 0.3 * jax.random.normal(getkey(), model.b.shape))
        xs = _one_hot_states(4, k) if k > 2 else _one_hot_states(4, 2)[..., 1]
        f = np.asarray(jax.vmap(model.log_prob)(jnp.asarray(xs)), np.float64)
        vals = np.argmax(xs, -1) if k > 2 else xs.astype(int)
        index = {tuple(v): a for a, v in enumerate(vals)}
        a = 7
        brute = 0.0
        for i in range(4):
            alts = [index[tuple(np.where(np.arange(4) == i, c, vals[a]))] for c in range(k)]
            brute += f[a] - np.log(np.sum(np.exp(f[alts])))
        np.testing.assert_allclose(float(model.pseudo_log_likelihood(jnp.asarray(xs[a]))), brute, rtol=1e-5)


@pytest.mark.parametrize("k,sampler", [pytest.param(2, "gwg", marks=pytest.mark.slow), (3, "categorical_gwg")])
def test_structure_learning_recovers_couplings(k, sampler, getkey):
    """PCD through zoo.train on exact draws of a small random Ising / Potts model: the RMSE of J
    falls to a small fraction of the truth's scale."""
    d = 5
    a = jax.random.normal(getkey(), (d, d))
    J_true = 0.8 * (a + a.T) / 2 * (1 - jnp.eye(d))
    truth = IsingTarget(J_true, jnp.zeros(d)) if k == 2 else PottsTarget(J_true, jnp.zeros((d, k)))
    xs = _one_hot_states(d, k) if k > 2 else _one_hot_states(d, 2)[..., 1]
    data = _exact_draws(truth, xs, 4000, getkey())
    config = PairwiseMRFConfig(num_nodes=d, num_values=k, train_sampler=sampler, sampling_steps=5, buffer_size=512)
    model = config.build(key=getkey())
    before = coupling_rmse(model, J_true)
    tc = zoo.TrainConfig(steps=150, batch_size=400, learning_rate=0.05, log_every=50)
    trained = zoo.train(model, data, tc, key=getkey()).model
    after = coupling_rmse(trained, J_true)
    assert after < 0.25 * before, (before, after)
    assert np.all(np.asarray(trained.b) == 0)  # fields are frozen unless learn_bias
    metrics = zoo.evaluate(trained, data[:200], key=getkey())
    assert metrics["pseudo_log_likelihood"] < 0
    s = trained.sample(6, key=getkey())
    assert s.shape == ((6, d) if k == 2 else (6, d, k))


def test_pairwise_mrf_config_errors(getkey):
    with pytest.raises(zoo.ConfigError, match="does not sample one-hot"):
        PairwiseMRFConfig(num_values=3, train_sampler="gwg")
    with pytest.raises(zoo.ConfigError, match="does not sample binary"):
        PairwiseMRFConfig(num_values=2, train_sampler="categorical_gibbs")
    with pytest.raises(zoo.ConfigError, match="unknown sampler"):
        PairwiseMRFConfig(train_sampler="gwgg")
    model = PairwiseMRFConfig(num_nodes=9, num_values=3, train_sampler="dmala").build(key=getkey())
    with pytest.raises(zoo.DataError, match="one-hot"):
        model.evaluate(np.zeros((2, 9)), key=getkey())
    imgs = model.to_images(model.random_states(2, key=getkey()))
    assert imgs.shape == (2, 3, 3, 1) and imgs.max() <= 1
    assert isinstance(model.default_sampler(), samplers.DMALA)
