"""`zoo.batch_map`: the one padded, jitted map over a data set's leading axis."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo


TRACES: list[int] = []


def _rows(batch):
    """A per-example function of a pytree batch, vmapped; counts its traces."""
    TRACES.append(batch["x"].shape[0])
    out = jax.vmap(lambda x, y: (jnp.sum(x**2) + y, 2 * x))(batch["x"], batch["y"])
    return {"norm": out[0], "double": out[1]}


def _data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, 3)).astype(np.float32), "y": np.arange(n, dtype=np.float32)}


def test_pytree_result_is_independent_of_the_batch_size_and_drops_the_padding():
    data = _data(10)
    expected = {"norm": np.sum(data["x"] ** 2, axis=1) + data["y"], "double": 2 * data["x"]}
    for batch_size in (1, 3, 4, 10, 16):  # 16 > n: one batch, mostly padding
        out = zoo.batch_map(_rows, data, batch_size=batch_size)
        assert out["norm"].shape == (10,) and out["double"].shape == (10, 3)
        assert isinstance(out["norm"], np.ndarray)
        np.testing.assert_allclose(out["norm"], expected["norm"], rtol=1e-6)
        np.testing.assert_allclose(out["double"], expected["double"], rtol=1e-6)


def test_compiles_once_per_batch_size():
    TRACES.clear()
    zoo.batch_map(_rows, _data(11), batch_size=5, progress=True)  # 3 batches, the last padded
    zoo.batch_map(_rows, _data(7), batch_size=5, progress="rows")  # another set, same batch shape
    assert TRACES == [5]  # (batch size 5 is used by no other test)


class _Affine(eqx.Module):
    weight: jax.Array

    def __call__(self, x):
        return x @ self.weight


def test_a_module_is_traced_not_baked_in():
    x = _data(5)["x"]
    a, b = _Affine(jnp.eye(3)), _Affine(2 * jnp.eye(3))
    np.testing.assert_allclose(zoo.batch_map(a, x, batch_size=2), x, rtol=1e-6)
    np.testing.assert_allclose(zoo.batch_map(b, x, batch_size=2), 2 * x, rtol=1e-6)


def _uniform_rows(batch, *, key):
    return jax.random.uniform(key, (batch.shape[0],)) + 0 * batch


def test_per_batch_keys_are_fold_in_of_the_batch_index():
    x = np.zeros(7, np.float32)
    key = jax.random.key(3)
    out = zoo.batch_map(_uniform_rows, x, batch_size=3, key=key)
    expected = np.concatenate([np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (3,))) for i in range(3)])
    np.testing.assert_array_equal(out, expected[:7])
    np.testing.assert_array_equal(zoo.batch_map(_uniform_rows, x, batch_size=3, key=key), out)  # deterministic
    other = zoo.batch_map(_uniform_rows, x, batch_size=3, key=jax.random.key(4))
    assert not np.any(other == out)


def test_empty_input_and_errors():
    empty = zoo.batch_map(_rows, _data(0), batch_size=4)
    assert empty["norm"].shape == (0,) and empty["double"].shape == (0, 3) and empty["double"].dtype == np.float32
    with pytest.raises(ValueError, match="share a leading axis"):
        zoo.batch_map(_rows, {"x": np.zeros((3, 3)), "y": np.zeros(4)}, batch_size=2)
    with pytest.raises(ValueError, match="positive integer"):
        zoo.batch_map(_rows, _data(3), batch_size=0)
    with pytest.raises(ValueError, match="one row per example"):
        zoo.batch_map(lambda b: jnp.sum(b), np.zeros((5, 2), np.float32), batch_size=2)
    with pytest.raises(ValueError, match="at least one array"):
        zoo.batch_map(_rows, {}, batch_size=2)
