"""The categorical EBM (`zoo.ebm.CategoricalEBM`) and AIS on one-hot states, against enumeration:
log-densities, cache and gradient, input validation, the K = 2 reduction to the binary case, AIS
log Z against the exact one, PCD on a tiny space (exact KL to the data falls), checkpoint round trip;
the quantised data set's binning (`zoo.data.quantize`)."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo import samplers
from zoo.data import quantize
from zoo.ebm import (
    CategoricalEBMConfig,
    RBMConfig,
    RBMTarget,
    ais,
    bootstrap_std,
    categorical_data_logits,
    data_mean_logits,
    rbm_log_z_exact,
)


def _states(d, k):
    return np.asarray(list(itertools.product(range(k), repeat=d)), np.int32)


def _exact_log_probs(model, d, k):
    """Normalised log-probabilities of all K^D states (in `_states` order), by enumeration."""
    lp = jax.vmap(model.log_prob)(jax.nn.one_hot(jnp.asarray(_states(d, k)), k))
    return np.asarray(jax.nn.log_softmax(lp), np.float64)


def _random_model(key, d=3, k=3, scale=2.0, **kw):
    """A small model with a nonzero network term (random head, large first layer) and a random base."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    cfg = CategoricalEBMConfig(num_positions=d, num_values=k, image_shape=None, hidden=8, **kw)
    model = cfg.build(key=k1)
    w, h = model.net.weight, model.net.head.weight
    return eqx.tree_at(
        lambda m: (m.net.weight, m.net.head.weight, m.base_logits),
        model,
        (scale * jax.random.normal(k2, w.shape), scale * jax.random.normal(k3, h.shape),
         jax.random.normal(k4, (d, k))),
    )


def test_quantize_bins_and_idempotence():
    x = np.array([0.0, 0.2499, 0.25, 0.5, 0.74, 0.75, 0.999, 1.0], np.float32)
    np.testing.assert_array_equal(quantize(x, 4), [0, 0, 1, 2, 2, 3, 3, 3])
    for k in (2, 3, 4, 7, 256):
        levels = np.arange(k)
        np.testing.assert_array_equal(quantize(levels.astype(np.float32) / (k - 1), k), levels)  # idempotent
    with pytest.raises(zoo.DataError, match=r"\[0, 1\]"):
        quantize(np.array([0.5, 255.0]), 4)


def test_log_prob_target_cache_and_validation(getkey):
    d, k = 6, 3
    model = _random_model(getkey(), d, k)
    model = zoo.replace_config(model, image_shape=(2, 3, 1))
    v = jax.random.randint(getkey(), (5, d), 0, k)
    x = jax.nn.one_hot(v, k)
    idx, values, first = jnp.array([0, 4, 0]), (v[0, jnp.array([0, 4, 0])] + 1) % k, jnp.array([True, True, False])

    @eqx.filter_jit
    def compute(model, x):
        t = model.target()
        x_new, cache = t.change(x[0], t.init(x[0]), idx, values, first)
        return (jax.vmap(model.log_prob)(x), jax.vmap(t)(x), jax.vmap(lambda s: t.grad(s, t.init(s)))(x),
                jax.vmap(jax.grad(model.log_prob))(x), jax.vmap(model.base_log_prob)(x), x_new, cache, t.init(x_new))

    lp, lp_target, grad_target, grad_autodiff, base, x_new, cache, fresh = compute(model, x)
    assert lp.shape == (5,) and lp.dtype == jnp.float32
    # the sampler target: the same f, its autodiff gradient, and an incremental cache that equals a fresh one
    np.testing.assert_allclose(lp_target, lp, rtol=1e-6)
    np.testing.assert_allclose(grad_target, grad_autodiff, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(jnp.argmax(x_new, -1), v[0].at[0].set(values[0]).at[4].set(values[1]))
    for got, want in zip(cache, fresh):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the base term is the normalised product of categoricals
    base_lp = np.asarray(jax.nn.log_softmax(model.base_logits))
    np.testing.assert_allclose(base, np.sum(np.asarray(x) * base_lp[None], axis=(1, 2)), rtol=1e-5)
    # integer levels and grey values (any shape with D per example; grey: equal-width bins, also under jit)
    # and one-hot batches are the same data
    grey = np.asarray(v, np.float32).reshape(5, 2, 3, 1) / (k - 1)
    for same in (v.reshape(5, 2, 3, 1), grey, grey * 0.9 + 0.05, x):
        np.testing.assert_array_equal(model._flat(same), x)
    np.testing.assert_array_equal(eqx.filter_jit(lambda m, g: m._flat(g))(model, grey), x)
    np.testing.assert_array_equal(model._flat(quantize(grey[:2], k)), x[:2])
    img = model.to_images(x)
    assert img.shape == (5, 2, 3, 1) and set(np.unique(img)) <= {0.0, 0.5, 1.0}
    np.testing.assert_array_equal(img.reshape(5, d) * (k - 1), v)
    # bad input: clear errors naming the fix
    with pytest.raises(zoo.DataError, match=r"one-hot state of shape \(6, 3\)"):
        model.log_prob(x[0, :, :2])
    with pytest.raises(zoo.DataError, match="one-hot"):
        model.log_prob(x[0].at[2, 0].set(1.0 - x[0, 2, 0]))
    with pytest.raises(zoo.DataError, match=r"grey values in \[0, 1\]"):
        model._flat(np.full((2, 2, 3, 1), 255.0, np.float32))  # grey images in [0, 255]
    with pytest.raises(zoo.DataError, match=r"\(N, 6, 3\)"):
        model._flat(np.zeros((2, 5), np.int32))
    with pytest.raises(zoo.DataError, match=r"levels in 0\.\.2"):
        model._flat(np.full((2, d), 3, np.int32))
    bad = np.array(x)
    bad[1, 2] = 0.5
    with pytest.raises(zoo.DataError, match=r"one-hot.*index \(1, 2\)"):
        model._flat(bad)
    with pytest.raises(zoo.DataError, match=r"one-hot.*index \(1, 2\)"):
        model.with_base(bad)
    with pytest.raises(zoo.ConfigError, match="pixels"):
        CategoricalEBMConfig(num_positions=6, image_shape=(28, 28, 1))
    with pytest.raises(zoo.ConfigError, match="num_values"):
        CategoricalEBMConfig(num_values=1)


def test_two_values_reduce_to_the_binary_case(getkey):
    """K = 2: the data marginals are the binary data-mean logits, a fresh model (zero network term)
    is the binary data-mean Bernoulli, and categorical AIS (categorical GWG on one-hot states) gets an
    RBM's exact log Z through its K = 2 view."""
    levels = np.asarray(jax.random.bernoulli(getkey(), 0.3, (200, 5)), np.int32)
    logits = categorical_data_logits(levels, 2)
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], data_mean_logits(levels), rtol=1e-5)
    model = CategoricalEBMConfig(num_positions=5, num_values=2, image_shape=None, hidden=4).build(key=getkey())
    model = model.with_base(levels)
    xb = jnp.asarray(levels[:20], jnp.float32)
    lb = jnp.asarray(data_mean_logits(levels))
    bernoulli = jnp.sum(xb * lb[None] - jax.nn.softplus(lb)[None], axis=1)
    np.testing.assert_allclose(jax.vmap(model.log_prob)(jax.nn.one_hot(levels[:20], 2)), bernoulli, rtol=1e-5)

    k1, k2, k3 = jax.random.split(getkey(), 3)
    rbm = RBMTarget(jax.random.normal(k1, (5, 3)), jax.random.normal(k2, (5,)), jax.random.normal(k3, (3,)))
    base = jnp.stack([jnp.zeros(5), jnp.full(5, 0.3)], axis=-1)
    res = jax.jit(lambda k: ais(samplers.BinaryAsCategorical(rbm), base, num_steps=200, num_chains=400, key=k))(
        getkey())
    exact, se = float(rbm_log_z_exact(rbm)), bootstrap_std(np.asarray(res.log_weights))
    assert res.samples.shape == (400, 5, 2)
    assert abs(float(res.log_z) - exact) < 4 * se + 0.02, (float(res.log_z), exact, se)


def test_ais_matches_exact_log_z_by_enumeration(getkey):
    """`evaluate` (AIS from the product-of-categoricals base with categorical GWG transitions)
    against the exact log Z and mean log-likelihood of D = 3, K = 3 (27 states)."""
    d, k = 3, 3
    model = zoo.replace_config(_random_model(getkey(), d, k), ais_steps=200, ais_chains=500)
    exact_lp = _exact_log_probs(model, d, k)
    lp = jax.vmap(model.log_prob)(jax.nn.one_hot(jnp.asarray(_states(d, k)), k))
    exact = float(jax.scipy.special.logsumexp(lp))
    data = _states(d, k)[::4]
    out = zoo.evaluate(model, data, key=getkey())
    se = out["log_z_bootstrap_std"]
    assert abs(out["log_z"] - exact) < 4 * se + 0.02 and se < 0.1, (out["log_z"], exact, se)
    true_ll = float(np.mean(exact_lp[::4]))
    assert abs(out["log_likelihood"] - true_ll) < 4 * se + 0.02, (out["log_likelihood"], true_ll)


@pytest.mark.slow  # ~18 s: CI time (the AIS and K = 2 tests above stay in CI)
def test_pcd_moves_the_exact_distribution_to_the_data_and_round_trips(getkey, tmp_path):
    """PCD with categorical GWG through zoo.train on D = 3, K = 3 (27 states): the data put 85% of
    their mass on the three constant states, which the data marginals (the base, where a fresh model
    starts) cannot express; the trained model's exact KL(data || model) falls below a fifth of the
    base's. Then save / load / sample."""
    d, k = 3, 3
    states = _states(d, k)
    p = np.full(27, 0.15 / 27)
    p[[0, 13, 26]] += 0.85 / 3
    idx = np.asarray(jax.random.choice(getkey(), 27, (512,), p=jnp.asarray(p)))
    data = states[idx]
    emp = np.bincount(idx, minlength=27) / len(idx)

    def kl(model):
        logq = _exact_log_probs(model, d, k)
        return float(np.sum(np.where(emp > 0, emp * (np.log(np.maximum(emp, 1e-30)) - logq), 0.0)))

    cfg = CategoricalEBMConfig(num_positions=d, num_values=k, image_shape=None, hidden=16, num_layers=1,
                               sampling_steps=5, buffer_size=256, sample_steps=20)
    model = cfg.build(key=getkey())
    tc = zoo.TrainConfig(steps=150, batch_size=64, learning_rate=5e-3, ema_decay=0.9, log_every=50)
    result = zoo.train(model, data, tc, key=getkey(), progress=False)
    start, end = kl(model.with_base(data)), kl(result.model)
    assert start > 1.0 and end < start / 5, (start, end)
    assert "sampler_accept_prob" in result.history[-1]
    assert result.state.buffer.shape == (256, d, k)
    np.testing.assert_array_equal(result.model.base_logits, categorical_data_logits(data, k))  # frozen base

    path = zoo.save(result.model, tmp_path / "cat", ema=result.ema)
    loaded = zoo.load(path, weights="raw")
    x = jax.nn.one_hot(jnp.asarray(states), k)
    np.testing.assert_array_equal(jax.vmap(loaded.log_prob)(x), jax.vmap(result.model.log_prob)(x))
    s = loaded.sample(7, key=getkey())
    assert s.shape == (7, d, k) and np.all(np.asarray(s).sum(-1) == 1)


@pytest.mark.parametrize("family", ["categorical", "rbm"])
def test_evaluate_checks_the_data_before_running_ais(family, getkey, monkeypatch):
    """Data of the wrong size fails at once with a DataError, not after an AIS run."""
    if family == "categorical":
        model = CategoricalEBMConfig(num_positions=4, num_values=3, image_shape=None, hidden=4).build(key=getkey())
    else:
        model = RBMConfig(visible=4, hidden=2, image_shape=None).build(key=getkey())

    def no_ais(self, **kwargs):
        raise AssertionError("AIS ran before the data were checked")

    monkeypatch.setattr(type(model), "ais", no_ais)
    with pytest.raises(zoo.DataError):
        model.evaluate(np.zeros((3, 5), np.float32), key=getkey())
    with pytest.raises(AssertionError, match="AIS ran"):  # good data reaches AIS (the patch above)
        model.evaluate(np.zeros((3, 4), np.float32), key=getkey())
