"""The NCSN model end to end: a tiny training run lowers the loss; save/load; sampling; inpainting; sigma rules."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo.ncsn import NCSNConfig, geometric_sigmas, max_pairwise_distance, v2_gamma, v2_num_scales


def _blobs(n, size=12, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = rng.uniform(3, size - 3, (n, 2))
    img = np.exp(-((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2) / 6.0)
    return img[..., None].astype(np.float32)


def test_tiny_training_lowers_loss(getkey, tmp_path):
    """DSM training through the shared driver learns: the mean loss of the last 10 of 40 steps is well below
    that of the first 10 (the driver's logged window means; no separate loss program to compile)."""
    cfg = NCSNConfig(image_size=12, ngf=4, variant="v1-unconditional", num_scales=4, steps_per_level=2,
                     sampling_rule="technique4", denoise=True)
    model = cfg.build(key=getkey())
    data = _blobs(256)
    tc = zoo.TrainConfig(steps=40, batch_size=16, learning_rate=3e-3, ema_decay=0.9, log_every=10,
                         checkpoint_every=40)
    result = zoo.train(model, data, tc, key=getkey(), workdir=tmp_path / "run")
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert [row["step"] for row in result.history] == [10, 20, 30, 40]
    assert last < 0.8 * first, (first, last)


@pytest.mark.slow
def test_save_load_sample_inpaint(getkey, tmp_path):
    cfg = NCSNConfig(image_size=12, ngf=4, variant="v1-unconditional", num_scales=4, steps_per_level=2,
                     sampling_rule="technique4", denoise=True)
    data = _blobs(64)
    probe = jnp.asarray(data[:3])
    tc = zoo.TrainConfig(steps=4, batch_size=16, learning_rate=3e-3, ema_decay=0.9, log_every=2)
    result = zoo.train(cfg.build(key=getkey()), data, tc, key=getkey())
    # save / load round trip (EMA weights by default), then sampling and inpainting work on the loaded model
    path = zoo.save(result.model, tmp_path / "ckpt", ema=result.ema)
    loaded = zoo.load(path)
    np.testing.assert_allclose(np.asarray(loaded.net.end.weight), np.asarray(result.ema.net.end.weight))
    x = eqx.filter_jit(lambda m, k: m.sample(3, key=k))(loaded, getkey())
    assert x.shape == (3, 12, 12, 1) and bool(jnp.all(jnp.isfinite(x)))
    # a sampler object instead of the config's: the default given explicitly is the same chain
    key = getkey()
    sample = eqx.filter_jit(lambda m, s, k: m.sample(2, sampler=s, key=k))
    other = zoo.samplers.AnnealedLangevin.v1(loaded.sigmas, steps_per_level=1, step_lr=1e-3)
    default = sample(loaded, None, key)
    np.testing.assert_array_equal(sample(loaded, loaded.default_sampler(), key), default)
    assert not np.allclose(sample(loaded, other, key), default)
    mask = jnp.zeros((3, 12, 12, 1)).at[:, :, :6].set(1.0)
    filled = eqx.filter_jit(lambda m, o, k: m.inpaint(o, mask, key=k))(loaded, probe, getkey())
    np.testing.assert_allclose(np.asarray(filled[:, :, :6]), np.asarray(probe[:3, :, :6]), atol=1e-6)
    metrics = loaded.evaluate(data[:20], key=getkey())
    assert len(metrics) == 5 and np.isfinite(metrics["dsm_loss"])


def test_sigma_rules():
    np.testing.assert_allclose(
        geometric_sigmas(1.0, 0.01, 10),
        [1.0, 0.5995, 0.3594, 0.2154, 0.1292, 0.0774, 0.0464, 0.0278, 0.0167, 0.01], atol=6e-5)
    x = np.zeros((5, 2, 2, 1), np.float32)
    x[3, 0, 0, 0] = 3.0
    x[1, 1, 1, 0] = -4.0
    assert abs(max_pairwise_distance(x) - 5.0) < 1e-6
    # Technique 2: gamma solves Phi(sqrt(2D)(g-1) + 3g) - Phi(sqrt(2D)(g-1) - 3g) = 1/2.
    from math import erf, sqrt

    def phi(t):
        return 0.5 * (1 + erf(t / sqrt(2)))

    d = 3072
    g = v2_gamma(d)
    a = sqrt(2 * d) * (g - 1)
    assert abs(phi(a + 3 * g) - phi(a - 3 * g) - 0.5) < 1e-6
    # NCSNv2 CIFAR-10: 50 -> 0.01 gives L in the low 200s (the paper rounds to 232).
    assert 200 < v2_num_scales(50.0, 0.01, d) < 240


def test_sampler_settings_keep_weights(getkey):
    model = NCSNConfig(image_size=8, ngf=2, num_scales=3, steps_per_level=1).build(key=getkey())
    other = zoo.replace_config(model, steps_per_level=7, sampling_rule="technique4", denoise=True)
    assert other.config.steps_per_level == 7 and other.default_sampler().num_steps == 22
    assert other.default_sampler().step_lr != model.default_sampler().step_lr
    np.testing.assert_array_equal(np.asarray(other.net.end.weight), np.asarray(model.net.end.weight))
    with pytest.raises(zoo.ConfigError, match="changing ngf"):
        zoo.replace_config(model, ngf=8)
    with pytest.raises(zoo.ConfigError, match="AnnealedLangevin"):  # sampler objects: the slow test runs one
        model.sample(2, sampler=zoo.samplers.Langevin(0.1), key=getkey())


def test_cli_sample_runs_the_chains_data_parallel(tmp_path, capsys):
    """With several devices (the tests' 4 CPU devices) `zoo sample` spreads an NCSN's chains over them (6
    samples over 3): the very samples `model.sample` draws on one device."""
    from zoo._cli import main

    model = NCSNConfig(image_size=8, channels=1, ngf=4, variant="ncsnv2", num_scales=2, steps_per_level=2,
                       step_lr=1e-3).build(key=jax.random.key(0))
    path = zoo.save(model, tmp_path / "tiny")
    npz = tmp_path / "s.npz"
    assert main(["sample", str(path), "-n", "6", "-o", str(tmp_path / "s.png"), "--npz", str(npz)]) == 0
    assert "data-parallel over 3 devices" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(npz)["samples"], model.sample(6, key=jax.random.key(0)), atol=1e-5)


def test_bfloat16_convolutions_keep_the_weights_and_the_score(getkey):
    """``compute_dtype="bfloat16"``: the same float32 parameters (a `replace_config` away), convolutions in
    bfloat16 (oneDNN's kernels on CPUs with bfloat16 instructions), a float32 score within bfloat16 rounding of
    the float32 network's; through `conv_weights_as` float32 gradients reach the float32 kernels."""
    from zoo._onednn import _choice
    from zoo.ncsn._network import Conv2d, conv_weights_as

    with pytest.raises(zoo.ConfigError, match="compute_dtype must be one of"):
        NCSNConfig(image_size=8, ngf=2, compute_dtype="float16")
    model = NCSNConfig(image_size=8, channels=2, ngf=4, num_scales=3).build(key=getkey())
    half = zoo.replace_config(model, compute_dtype="bfloat16")
    assert half.config.compute_dtype == "bfloat16"
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(eqx.filter(half, eqx.is_inexact_array)))
    x, levels = jax.random.uniform(getkey(), (4, 8, 8, 2)), jnp.arange(4) % 3
    score = lambda m: jax.jit(jax.vmap(m.score))(x, levels)  # noqa: E731
    s32, s16 = score(model), score(half)
    assert s16.dtype == jnp.float32
    rel = float(jnp.linalg.norm(s16 - s32) / jnp.linalg.norm(s32))
    assert 1e-4 < rel < 3e-2  # rounded (not float32 by mistake), but only by bfloat16's 2^-8 per operand
    # gradients (one dilated layer: the whole network's backward pass compiles for too long for the suite)
    conv = Conv2d(2, 3, dilation=2, key=getkey())
    loss = lambda c, d: jnp.sum(jnp.sin(jax.vmap(conv_weights_as(c, d))(x)))  # noqa: E731
    g32, g16 = (jax.jit(jax.grad(loss), static_argnums=1)(conv, d) for d in (jnp.float32, jnp.bfloat16))
    assert g16.weight.dtype == g16.bias.dtype == jnp.float32
    rel = float(jnp.linalg.norm(g16.weight - g32.weight) / jnp.linalg.norm(g32.weight))
    assert 1e-4 < rel < 3e-2
    hlo = jax.jit(jax.vmap(half.score)).lower(x, levels).as_text()
    assert ("xbf16>" in hlo) and (("zoo_onednn_conv" in hlo) == (_choice.native_bfloat16() and zoo._onednn.available()))
