"""The NCSN RefineNet: CondInstanceNorm++ against numpy, pooling/resizing details, shapes under jit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo.ncsn import CondInstanceNormPP, NCSNConfig
from zoo.ncsn._network import avg_pool5, cin_plus_plus, mean_pool2, resize_bilinear


def _cin_pp_numpy(x, gamma, alpha, beta):
    # x: (H, W, C). torch semantics: InstanceNorm2d (biased var), torch.var of the means (unbiased).
    x = x.astype(np.float64)
    mu = x.mean(axis=(0, 1))
    var = x.var(axis=(0, 1))  # ddof=0
    m = mu.mean()
    v = mu.var(ddof=1)
    mu_t = (mu - m) / np.sqrt(v + 1e-5)
    x_hat = (x - mu) / np.sqrt(var + 1e-5)
    return gamma * (x_hat + alpha * mu_t) + beta


@pytest.mark.parametrize("num_classes", [None, 5])
def test_cin_plus_plus_matches_numpy(num_classes, getkey):
    c = 6
    norm = CondInstanceNormPP(c, num_classes, key=getkey())
    embed = jax.random.normal(getkey(), norm.embed.shape)
    norm = eqx.tree_at(lambda n: n.embed, norm, embed)
    x = 3.0 + 2.0 * jax.random.normal(getkey(), (7, 5, c)) + jnp.arange(c).reshape(1, 1, c)  # channel means differ
    label = 3 if num_classes else 0
    out = norm(x, jnp.asarray(label))
    e = np.asarray(embed if num_classes is None else embed[label], np.float64)
    want = _cin_pp_numpy(np.asarray(x), e[:c], e[c : 2 * c], e[2 * c :])
    np.testing.assert_allclose(np.asarray(out), want, rtol=2e-4, atol=2e-4)
    # The unbiased (N-1) variance of the channel means matters: with ddof=0 the answer differs.
    mu = np.asarray(x, np.float64).mean(axis=(0, 1))
    biased = (mu - mu.mean()) / np.sqrt(mu.var() + 1e-5)
    unbiased = (mu - mu.mean()) / np.sqrt(mu.var(ddof=1) + 1e-5)
    assert np.abs(e[:c] * e[c : 2 * c] * (biased - unbiased)).max() > 1e-2


def _cin_pp_direct(x, gamma, alpha, beta):
    # The forward formula written plainly in JAX: its autodiff derivative is the reference
    # for the hand-written backward pass.
    mu = jnp.mean(x, axis=(0, 1), keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=(0, 1), keepdims=True)
    mu_t = (mu - jnp.mean(mu)) / jnp.sqrt(jnp.var(mu, ddof=1) + 1e-5)
    g, a, b = (p.reshape(1, 1, -1) for p in (gamma, alpha, beta))
    return g * ((x - mu) / jnp.sqrt(var + 1e-5) + a * mu_t) + b


def test_cin_plus_plus_gradient(getkey):
    c = 5
    x = 1.0 + 2.0 * jax.random.normal(getkey(), (6, 4, c)) + jnp.arange(c).reshape(1, 1, c)
    gamma, alpha, beta = (jax.random.normal(getkey(), (c,)) for _ in range(3))
    dy = jax.random.normal(getkey(), x.shape)
    args = (x, gamma, alpha, beta)
    ours = jax.vjp(cin_plus_plus, *args)[1](dy)
    want = jax.vjp(_cin_pp_direct, *args)[1](dy)
    for name, a, b in zip(("x", "gamma", "alpha", "beta"), ours, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4, err_msg=name)
    # Batched (vmap over images, as the network runs it) and second use under jit.
    xs = jnp.stack([x, 2.0 * x])

    def objective(norm):
        return lambda xs: jnp.sum(jnp.sin(jax.vmap(norm, (0, None, None, None))(xs, gamma, alpha, beta)))

    got, want = jax.jit(jax.grad(objective(cin_plus_plus)))(xs), jax.grad(objective(_cin_pp_direct))(xs)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_cin_init():
    norm = CondInstanceNormPP(64, 10, key=jax.random.key(0))
    e = np.asarray(norm.embed)
    assert e.shape == (10, 192)
    assert abs(e[:, :128].mean() - 1.0) < 0.01 and 0.015 < e[:, :128].std() < 0.025
    assert np.all(e[:, 128:] == 0)


def test_pooling_and_resize():
    x = jnp.arange(6 * 6 * 2, dtype=jnp.float32).reshape(6, 6, 2)
    p = avg_pool5(x)
    # Corner: 3x3 of the 5x5 window inside the image, divided by 25 (count_include_pad=True).
    np.testing.assert_allclose(float(p[0, 0, 0]), float(x[:3, :3, 0].sum()) / 25, rtol=1e-6)
    np.testing.assert_allclose(float(p[3, 3, 1]), float(x[1:6, 1:6, 1].mean()), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(mean_pool2(x))[1, 2], np.asarray(x[2:4, 4:6]).mean(axis=(0, 1)))
    # Bilinear, align_corners=True: corners map to corners, the middle of 2 -> 3 is the average.
    y = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 1)), jnp.float32)
    r = resize_bilinear(y, (3, 5))
    np.testing.assert_allclose(np.asarray(r[0, 0]), np.asarray(y[0, 0]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(r[2, 4]), np.asarray(y[1, 2]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(r[1, 2]), np.asarray(y[:, 1].mean(0)), rtol=1e-5)


def test_avg_pool5_forms_agree():
    """The pool's two forms (slices beside oneDNN's convolutions, reduce_window beside XLA's) give the same
    values and gradients, and the reduce_window form is the one traced inside `zoo._onednn.xla_kernels`."""
    from zoo import _onednn

    x = jnp.asarray(np.random.default_rng(1).normal(size=(7, 9, 3)), jnp.float32)
    ct = jnp.asarray(np.random.default_rng(2).normal(size=(7, 9, 3)), jnp.float32)

    with _onednn.xla_kernels():
        v_xla, g_xla = jax.value_and_grad(lambda v: jnp.sum(avg_pool5(v) * ct))(x)
        assert "reduce_window" in str(jax.make_jaxpr(avg_pool5)(x))
    # the slices' form, written out: 25 shifted slices of the zero-padded image
    p = jnp.pad(x, ((2, 2), (2, 2), (0, 0)))
    want = sum(p[i : i + 7, j : j + 9] for i in range(5) for j in range(5)) / 25.0
    np.testing.assert_allclose(np.asarray(avg_pool5(x)), np.asarray(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.vmap(avg_pool5)(x[None]))[0], np.asarray(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(v_xla), float(jnp.sum(want * ct)), rtol=1e-5)
    g = jax.grad(lambda v: jnp.sum(avg_pool5(v) * ct))(x)
    np.testing.assert_allclose(np.asarray(g_xla), np.asarray(g), rtol=1e-5, atol=1e-6)


def test_paper_sizes():
    # Parameter counts of the official models (notes: CIFAR-10 30.1 M, MNIST 7.6 M), without allocating.
    for cfg, want in [(NCSNConfig(ngf=64), 7.6e6), (NCSNConfig(image_size=32, channels=3, ngf=128), 30.1e6)]:
        model = eqx.filter_eval_shape(cfg.build, key=jax.random.key(0))
        n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(model) if isinstance(x, jax.ShapeDtypeStruct))
        assert abs(n - want) / want < 0.01


@pytest.mark.parametrize("size,channels,variant", [(28, 1, "v1"), (32, 3, "v2")])
def test_shapes_and_jit(size, channels, variant, getkey):
    cfg = NCSNConfig(image_size=size, channels=channels, ngf=4, variant=variant, num_scales=3)
    model = cfg.build(key=getkey())
    x = jax.random.uniform(getkey(), (2, size, size, channels))
    levels = jnp.array([0, 2])
    batched = eqx.filter_jit(lambda m, x, i: jax.vmap(m.score)(x, i))
    out = batched(model, x, levels)
    assert out.shape == x.shape and jnp.all(jnp.isfinite(out))
    # single example == its row of the batched call
    single = eqx.filter_jit(lambda m, x, i: m.score(x, i))
    np.testing.assert_allclose(np.asarray(single(model, x[1], levels[1])), np.asarray(out[1]), rtol=1e-3, atol=1e-3)
    if variant == "v1":  # the level changes the CIN++ parameters; perturb them so it shows
        model = eqx.tree_at(lambda m: m.net.norm_out.embed, model, model.net.norm_out.embed.at[2].add(0.5))
    same_x = batched(model, jnp.stack([x[0], x[0]]), levels)
    if variant == "v2":  # unconditional network divided by sigma
        ratio = same_x[0] / same_x[1]
        np.testing.assert_allclose(np.asarray(ratio), cfg.sigmas[2] / cfg.sigmas[0], rtol=1e-3)
    else:
        assert not np.allclose(np.asarray(same_x[0]), np.asarray(same_x[1]))


def test_wrong_shape_is_a_clear_error(getkey):
    model = NCSNConfig(ngf=4, num_scales=2).build(key=getkey())
    with pytest.raises(zoo.DataError, match="expects images of shape"):
        model.loss(jnp.zeros((4, 32, 32, 3)), None, key=getkey())
    with pytest.raises(zoo.ConfigError):
        NCSNConfig(variant="v3")
