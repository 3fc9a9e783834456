"""Stein variational gradient descent (zoo.samplers.SVGD): updates equal an independent numpy
implementation of Liu & Wang's algorithm, bandwidth handling, and convergence on a Gaussian target."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import samplers, stein


def _numpy_svgd(x, score, steps, step_size, bandwidth=None, adagrad=True, alpha=0.9, fudge=1e-6):
    """Liu & Wang's svgd.py, rewritten in numpy float64: median-rule RBF kernel, AdaGrad with momentum."""
    x = np.array(x, np.float64)
    hist = 0.0
    for it in range(steps):
        g = score(x)
        d2 = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
        if bandwidth is None:
            h = np.sqrt(0.5 * np.median(d2) / np.log(x.shape[0] + 1))
        else:
            h = bandwidth
        k = np.exp(-d2 / h**2 / 2)
        dk = -k @ x + x * k.sum(axis=1, keepdims=True)
        phi = (k @ g + dk / h**2) / x.shape[0]
        if adagrad:
            hist = phi**2 if it == 0 else alpha * hist + (1 - alpha) * phi**2
            x = x + step_size * phi / (fudge + np.sqrt(hist))
        else:
            x = x + step_size * phi
    return x


MU = np.array([1.0, -2.0])
COV = np.array([[1.0, 0.6], [0.6, 0.8]])
PREC = np.linalg.inv(COV)


def _score(v):
    return -(v - jnp.asarray(MU, v.dtype)) @ jnp.asarray(PREC, v.dtype)


def _np_score(x):
    return -(x - MU) @ PREC


@pytest.mark.parametrize("bandwidth,adagrad", [(None, True), (0.7, True), (None, False)])
def test_updates_match_numpy(getkey, bandwidth, adagrad):
    x0 = jax.random.normal(getkey(), (30, 2)) * 2.0
    sampler = samplers.SVGD(step_size=0.05, bandwidth=bandwidth, adagrad=adagrad)
    res = samplers.run(sampler, _score, x0, num_steps=3, save=True, key=getkey())
    for t in range(3):  # the first AdaGrad step and the momentum steps after it
        want = _numpy_svgd(x0, _np_score, t + 1, 0.05, bandwidth, adagrad)
        np.testing.assert_allclose(np.asarray(res.samples[t]), want, rtol=1e-4, atol=1e-5)


def test_bandwidth_handling(getkey):
    x = jax.random.normal(getkey(), (25, 3))
    xn = np.asarray(x, np.float64)
    d2 = np.sum((xn[:, None] - xn[None]) ** 2, axis=-1)
    np.testing.assert_allclose(float(samplers.svgd_bandwidth(x)), np.sqrt(0.5 * np.median(d2) / np.log(26)), rtol=1e-5)
    # the median rule adapts to the scale of the particles; a given bandwidth is used as is
    np.testing.assert_allclose(float(samplers.svgd_bandwidth(3 * x)), 3 * float(samplers.svgd_bandwidth(x)), rtol=1e-5)
    _, h = samplers.SVGD(bandwidth=0.3).direction(x, -x)
    assert float(h) == pytest.approx(0.3)
    # The bandwidth matters: a tiny one leaves only each particle's own score (k -> I, no repulsion).
    phi, _ = samplers.SVGD(bandwidth=1e-3).direction(x, -x)
    np.testing.assert_allclose(np.asarray(phi), -np.asarray(x) / 25, rtol=1e-5, atol=1e-7)
    # coincident particles: the median is 0 and the rule falls back to 1 (no division by zero)
    same = jnp.ones((5, 2))
    assert float(samplers.svgd_bandwidth(same)) == 1.0
    phi, _ = samplers.SVGD().direction(same, -same)
    assert np.all(np.isfinite(np.asarray(phi)))


def test_log_density_target_and_image_shaped_particles(getkey):
    """A log-density gives the updates of its score; particles of shape (n, h, w) move as flattened ones."""
    x0 = jax.random.normal(getkey(), (20, 2))
    log_p = lambda v: 0.5 * (v - jnp.asarray(MU, v.dtype)) @ _score(v)
    a = samplers.run(samplers.SVGD(step_size=0.1), _score, x0, num_steps=4, key=getkey()).final
    b = samplers.run(samplers.SVGD(step_size=0.1), log_p, x0, num_steps=4, key=getkey()).final
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    img = jax.random.normal(getkey(), (10, 2, 3))
    flat = samplers.run(samplers.SVGD(step_size=0.1), lambda v: -v, img.reshape(10, 6), num_steps=2, key=getkey())
    shaped = samplers.run(samplers.SVGD(step_size=0.1), lambda v: -v, img, num_steps=2, key=getkey())
    np.testing.assert_allclose(np.asarray(shaped.final).reshape(10, 6), np.asarray(flat.final), rtol=1e-5, atol=1e-6)


def test_converges_on_a_gaussian(getkey, optimised):
    """200 particles from N(0, 9 I) reach the correlated Gaussian target: mean within 0.05, covariance
    within 0.1 (SVGD's finite-particle fixed point slightly under-disperses), and the KSD falls."""
    x0 = 3.0 * jax.random.normal(getkey(), (200, 2))
    run = lambda x, k: samplers.run(samplers.SVGD(step_size=0.05), _score, x, num_steps=600, thin=200, save=True, key=k)
    res = jax.jit(run, compiler_options=optimised)(x0, getkey())
    x = np.asarray(res.final)
    np.testing.assert_allclose(x.mean(0), MU, atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.1)
    trace = np.asarray(stein.ksd_trace(res, _score))
    assert float(stein.ksd(x0, _score, estimator="v")) > 20 * trace[-1]
    assert float(res.info["phi_norm"]) > 0


def test_bad_arguments(getkey):
    with pytest.raises(ValueError, match="step_size"):
        samplers.SVGD(step_size=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        samplers.SVGD(bandwidth=-1.0)
    with pytest.raises(ValueError, match="batched=False"):
        samplers.run(samplers.SVGD(), _score, jnp.zeros((5, 2)), num_steps=2, batched=True, key=getkey())
    assert samplers.SAMPLERS.get("svgd") is samplers.SVGD
