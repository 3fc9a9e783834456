"""Kernels and the median heuristic of zoo.kscore against autodiff and brute force."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo.kscore as ks


KERNELS = [ks.DiagonalGaussian(), ks.DiagonalIMQ(), ks.CurlFreeGaussian(), ks.CurlFreeIMQ()]


def _psi(kernel, x, y, sigma):
    return kernel.profile(jnp.sum((x - y) ** 2), sigma)[0]


def _k(kernel, x, y, sigma):
    """K(x, y) as a (d, d) matrix, from its definition by autodiff."""
    d = x.shape[0]
    if kernel.curl_free:
        return -jax.hessian(lambda a: _psi(kernel, a, y, sigma))(x)
    return _psi(kernel, x, y, sigma) * jnp.eye(d)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: type(k).__name__)
def test_operator_dense_and_zeta_match_autodiff(kernel, getkey):
    d = 3

    @jax.jit
    def both(x, y, c, sigma):
        blocks = jax.vmap(lambda a: jax.vmap(lambda b: _k(kernel, a, b, sigma))(y))(x)  # (5, 4, d, d)
        want = jnp.einsum("mnij,nj->mi", blocks, c)
        # zeta(x) = mean_n sum_j d K_ij(x, y) / d y_j at y = y_n
        div = jax.vmap(lambda a: jax.vmap(
            lambda b: jnp.trace(jax.jacfwd(lambda yy: _k(kernel, a, yy, sigma))(b), axis1=1, axis2=2)
        )(y))(x)
        dense = kernel.dense(x, y, sigma)
        got_dense = dense @ c.reshape(-1) if kernel.curl_free else (dense @ c).reshape(-1)
        return (want, div.mean(1), _k(kernel, x[0], x[0], sigma)), (
            kernel.apply(x, y, c, sigma), kernel.zeta(x, y, sigma), got_dense.reshape(want.shape),
            kernel.diag_value(sigma) * jnp.eye(d),
        )

    with jax.enable_x64(True):
        x = jax.random.normal(getkey(), (5, d), jnp.float64)
        y = jax.random.normal(getkey(), (4, d), jnp.float64)
        c = jax.random.normal(getkey(), (4, d), jnp.float64)
        (want, zeta, kxx), (applied, got_zeta, got_dense, diag) = both(x, y, c, jnp.asarray(1.3, jnp.float64))
        np.testing.assert_allclose(applied, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_dense, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_zeta, zeta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(diag, kxx, atol=1e-12)


@pytest.mark.parametrize("shape", [(7, 3), (40, 2), (1, 2)])
def test_median_heuristic_is_the_official_order_statistic(shape, getkey):
    x = np.asarray(jax.random.normal(getkey(), shape))
    y = np.asarray(jax.random.normal(getkey(), (5, shape[1])))
    for a, b in ((x, x), (x, y)):
        # kscore / SSGE: all n*m distances, the (n*m - n*m//2)-th in ascending order.
        dist = np.sqrt(np.sum((a[:, None] - b[None]) ** 2, -1)).ravel()
        want = np.sort(dist)[min(dist.size - dist.size // 2, dist.size - 1)]
        got = ks.median_heuristic(jnp.asarray(a), jnp.asarray(b))
        np.testing.assert_allclose(got, want, rtol=1e-5)
    jitted = float(jax.jit(ks.median_heuristic)(jnp.asarray(x)))
    assert jitted == pytest.approx(float(ks.median_heuristic(jnp.asarray(x))))


def test_fixed_bandwidth_and_scale(getkey):
    x = jax.random.normal(getkey(), (30, 2))
    assert float(ks.DiagonalIMQ(bandwidth=2.5).select_bandwidth(x)) == 2.5
    med = float(ks.median_heuristic(x))
    assert float(ks.CurlFreeIMQ(bandwidth_scale=1.5).select_bandwidth(x)) == pytest.approx(1.5 * med, rel=1e-6)
