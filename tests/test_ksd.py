"""Kernel Stein discrepancies (zoo.stein): the Stein kernel against an independent numpy computation,
unbiasedness and closed form of the U-statistic, the wild-bootstrap test's level and power, the discrete
KSD by exact enumeration, and the convergence trace of a sampler run."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from zoo import samplers, stein
from zoo.ebm import lattice_ising


def _gaussian(d, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    cov = a @ a.T / d + 0.5 * np.eye(d)
    mu = rng.normal(size=d)
    prec = np.linalg.inv(cov)
    return mu, cov, prec


def _numpy_stein_matrix(x, score, kernel):
    """u_p(x_i, x_j) = s_i.s_j k + s_i.grad_y k + s_j.grad_x k + tr(grad_x grad_y k), with the kernel
    derivatives written out by hand, one pair at a time, in float64."""
    n, d = x.shape
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            r = x[i] - x[j]
            s = r @ r
            if kernel[0] == "imq":
                _, c, beta = kernel
                t = c * c + s
                k = t**beta
                gx = 2 * beta * t ** (beta - 1) * r  # grad_x k
                # d^2 k / dx dy^T = -2 beta t^(beta-1) I - 4 beta (beta-1) t^(beta-2) r r^T
                hxy = -2 * beta * t ** (beta - 1) * np.eye(d) - 4 * beta * (beta - 1) * t ** (beta - 2) * np.outer(r, r)
            else:
                _, h = kernel
                k = np.exp(-s / (2 * h * h))
                gx = -k * r / h**2
                hxy = k * np.eye(d) / h**2 - k * np.outer(r, r) / h**4
            gy = -gx
            out[i, j] = score[i] @ score[j] * k + score[i] @ gy + score[j] @ gx + np.trace(hxy)
    return out


@pytest.mark.parametrize(
    "kernel,np_kernel",
    [(stein.IMQ(), ("imq", 1.0, -0.5)), (stein.IMQ(bandwidth=1.7, beta=-0.3), ("imq", 1.7, -0.3)),
     (stein.RBF(bandwidth=0.8), ("rbf", 0.8))],
)
def test_stein_kernel_matches_numpy(getkey, kernel, np_kernel):
    d, n = 3, 12
    mu, _, prec = _gaussian(d)
    x = jax.random.normal(getkey(), (n, d)) * 1.3
    score = lambda v: -jnp.asarray(prec, v.dtype) @ (v - jnp.asarray(mu, v.dtype))
    xn = np.asarray(x, np.float64)
    want = _numpy_stein_matrix(xn, -(xn - mu) @ prec.T, np_kernel)
    got = np.asarray(stein.stein_kernel_matrix(x, score, kernel=kernel))
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * np.abs(want).max())


def test_estimators_match_numpy(getkey):
    d, n = 3, 12
    mu, _, prec = _gaussian(d)
    x = jax.random.normal(getkey(), (n, d)) * 1.3
    score = lambda v: -jnp.asarray(prec, v.dtype) @ (v - jnp.asarray(mu, v.dtype))
    xn = np.asarray(x, np.float64)
    kernel = stein.IMQ()
    want = _numpy_stein_matrix(xn, -(xn - mu) @ prec.T, ("imq", 1.0, -0.5))
    u = (want.sum() - np.trace(want)) / (n * (n - 1))
    v = want.sum() / n**2
    lin = np.mean([want[2 * i, 2 * i + 1] for i in range(n // 2)])
    atol = 1e-5 * np.abs(want).max()
    for est, val in (("u", u), ("v", v), ("linear", lin)):
        np.testing.assert_allclose(float(stein.ksd(x, score, kernel=kernel, estimator=est)), val, rtol=2e-4, atol=atol)
    # Blocks of rows give the same sums; a log-density and precomputed scores give the same scores.
    np.testing.assert_allclose(float(stein.ksd(x, score, kernel=kernel, chunk_size=5)), u, rtol=2e-4, atol=atol)
    log_p = lambda v: 0.5 * (v - jnp.asarray(mu, v.dtype)) @ score(v)
    np.testing.assert_allclose(float(stein.ksd(x, log_p, kernel=kernel)), u, rtol=2e-4, atol=atol)
    np.testing.assert_allclose(float(stein.ksd(x, jax.vmap(score)(x), kernel=kernel)), u, rtol=2e-4, atol=atol)


def test_u_statistic_is_unbiased_with_the_closed_form(getkey):
    """q = N(m, I), p = N(0, I): s_p - s_q = -m, so KSD^2 = ||m||^2 E k(x, y) = ||m||^2 (h^2/(h^2 + 2))^(d/2)
    for the RBF kernel of bandwidth h (x - y ~ N(0, 2I)). The U-statistic's mean over independent
    replicates matches it (and 0 under the model) within 4 standard errors."""
    d, n, reps, h = 2, 40, 400, 1.5
    kernel = stein.RBF(bandwidth=h)

    def replicate(k, shift):
        x = jax.random.normal(k, (n, d)) + shift[None, :]
        return stein.ksd(x, lambda v: -v, kernel=kernel)

    batch = jax.jit(jax.vmap(replicate, in_axes=(0, None)))
    for m in (np.zeros(d), np.array([0.4, -0.3])):
        u = np.asarray(batch(jax.random.split(getkey(), reps), jnp.asarray(m, jnp.float32)))
        want = m @ m * (h * h / (h * h + 2)) ** (d / 2)
        se = u.std(ddof=1) / np.sqrt(reps)
        assert abs(u.mean() - want) < 4 * se, (u.mean(), want, se)
    assert want > 8 * se  # the shifted case is clearly positive


def test_ksd_test_level_and_power(getkey):
    """Under the model the rejection rate at alpha = 0.05 lies in the 99.9% binomial interval; under a
    mean shift the power rises with n."""
    d, alpha = 2, 0.05

    def rejections(n, shift, reps, key):
        def one(k):
            k1, k2 = jax.random.split(k)
            x = jax.random.normal(k1, (n, d)) + shift
            return stein.ksd_test(x, lambda v: -v, num_bootstrap=200, key=k2).p_value <= alpha

        return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(key, reps)))

    reps = 400
    rate = rejections(60, 0.0, reps, getkey()).mean()
    lo, hi = stats.binom.ppf([0.0005, 0.9995], reps, alpha) / reps
    assert lo <= rate <= hi, (rate, lo, hi)
    power = [rejections(n, 0.35, 60, getkey()).mean() for n in (15, 120)]
    assert power[0] < 0.6 and power[1] > 0.9, power


def test_p_value_and_statistic_fields(getkey):
    x = jax.random.normal(getkey(), (50, 2))
    res = stein.ksd_test(x + 1.0, lambda v: -v, num_bootstrap=99, key=getkey())
    assert res.bootstrap.shape == (99,)
    assert float(res.p_value) == pytest.approx(0.01)  # the smallest p-value of 99 draws
    np.testing.assert_allclose(float(res.ksd), float(stein.ksd(x + 1.0, lambda v: -v, estimator="v")), rtol=1e-5)
    assert float(res.statistic) == pytest.approx(50 * float(res.ksd), rel=1e-6)
    # An autocorrelated sign process: W flips with probability 0.1 per step, each column a +-1 path.
    w = np.asarray(stein.wild_bootstrap_weights(400, 50, 0.1, key=getkey()))
    assert set(np.unique(w)) == {-1.0, 1.0}
    assert abs(np.mean(w[1:] != w[:-1]) - 0.1) < 0.02


def _enumerate(d, m):
    return jnp.asarray(list(itertools.product(range(m), repeat=d)), jnp.float32)


def test_discrete_ksd_is_zero_in_expectation_under_the_model():
    """By exact enumeration: E_{x ~ p} kappa_p(x, y) = 0 for every y (binary Ising and a categorical
    model), and E_{x, y ~ q} kappa_p(x, y) > 0 for q != p."""
    ising = lattice_ising(2, coupling=0.4, bias=0.2)  # 4 spins: an AbstractBinaryTarget
    x = _enumerate(4, 2)
    for model in (ising, lambda v: ising(v)):
        h = np.asarray(stein.discrete_stein_kernel_matrix(x, model), np.float64)
        logp = np.asarray(jax.vmap(ising)(x), np.float64)
        p = np.exp(logp - logp.max())
        p /= p.sum()
        np.testing.assert_allclose(p @ h, 0.0, atol=1e-5 * np.abs(h).max())
        q = np.full(16, 1 / 16)
        assert q @ h @ q > 0.05

    m, d = 3, 3
    theta = jax.random.normal(jax.random.key(0), (d, m))
    log_p = lambda v: jnp.sum(theta[jnp.arange(d), v.astype(jnp.int32)]) + 0.5 * v[0] * v[2] / m
    x = _enumerate(d, m)
    h = np.asarray(stein.discrete_stein_kernel_matrix(x, log_p, num_categories=m), np.float64)
    logp = np.asarray(jax.vmap(log_p)(x), np.float64)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    np.testing.assert_allclose(p @ h, 0.0, atol=1e-5 * np.abs(h).max())
    q = np.full(m**d, 1 / m**d)
    assert q @ h @ q > 0.05


def test_discrete_ksd_estimates_and_test(getkey):
    """Exact draws from an enumerable binary model: the U-statistic is ~0 (its mean within 4 SE of 0
    over replicates) and the test rejects draws from another model."""
    d = 6
    w = jax.random.normal(jax.random.key(1), (d, d)) * 0.4
    w = (w + w.T) / 2
    b = jax.random.normal(jax.random.key(2), (d,)) * 0.5
    log_p = lambda v: v @ w @ v + b @ v
    states = _enumerate(d, 2)
    logits = jax.vmap(log_p)(states)

    def draws(k, n, lg):
        return states[jax.random.categorical(k, lg, shape=(n,))]

    u = jax.jit(jax.vmap(lambda k: stein.discrete_ksd(draws(k, 40, logits), log_p)))(jax.random.split(getkey(), 200))
    u = np.asarray(u)
    assert abs(u.mean()) < 4 * u.std(ddof=1) / np.sqrt(len(u))
    off = draws(getkey(), 200, jnp.zeros_like(logits))  # uniform on {0,1}^6
    assert float(stein.discrete_ksd(off, log_p)) > 0
    assert float(stein.discrete_ksd_test(off, log_p, num_bootstrap=200, key=getkey()).p_value) < 0.01
    on = draws(getkey(), 200, logits)
    assert float(stein.discrete_ksd_test(on, log_p, num_bootstrap=200, key=getkey()).p_value) > 0.01
    # precomputed difference scores give the same value
    s = jax.vmap(lambda v: stein.difference_score(log_p, v))(off)
    np.testing.assert_allclose(float(stein.discrete_ksd(off, s)), float(stein.discrete_ksd(off, log_p)), rtol=1e-5)


def test_ksd_trace_of_a_langevin_run(getkey):
    """KSD across 64 Langevin chains started far from N(0, I) falls as they converge, and each entry is the
    KSD of that saved state."""
    x0 = jax.random.normal(getkey(), (64, 2)) * 0.3 + 3.0
    res = samplers.run(samplers.Langevin(0.05), lambda v: -v, x0, num_steps=100, thin=20, save=True,
                       batched=True, key=getkey())
    trace = np.asarray(stein.ksd_trace(res, lambda v: -v))
    assert trace.shape == (5,)
    assert trace[-1] < 0.1 * trace[0]
    np.testing.assert_allclose(trace[2], float(stein.ksd(res.samples[2], lambda v: -v, estimator="v")), rtol=1e-5)


def test_ksd_with_a_fitted_kscore_estimator(getkey):
    """The score may be a fitted nonparametric estimator (SSGE): samples of N(0, I) score ~0 against
    its estimate of their own score, and clearly positive against it when shifted."""
    from zoo import kscore

    x = jax.random.normal(getkey(), (300, 2))
    fitted = kscore.fit(kscore.SSGE(), x)
    near = float(stein.ksd(x[:150], fitted))
    far = float(stein.ksd(x[:150] + 1.0, fitted))
    assert abs(near) < 0.1 * far


def test_bad_inputs_have_clear_errors(getkey):
    x = jax.random.normal(getkey(), (10, 2))
    with pytest.raises(ValueError, match="estimator"):
        stein.ksd(x, lambda v: -v, estimator="w")
    with pytest.raises(ValueError, match="floating-point"):
        stein.ksd(jnp.ones((10, 2), jnp.int32), lambda v: -v)
    with pytest.raises(ValueError, match="must match"):
        stein.ksd(x, jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="score function"):
        stein.ksd(x, lambda v: jnp.zeros(3))
    with pytest.raises(TypeError, match="radial scalar kernel"):
        from zoo.kscore import CurlFreeIMQ

        stein.ksd(x, lambda v: -v, kernel=CurlFreeIMQ())
    with pytest.raises(ValueError, match="category indices"):
        stein.discrete_ksd(jnp.full((10, 3), 2.0), lambda v: jnp.sum(v))
    with pytest.raises(ValueError, match="save=True"):
        stein.ksd_trace(samplers.run(samplers.Langevin(0.1), lambda v: -v, x, num_steps=2, batched=True,
                                     key=getkey()), lambda v: -v)
    with pytest.raises(ValueError, match="beta"):
        stein.IMQ(beta=0.5)
