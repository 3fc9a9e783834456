"""Annealed Langevin dynamics with exact scores of Gaussians and Gaussian mixtures."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import samplers
from zoo.ncsn import geometric_sigmas


def _gmm_score(weights, means, stds, sigmas):
    """Exact noise-conditional score of sum_k w_k N(mu_k, s_k^2 I) convolved with N(0, sigma_i^2 I)."""
    w, mu, sd = jnp.asarray(weights), jnp.asarray(means), jnp.asarray(stds)
    sig = jnp.asarray(sigmas)

    def score(x, i):
        var = sd**2 + sig[i] ** 2  # (K,)
        d = x.shape[0]
        diff = x[None, :] - mu  # (K, d)
        logp = jnp.log(w) - 0.5 * jnp.sum(diff**2, axis=1) / var - 0.5 * d * jnp.log(var)
        r = jax.nn.softmax(logp)
        return jnp.sum(r[:, None] * (-diff / var[:, None]), axis=0)

    return score


@pytest.mark.parametrize("dim", [1, 2])
def test_recovers_mixture_weights_and_variances(dim, getkey, optimised):
    weights = np.array([0.3, 0.7])
    means = np.array([[-4.0] * dim, [4.0] * dim])
    stds = np.array([0.5, 1.0])
    sigmas = geometric_sigmas(10.0, 0.05, 10)
    sampler = samplers.AnnealedLangevin.v1(sigmas, steps_per_level=100, step_lr=2e-3)
    n = 3000
    x0 = jax.random.uniform(getkey(), (n, dim), minval=-1.0, maxval=1.0)
    score = _gmm_score(weights, means, stds, sigmas)
    run = lambda x, k: samplers.run(sampler, score, x, key=k, num_steps=sampler.num_steps, batched=True).final
    out = jax.jit(run, compiler_options=optimised)(x0, getkey())
    x = np.asarray(out)
    right = x[:, 0] > 0
    # Weights: binomial standard error sqrt(0.21 / 3000) = 0.008.
    assert abs(right.mean() - 0.7) < 0.04
    # Variances of each component of p_{sigma_L}: s_k^2 + sigma_L^2 (+ a small ULA bias).
    for k, sel in enumerate([~right, right]):
        want = stds[k] ** 2 + sigmas[-1] ** 2
        got = x[sel].var(axis=0)
        np.testing.assert_allclose(got, want, rtol=0.12)
        np.testing.assert_allclose(x[sel].mean(axis=0), means[k], atol=0.1)


def test_wrong_annealing_fails_to_find_weights(getkey):
    """Started in one mode at a tiny noise level (no annealing), the chain keeps its start:
    the weight check above can fail."""
    weights, means, stds = np.array([0.3, 0.7]), np.array([[-4.0], [4.0]]), np.array([0.5, 1.0])
    sigmas = np.array([0.05, 0.05], np.float32)
    sampler = samplers.AnnealedLangevin(tuple(map(float, sigmas)), 200, 2e-3, False)
    x0 = -4.0 + jnp.zeros((500, 1))
    out = samplers.run(sampler, _gmm_score(weights, means, stds, sigmas), x0, key=getkey(),
                       num_steps=sampler.num_steps, batched=True).final
    assert float(jnp.mean(out[:, 0] > 0)) < 0.1


def test_step_schedule_and_denoising(getkey, optimised):
    """On N(0, 1) data: without denoising the output variance is 1 + sigma_L^2; the final
    Tweedie step x + sigma_L^2 s(x) shrinks it to 1 / (1 + sigma_L^2)."""
    sigmas = np.array([2.0, 1.0, 0.5], np.float32)

    def score(x, i):
        return -x / (1.0 + jnp.asarray(sigmas)[i] ** 2)

    x0 = jax.random.normal(getkey(), (8000, 1))
    for denoise, want in [(False, 1.25), (True, 1.0 / 1.25)]:
        s = samplers.AnnealedLangevin.v1(sigmas, steps_per_level=200, step_lr=0.02, denoise=denoise)
        assert s.num_steps == 600 + int(denoise)
        out = samplers.run(
            s, score, x0, key=getkey(), num_steps=s.num_steps, batched=True, compiler_options=optimised
        ).final
        np.testing.assert_allclose(float(out.var()), want, rtol=0.06)


def test_snapshots(getkey):
    sigmas = geometric_sigmas(1.0, 0.1, 4)
    s = samplers.AnnealedLangevin.v1(sigmas, steps_per_level=5, step_lr=1e-3, denoise=True)
    out = samplers.run(s, lambda x, i: -x, jnp.zeros((3, 2)), key=getkey(), num_steps=s.num_steps - 1,
                       thin=5, save=True, batched=True)
    assert out.samples.shape == (4, 3, 2)


def test_inpainting_gaussian_conditional(getkey, optimised):
    """2-D Gaussian with correlation 0.8, coordinate 0 observed at 1.0: coordinate 1 follows
    the conditional of the (slightly noised) joint."""
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    sigmas = geometric_sigmas(3.0, 0.05, 10)
    prec = jnp.asarray(np.stack([np.linalg.inv(cov + s**2 * np.eye(2)) for s in sigmas]), jnp.float32)

    def score(x, i):
        return -prec[i] @ x

    n = 4000
    observed = jnp.tile(jnp.array([1.0, 0.0]), (n, 1))
    mask = jnp.tile(jnp.array([1.0, 0.0]), (n, 1))
    x0 = jax.random.uniform(getkey(), (n, 2))
    s = samplers.AnnealedLangevinInpainting.v1(sigmas, steps_per_level=100, step_lr=5e-4, denoise=False)
    img, obs, m = samplers.run(
        s, score, (x0, observed, mask), key=getkey(), num_steps=s.num_steps, batched=True, compiler_options=optimised
    ).final
    np.testing.assert_allclose(np.asarray(img[:, 0]), 1.0, atol=0.3)  # sigma_L-noised observation
    c = cov + sigmas[-1] ** 2 * np.eye(2)
    mean = c[1, 0] / c[0, 0] * 1.0
    var = c[1, 1] - c[1, 0] ** 2 / c[0, 0]
    assert abs(float(img[:, 1].mean()) - mean) < 0.05
    np.testing.assert_allclose(float(img[:, 1].var()), var, rtol=0.15)


def test_v2_step_size_rule():
    # NCSNv2 CIFAR-10: sigma 50 -> 0.01 in 232 levels, T = 5; the paper uses eps = 6.2e-6.
    gamma = (50 / 0.01) ** (1 / 231)
    eps = samplers.v2_step_size(gamma, 0.01, 5)
    assert 5e-6 < eps < 7.5e-6

    def value(e):
        s2 = 1e-4
        r = 1 - e / s2
        c = 2 * e / (s2 - s2 * r * r)
        return abs(r**10 * (gamma**2 - c) + c - 1.0)

    # Technique 4 picks the eps whose value is closest to 1 (it does not reach 1 here).
    assert value(eps) < min(value(0.9 * eps), value(1.1 * eps), value(1e-9))


def test_bad_ladder_rejected():
    with pytest.raises(ValueError, match="non-increasing"):
        samplers.AnnealedLangevin((0.1, 1.0), 10, 1e-3, False)
