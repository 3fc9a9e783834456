"""Denoising score matching: the exact score of Gaussian data minimises it, with the analytic value."""

import jax
import jax.numpy as jnp
import numpy as np

from zoo.ncsn import dsm_loss, dsm_terms, geometric_sigmas


def test_dsm_analytic_value_and_minimiser(getkey):
    """Data N(0, s^2 I_D). The noised data is N(0, (s^2 + sigma^2) I), whose score is
    -x / (s^2 + sigma^2); at it the sigma^2-weighted DSM equals 1/2 D s^2 / (s^2 + sigma^2).
    Any other score (here c times it) has a larger expected loss, by 1/2 sigma^2 E||s - s*||^2."""
    d, s2, n = 8, 0.5**2, 20000
    sigmas = jnp.asarray(geometric_sigmas(1.0, 0.1, 4))
    x = jnp.sqrt(s2) * jax.random.normal(getkey(), (n, d))
    labels = jnp.arange(n) % 4
    key = getkey()

    def scaled(c):
        return lambda xt, i: -c * xt / (s2 + sigmas[i] ** 2)

    exact = dsm_terms(scaled(1.0), x, labels, sigmas, key=key)
    per_level = np.array([float(exact[labels == i].mean()) for i in range(4)])
    want = 0.5 * d * s2 / (s2 + np.asarray(sigmas) ** 2)
    # per-level standard error ~ sqrt(Var/5000) with Var ~ D/2 * (..)^2: well below 3%.
    np.testing.assert_allclose(per_level, want, rtol=0.03)
    # Same noise (same key) for every candidate: the exact score has the lowest loss, and the
    # excess matches 1/2 sigma^2 (c-1)^2 E||x~||^2 / (s^2+sigma^2)^2 = 1/2 (c-1)^2 D sigma^2/(s^2+sigma^2).
    base = float(exact.mean())
    for c in (0.8, 0.95, 1.05, 1.25):
        other = float(dsm_terms(scaled(c), x, labels, sigmas, key=key).mean())
        excess = np.mean(0.5 * (c - 1) ** 2 * d * np.asarray(sigmas) ** 2 / (s2 + np.asarray(sigmas) ** 2))
        assert other > base
        np.testing.assert_allclose(other - base, excess, rtol=0.1)


def test_dsm_loss_draws_levels_uniformly(getkey):
    sigmas = jnp.asarray(geometric_sigmas(1.0, 0.01, 10))
    x = jnp.zeros((40000, 1))
    # With s = 0 the loss of a zero score is 1/2 ||z||^2 for every level: mean 1/2.
    val = dsm_loss(lambda xt, i: jnp.zeros_like(xt), x, sigmas, key=getkey())
    assert abs(float(val) - 0.5) < 0.02
    # A score equal to the level index reveals the level distribution: E[1/2 (sigma i + z)^2].
    val = dsm_loss(lambda xt, i: jnp.full_like(xt, i), x, sigmas, key=getkey())
    i = np.arange(10)
    want = np.mean(0.5 * (np.asarray(sigmas) ** 2 * i**2 + 1))
    assert abs(float(val) - want) < 0.05
