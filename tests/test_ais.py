"""AIS and RAISE with GWG transitions against exactly enumerated log-partition functions and likelihoods."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import DataError, samplers
from zoo.ebm import (
    AnnealedTarget,
    RBMTarget,
    ais,
    ais_log_likelihood,
    bootstrap_std,
    raise_log_likelihood,
    raise_log_prob,
    rbm_log_z_exact,
    rbm_path_ais,
    rbm_path_raise_log_prob,
)


def _tiny_rbm(key, d=5, h=3, scale=1.0):
    k1, k2, k3 = jax.random.split(key, 3)
    return RBMTarget(scale * jax.random.normal(k1, (d, h)), scale * jax.random.normal(k2, (d,)),
                     scale * jax.random.normal(k3, (h,)))


def test_ais_matches_exact_log_z_tiny_rbm(getkey):
    rbm = _tiny_rbm(getkey())
    exact = float(rbm_log_z_exact(rbm))
    base = jnp.zeros(5)
    res = jax.jit(lambda k: ais(rbm, base, num_steps=300, num_chains=500, key=k))(getkey())
    se = bootstrap_std(np.asarray(res.log_weights))
    assert abs(float(res.log_z) - exact) < 4 * se + 0.02, (float(res.log_z), exact, se)
    assert se < 0.05


def test_ais_on_a_callable_and_log_likelihood(getkey):
    """AIS on a plain callable (gradients by autodiff), and the log-likelihood bookkeeping:
    mean log p(x) = mean f(x) - log Z."""
    rbm = _tiny_rbm(getkey(), d=4, h=2)
    exact = float(rbm_log_z_exact(rbm))
    base = jnp.asarray([0.5, -0.5, 0.0, 1.0])
    data = jnp.asarray([[1.0, 0, 1, 1], [0, 0, 1, 0]])
    out = ais_log_likelihood(lambda x: rbm(x), base, data, rbm, num_steps=100, num_chains=400, key=getkey(),
                             sampler=samplers.GWG())
    assert abs(out["log_z"] - exact) < 4 * out["log_z_bootstrap_std"] + 0.02
    true_ll = float(jnp.mean(jax.vmap(rbm)(data))) - exact
    assert abs(out["log_likelihood"] - true_ll) < 4 * out["log_z_bootstrap_std"] + 0.02
    assert out["log_w_std"] >= 0


def test_ais_with_too_few_steps_is_biased_low(getkey):
    """Sanity check that the test above can fail: with one transition and few chains the
    estimate is noticeably off (AIS underestimates log Z)."""
    rbm = _tiny_rbm(getkey(), scale=2.0)
    exact = float(rbm_log_z_exact(rbm))
    res = ais(rbm, jnp.zeros(5), num_steps=1, num_chains=5, key=getkey())
    assert abs(float(res.log_z) - exact) > 0.02


# --- exact log Z by enumerating either layer ------------------------------------------------------------------------


def _states(d):
    return ((np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1).astype(np.float32)


def _log_z_float64(rbm):
    w, b, c = (np.asarray(a, np.float64) for a in (rbm.W, rbm.b, rbm.c))
    xs = _states(w.shape[0]).astype(np.float64)
    f = xs @ b + np.logaddexp(0.0, xs @ w + c[None, :]).sum(1)
    return float(f.max() + np.log(np.exp(f - f.max()).sum()))


def test_exact_log_z_over_visible_and_hidden_agree(getkey):
    rbm = _tiny_rbm(getkey(), d=10, h=7)
    ref = _log_z_float64(rbm)
    v = float(rbm_log_z_exact(rbm, over="visible"))
    h = float(rbm_log_z_exact(rbm, over="hidden"))
    h_chunked = float(rbm_log_z_exact(rbm, over="hidden", chunk_size=6))  # 4 states a chunk, 32 chunks
    assert abs(v - h) < 1e-5 and abs(h - h_chunked) < 1e-5, (v, h, h_chunked)
    assert abs(h - ref) < 1e-5, (h, ref)
    assert float(rbm_log_z_exact(rbm)) == h  # auto: the smaller (hidden) layer


def test_exact_log_z_enumerates_the_smaller_layer_or_says_why_not(getkey):
    wide = _tiny_rbm(getkey(), d=40, h=3)  # 2^40 visible states, 2^3 hidden ones
    assert np.isfinite(float(rbm_log_z_exact(wide)))
    with pytest.raises(ValueError, match="over='auto'"):
        rbm_log_z_exact(wide, over="visible")
    with pytest.raises(ValueError, match="zoo.ebm.ais"):
        rbm_log_z_exact(_tiny_rbm(getkey(), d=21, h=22))
    with pytest.raises(ValueError, match="over must be"):
        rbm_log_z_exact(wide, over="both")  # pyright: ignore[reportArgumentType]


@pytest.mark.slow  # the RBM-path version below checks the same exact log Z in CI
def test_ais_matches_exact_in_h_log_z_784x12():
    """AIS with GWG on an MNIST-sized RBM (784 x 12, weights of rbm-mnist's scale: std 0.2;
    visible biases like its data-mean logits) against log Z summed exactly over 2^12 hidden states."""
    k = jax.random.split(jax.random.key(2), 4)
    b = -2.8 + 1.7 * jax.random.normal(k[0], (784,))
    rbm = RBMTarget(0.2 * jax.random.normal(k[1], (784, 12)), b, 0.85 * jax.random.normal(k[2], (12,)))
    exact = float(rbm_log_z_exact(rbm))
    res = ais(rbm, b, num_steps=2000, num_chains=200, key=k[3])
    se = bootstrap_std(np.asarray(res.log_weights))
    assert se < 0.4
    assert abs(float(res.log_z) - exact) < 3 * se + 0.05, (float(res.log_z), exact, se)


def test_rbm_path_ais_matches_exact_log_z(getkey):
    """AIS along the RBM's own path (annealed block Gibbs; with a rest term, block-Gibbs-proposal
    MH) against exact enumeration: the 784 x 12 RBM above (over h) in 200 temperatures, where the
    geometric GWG path needs 2000, and a tiny RBM times a quadratic (over x)."""
    k = jax.random.split(jax.random.key(2), 4)
    b = -2.8 + 1.7 * jax.random.normal(k[0], (784,))
    rbm = RBMTarget(0.2 * jax.random.normal(k[1], (784, 12)), b, 0.85 * jax.random.normal(k[2], (12,)))
    exact = float(rbm_log_z_exact(rbm))
    res = rbm_path_ais(rbm, b, num_steps=200, num_chains=200, key=getkey())
    se = bootstrap_std(np.asarray(res.log_weights))
    assert se < 0.1 and abs(float(res.log_z) - exact) < 3 * se + 0.05, (float(res.log_z), exact, se)

    small = _tiny_rbm(getkey(), d=6, h=3)
    a = jax.random.normal(getkey(), (6, 6))
    rest = lambda x: 0.3 * x @ (a + a.T) @ x  # noqa: E731
    xs = jnp.asarray(_states(6))
    exact = float(jax.scipy.special.logsumexp(jax.vmap(lambda x: small(x) + rest(x))(xs)))
    base = jnp.full((6,), -0.5)
    res = rbm_path_ais(small, base, rest=rest, num_steps=300, num_chains=500, key=getkey())
    se = bootstrap_std(np.asarray(res.log_weights))
    assert se < 0.05 and abs(float(res.log_z) - exact) < 4 * se + 0.02, (float(res.log_z), exact, se)
    # without the rest term it estimates the RBM's own log Z, which differs: the test can tell
    assert abs(float(rbm_log_z_exact(small)) - exact) > 10 * se + 0.1
    with pytest.raises(ValueError, match="num_steps >= 1"):
        rbm_path_ais(small, base, num_steps=0, num_chains=3, key=getkey())


@pytest.mark.slow
def test_rbm_path_ais_with_any_sampler(getkey):
    """The generic RBM path (any sampler, here the cycle of factor block-Gibbs MH and GWG) agrees with
    enumeration for a tiny RBM times a quadratic."""
    small = _tiny_rbm(getkey(), d=6, h=3)
    a = jax.random.normal(getkey(), (6, 6))
    rest = lambda x: 0.3 * x @ (a + a.T) @ x  # noqa: E731
    exact = float(jax.scipy.special.logsumexp(jax.vmap(lambda x: small(x) + rest(x))(jnp.asarray(_states(6)))))
    cyc = samplers.Cycle((samplers.FactorBlockGibbsMH(), samplers.GWG()), (1, 1))
    res = rbm_path_ais(small, jnp.full((6,), -0.5), rest=rest, num_steps=300, num_chains=500, key=getkey(),
                       sampler=cyc)
    se = bootstrap_std(np.asarray(res.log_weights))
    assert abs(float(res.log_z) - exact) < 4 * se + 0.02, (float(res.log_z), exact, se)


def test_rbm_path_raise_and_ais_sandwich_the_exact_log_likelihood(getkey):
    """RAISE along the RBM path on examples drawn from the exact model (a tiny RBM times a
    quadratic): below the exact mean log-likelihood at few temperatures, within 0.05 nats at many;
    the AIS estimate above it within noise."""
    small = _tiny_rbm(getkey(), d=6, h=3)
    a = jax.random.normal(getkey(), (6, 6))
    rest = lambda x: 0.3 * x @ (a + a.T) @ x  # noqa: E731
    xs = jnp.asarray(_states(6))
    logp = jax.vmap(lambda x: small(x) + rest(x))(xs)
    log_z = jax.scipy.special.logsumexp(logp)
    data = xs[jax.random.categorical(getkey(), logp, shape=(300,))]
    exact = float(jnp.mean(jax.vmap(lambda x: small(x) + rest(x))(data)) - log_z)
    base = jnp.full((6,), -0.5)
    loose = rbm_path_raise_log_prob(small, base, data, rest=rest, num_steps=2, key=getkey())
    tight = rbm_path_raise_log_prob(small, base, data, rest=rest, num_steps=300, num_chains_per_example=4,
                                    key=getkey())
    se = float(np.std(loose) / np.sqrt(len(loose)))
    assert float(np.mean(loose)) < exact - 0.1 - 3 * se, (float(np.mean(loose)), exact)
    assert abs(float(np.mean(tight)) - exact) < 0.05, (float(np.mean(tight)), exact)
    res = rbm_path_ais(small, base, rest=rest, num_steps=300, num_chains=300, key=getkey())
    assert float(jnp.mean(jax.vmap(lambda x: small(x) + rest(x))(data)) - res.log_z) > exact - 0.05
    with pytest.raises(DataError, match="shape"):
        rbm_path_raise_log_prob(small, base, data[:, :5], num_steps=2, key=getkey())


# --- RAISE -----------------------------------------------------------------------------------------------------------


def _gwg_transition_matrix(target, d):
    """The exact single-flip GWG Metropolis-Hastings transition matrix on {0,1}^d (states in
    `_states` order: index = sum_i x_i 2^i)."""
    sampler = samplers.GWG()

    def flip_probs(x):
        state = sampler.init(target, x)

        def one(i):
            log_alpha, _, _ = sampler.propose(target, x, state, jnp.reshape(i, (1,)))
            return jnp.exp(state.log_q[i] + jnp.minimum(log_alpha, 0.0))

        return jax.vmap(one)(jnp.arange(d))

    p = np.asarray(jax.jit(jax.vmap(flip_probs))(jnp.asarray(_states(d))), np.float64)
    s = np.arange(2**d)
    t = np.zeros((2**d, 2**d))
    for i in range(d):
        t[s, s ^ (1 << i)] = p[:, i]
    t[s, s] = 1.0 - p.sum(1)
    return t


def test_raise_is_unbiased_for_the_annealed_marginal(getkey):
    """E[p_hat(x)] = p_ann(x) = (p0 T_1 ... T_K)(x), the forward annealing marginal, with the
    GWG kernels' transition matrices computed exactly; each T_k is reversible w.r.t. f_k."""
    d, num_steps, reps = 5, 2, 20000
    rbm = _tiny_rbm(getkey(), d=d, h=3)
    base = jnp.asarray([0.5, -0.5, 0.0, 1.0, -1.0])
    xs = _states(d)
    log_p0 = xs @ np.asarray(base, np.float64) - np.logaddexp(0.0, np.asarray(base, np.float64)).sum()
    f = np.asarray(jax.vmap(rbm)(jnp.asarray(xs)), np.float64)
    p_ann = np.exp(log_p0)
    for beta in np.linspace(0.0, 1.0, num_steps + 1)[1:]:
        t = _gwg_transition_matrix(AnnealedTarget(base, rbm, jnp.float32(beta)), d)
        flow = np.exp((1 - beta) * log_p0 + beta * f)[:, None] * t  # detailed balance: symmetric
        np.testing.assert_allclose(flow, flow.T, rtol=1e-4, atol=1e-12)
        p_ann = p_ann @ t
    idx = np.asarray([0, 11, 31])
    log_p = raise_log_prob(rbm, base, np.repeat(xs[idx], reps, axis=0), num_steps=num_steps, key=getkey())
    p_hat = np.exp(log_p.astype(np.float64)).reshape(len(idx), reps)
    mean, se = p_hat.mean(1), p_hat.std(1) / np.sqrt(reps)
    assert np.all(np.abs(mean - p_ann[idx]) < 4 * se), (mean, p_ann[idx], se)
    # ... which is not the model's p(x) after so few steps: the check tells the two apart.
    p = np.exp(f - _log_z_float64(rbm))
    assert np.any(np.abs(mean - p[idx]) > 10 * se), (mean, p[idx], se)


def test_raise_and_ais_sandwich_the_exact_log_likelihood():
    """On test data drawn from an enumerable model (so that E log p_ann <= E log p, Gibbs'
    inequality): RAISE <= exact (up to noise), clearly below with 3 temperatures and within
    0.05 nats with 1000; forward AIS >= exact (up to noise) and within 0.05 nats."""
    d = 8
    rbm = _tiny_rbm(jax.random.key(7), d=d, h=4)
    xs = _states(d)
    log_z = _log_z_float64(rbm)
    log_p = np.asarray(jax.vmap(rbm)(jnp.asarray(xs)), np.float64) - log_z
    data = xs[np.asarray(jax.random.categorical(jax.random.key(1), jnp.asarray(log_p), shape=(200,)))]
    exact = np.asarray(jax.vmap(rbm)(jnp.asarray(data)), np.float64) - log_z
    base = jnp.zeros(d)
    gaps = {}
    for num_steps, chains in ((3, 1), (1000, 4)):
        lp = raise_log_prob(rbm, base, data, num_steps=num_steps, num_chains_per_example=chains,
                            key=jax.random.key(num_steps))
        diff = lp - exact  # paired: the data's spread cancels
        gaps[num_steps] = -float(diff.mean())
        assert diff.mean() < 3 * diff.std() / np.sqrt(len(diff)), (num_steps, diff.mean())
    assert gaps[3] > 0.5  # conservative, and clearly so with 3 temperatures ...
    assert abs(gaps[1000]) < 0.05, gaps  # ... and close to exact with 1000
    out = ais_log_likelihood(rbm, base, data, rbm, num_steps=1000, num_chains=500, key=jax.random.key(0))
    assert out["log_likelihood"] > exact.mean() - 3 * out["log_z_bootstrap_std"] - 1e-4, out
    assert abs(out["log_likelihood"] - exact.mean()) < 0.05, out


def test_raise_log_likelihood_on_a_callable_and_bad_input(getkey):
    rbm = _tiny_rbm(getkey(), d=4, h=2)
    data = jnp.asarray([[1.0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]])
    exact = float(jnp.mean(jax.vmap(rbm)(data))) - float(rbm_log_z_exact(rbm))
    out = raise_log_likelihood(lambda x: rbm(x), jnp.zeros(4), data, num_steps=200, num_chains_per_example=8,
                               key=getkey(), batch_size=16)  # 2 examples a batch: the last one padded
    assert set(out) == {"log_likelihood", "log_likelihood_std_error", "num_steps", "num_chains_per_example",
                        "num_examples"}
    assert out["num_examples"] == 3 and out["log_likelihood_std_error"] > 0
    assert abs(out["log_likelihood"] - exact) < 0.1, (out, exact)
    with pytest.raises(DataError, match=r"shape \(N, 4\)"):
        raise_log_likelihood(rbm, jnp.zeros(4), data[:, :3], num_steps=2, key=getkey())
    with pytest.raises(DataError, match="binary"):
        raise_log_likelihood(rbm, jnp.zeros(4), 0.5 * data, num_steps=2, key=getkey())
    with pytest.raises(ValueError, match="num_steps"):
        raise_log_likelihood(rbm, jnp.zeros(4), data, num_steps=0, key=getkey())
