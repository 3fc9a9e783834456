"""zoo._rows.take_row: exactly ``table[i]``, batched and differentiated like it."""

import jax
import jax.numpy as jnp
import numpy as np

from zoo._rows import take_row


def test_take_row_is_exact_indexing_with_the_same_gradient():
    table = jax.random.normal(jax.random.key(0), (7, 3, 5)) * 1e3
    for i in range(7):
        np.testing.assert_array_equal(take_row(table, jnp.asarray(i)), table[i])
    idx = jnp.asarray([6, 0, 3, 3])
    np.testing.assert_array_equal(jax.vmap(take_row, (None, 0))(table, idx), table[idx])
    sigmas = jnp.geomspace(1.0, 0.01, 10)
    np.testing.assert_array_equal(jax.jit(take_row)(sigmas, jnp.asarray(9)), sigmas[9])
    w = jax.random.normal(jax.random.key(1), (4, 3, 5))

    def loss(f, t):
        return jnp.sum(jax.vmap(f, (None, 0))(t, idx) * w)

    ours = jax.grad(lambda t: loss(take_row, t))(table)
    np.testing.assert_array_equal(ours, jax.grad(lambda t: loss(lambda a, i: a[i], t))(table))


def test_annealed_langevin_step_does_not_redo_the_level_lookup_per_pixel():
    """The compiled Langevin step of a conditional NCSN holds no dynamic slice inside an elementwise fusion
    (XLA:CPU would recompute it for every pixel; zoo._rows)."""
    from zoo import samplers
    from zoo.ncsn import NCSNConfig

    model = NCSNConfig(image_size=8, channels=1, ngf=4, num_scales=3, variant="v1").build(key=jax.random.key(0))
    sampler = model.default_sampler()
    x0 = jnp.zeros((2, 8, 8, 1))

    def chain(m, x):
        return samplers.run(sampler, m.score, x, num_steps=3, key=jax.random.key(1), batched=True).final

    hlo = jax.jit(chain).lower(model, x0).compile().as_text()
    fused = hlo.split("\nENTRY")[0]  # the fused and nested computations
    loop_fusions = [block for block in fused.split("\n\n") if "fused_computation" in block.split("\n")[0]]
    assert loop_fusions
    assert not any("dynamic-slice(" in block and "[2,8,8,4]" in block for block in loop_fusions)
