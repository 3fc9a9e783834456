import jax
import jax.numpy as jnp
import numpy as np

from zoo._distances import sq_distances


def test_sq_distances_match_brute_force():
    x = jax.random.normal(jax.random.key(0), (7, 5), jnp.float32)
    y = jax.random.normal(jax.random.key(1), (4, 5), jnp.float32)
    brute = np.sum((np.asarray(x)[:, None] - np.asarray(y)[None]) ** 2, axis=-1)
    np.testing.assert_allclose(np.asarray(sq_distances(x, y)), brute, rtol=1e-5, atol=1e-5)
    within = np.sum((np.asarray(x)[:, None] - np.asarray(x)[None]) ** 2, axis=-1)
    np.testing.assert_allclose(np.asarray(sq_distances(x)), within, rtol=1e-5, atol=1e-5)


def test_self_distances_have_an_exact_zero_diagonal_and_are_never_negative():
    # Large, nearly equal points: |x|^2 + |x|^2 - 2 x.x leaves rounding residue in float32.
    x = 1e3 + jax.random.normal(jax.random.key(2), (64, 16), jnp.float32) * 1e-3
    d = np.asarray(sq_distances(x))
    assert np.all(np.diag(d) == 0.0)
    assert np.all(d >= 0.0)
    np.testing.assert_array_equal(d, d.T)
    # y=x is the official kscore form: the same matrix off the diagonal, its residue kept on it.
    d_xy = np.asarray(sq_distances(x, x))
    off = ~np.eye(64, dtype=bool)
    np.testing.assert_array_equal(d[off], d_xy[off])
    assert np.all(d_xy >= 0.0)
