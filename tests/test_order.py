"""zoo._order: exact order statistics of non-negative floats by bisection on their bit patterns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo._order import kth_smallest, median


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_every_order_statistic_equals_the_sorted_entry(dtype):
    rng = np.random.default_rng(0)
    # Repeats, zeros (both signs), subnormals, huge values and +inf: every k of 61 entries.
    special = [0.0, -0.0, 0.0, np.finfo(dtype).tiny / 4, np.finfo(dtype).max, np.inf]
    v = np.concatenate([rng.exponential(size=40), special, rng.choice([0.5, 2.0], size=15)]).astype(dtype)
    with jax.enable_x64(dtype == np.float64):
        got = jax.jit(jax.vmap(kth_smallest, in_axes=(None, 0)))(jnp.asarray(v), jnp.arange(v.size))
        assert got.dtype == dtype
    np.testing.assert_array_equal(np.asarray(got), np.sort(v))


@pytest.mark.parametrize("n", [1, 2, 7, 400])
def test_median_is_numpys(n):
    x = np.random.default_rng(n).gamma(0.5, size=n).astype(np.float32)
    x[: n // 3] = x[0]  # ties across the middle
    assert float(median(jnp.asarray(x))) == np.float32(np.median(x))
    d2 = np.square(x[:, None] - x[None, :])  # a distance matrix: zero diagonal, symmetric ties
    assert float(jax.jit(median)(jnp.asarray(d2))) == pytest.approx(float(np.median(d2)), rel=1e-7, abs=0)


def test_vmap_over_rows_and_bad_dtype():
    a = jax.random.uniform(jax.random.key(0), (5, 33))
    np.testing.assert_array_equal(jax.vmap(median)(a), np.median(np.asarray(a), axis=1).astype(np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        kth_smallest(jnp.arange(4), 1)
