"""EBM models: RBM / Ising densities against brute force, PCD training through the shared
driver, checkpoint round trips, sampling and evaluation shapes; MMD and ESS metrics."""

import itertools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hlo import ynn_fusion_bodies

import zoo
from zoo.ebm import (
    RBMConfig,
    ResNetEBMConfig,
    data_mean_logits,
    effective_sample_size,
    initial_chains,
    lattice_coupling,
    lattice_ising,
    mmd,
)


def test_rbm_free_energy_matches_hidden_sum(getkey):
    model = RBMConfig(visible=4, hidden=3, image_shape=None, init_std=1.0).build(key=getkey())
    model = eqx.tree_at(lambda m: (m.b, m.c), model, (jax.random.normal(getkey(), (4,)),
                                                      jax.random.normal(getkey(), (3,))))
    hs = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=3)))
    for x in jnp.asarray(list(itertools.product([0.0, 1.0], repeat=4))):
        joint = jax.vmap(lambda h: x @ model.W @ h + model.b @ x + model.c @ h)(hs)
        np.testing.assert_allclose(model.log_prob(x), jax.scipy.special.logsumexp(joint), rtol=1e-5)


def test_ising_lattice():
    a = lattice_coupling(4)
    assert np.all(a.sum(1) == 4) and np.all(a == a.T) and np.all(np.diag(a) == 0)
    t = lattice_ising(3, 0.3, 0.1)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, 9), jnp.float32)
    s = 2 * np.asarray(x) - 1
    a = lattice_coupling(3)
    expected = 0.3 * sum(s[i] * s[j] for i in range(9) for j in range(i + 1, 9) if a[i, j]) + 0.1 * s.sum()
    np.testing.assert_allclose(t(x), expected, rtol=1e-5)


def _binary_data(n, shape, key):
    return np.asarray(jax.random.bernoulli(key, 0.3, (n, *shape)), np.float32)


def test_rbm_pcd_training_and_checkpoint(getkey, tmp_path):
    data = _binary_data(64, (16,), getkey())
    for sampler in ("gwg", "block_gibbs"):
        cfg = RBMConfig(visible=16, hidden=8, image_shape=None, train_sampler=sampler, sampling_steps=3,
                        buffer_size=32, sample_steps=5, ais_steps=20, ais_chains=8)
        model = cfg.build(key=getkey())
        # weight decay on every trainable array: the frozen base must not move
        tc = zoo.TrainConfig(steps=3, batch_size=8, learning_rate=1e-2, optimizer="adamw", weight_decay=0.5,
                             ema_decay=0.9, log_every=1)
        result = zoo.train(model, data, tc, key=getkey(), progress=False)
        assert np.isfinite(result.history[-1]["loss"])
        assert result.state.buffer.shape == (32, 16)
        assert not np.allclose(result.model.W, model.W)
        # the base distribution was set from the data mean before training, and stayed there
        for m in (result.model, result.ema):
            np.testing.assert_array_equal(m.base_logits, data_mean_logits(data))
    path = zoo.save(result.model, tmp_path / "rbm", ema=result.ema)
    loaded = zoo.load(path, weights="raw")
    np.testing.assert_array_equal(loaded.W, result.model.W)
    x = loaded.sample(5, key=getkey())
    assert x.shape == (5, 16) and set(np.unique(np.asarray(x))) <= {0.0, 1.0}
    # fine-tuning a loaded model keeps its base distribution and starts from its weights
    tuned = zoo.train(loaded, data * 0, zoo.TrainConfig(steps=1, batch_size=8, log_every=1), key=getkey(),
                      progress=False)
    np.testing.assert_array_equal(tuned.model.base_logits, loaded.base_logits)
    metrics = zoo.evaluate(loaded, data[:10], key=getkey())
    assert {"log_z", "log_likelihood", "log_z_bootstrap_std"} <= set(metrics)
    assert metrics["log_likelihood"] < 0


def test_resnet_ebm_training_sampling_evaluate(getkey, tmp_path):
    data = _binary_data(32, (8, 8, 1), getkey())
    cfg = ResNetEBMConfig(channels=4, num_blocks=0, image_size=8, sampling_steps=1, buffer_size=16, l2=0.1,
                          sample_steps=2, ais_steps=2, ais_chains=4)
    model = cfg.build(key=getkey())
    x = jnp.asarray(data[:3].reshape(3, -1))
    assert jax.vmap(model.log_prob)(x).shape == (3,)
    tc = zoo.TrainConfig(steps=2, batch_size=8, learning_rate=1e-3, ema_decay=0.9, log_every=1, checkpoint_every=1)
    result = zoo.train(model, data, tc, key=getkey(), workdir=tmp_path / "run", progress=False)
    assert np.isfinite(result.history[-1]["loss"]) and "sampler_accept_prob" in result.history[-1]
    assert (tmp_path / "run" / "checkpoints").is_dir()
    s = result.ema.sample(3, key=getkey(), num_steps=4)
    assert s.shape == (3, 8, 8, 1)
    out = result.ema.evaluate(data[:4], key=getkey())
    assert np.isfinite(out["log_likelihood"])
    with pytest.raises(zoo.DataError, match="64 pixels"):
        model.loss(jnp.zeros((2, 10)), result.state, key=getkey())


@pytest.mark.slow
def test_resnet_ebm_step_compiles_with_its_options_and_agrees_with_xla_defaults(getkey):
    """`zoo.fit` compiles the step with the model's ``compiler_options()``: for the ResNet EBM, XLA:CPU's
    YNNPACK fusions kept to reductions (its convolutions are single-threaded inside the GWG loop;
    `zoo._conv.conv_compiler_options`). Only float
    rounding changes: the same chains (buffer) and the loss to float precision."""
    from zoo._conv import conv_compiler_options
    from zoo._optim import make_optimizer
    from zoo._train import _make_step

    data = _binary_data(16, (8, 8, 1), getkey())
    cfg = ResNetEBMConfig(channels=24, num_blocks=0, image_size=8, sampling_steps=3, buffer_size=16)
    model = cfg.build(key=getkey()).with_base(data)
    assert model.compiler_options() == conv_compiler_options()
    if jax.default_backend() == "cpu":
        assert dict(model.compiler_options()) == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
    state = model.init_state(data, key=getkey())
    tc = zoo.TrainConfig(steps=1, batch_size=8)
    opt_state = make_optimizer(tc).init(eqx.filter(model, model.trainable()))
    args = (getkey(), model, opt_state, state, data[:8])
    outs = {}
    for name, options in (("ours", model.compiler_options()), ("xla defaults", ())):
        step = _make_step(tc, None, options)
        with warnings.catch_warnings():  # unusable donated buffers (the batch), as zoo.fit compiles it
            warnings.simplefilter("ignore", UserWarning)
            hlo = step.lower(*args).compile().compiled.as_text()  # equinox wraps jax.stages.Compiled
            copy = jax.tree.map(lambda x: jnp.copy(x) if eqx.is_array(x) else x, args)  # the step donates
            outs[name] = step(*copy)
        if name == "ours" and options:  # YNNPACK has reductions only, no convolution or matmul
            assert not any(" convolution(" in b or " dot(" in b for b in ynn_fusion_bodies(hlo))
    (_, _, s_ours, m_ours), (_, _, s_ref, m_ref) = outs["ours"], outs["xla defaults"]
    np.testing.assert_array_equal(s_ours.buffer, s_ref.buffer)
    np.testing.assert_allclose(m_ours["loss"], m_ref["loss"], rtol=1e-5, atol=1e-5)


def test_sample_init(getkey):
    """``sample_init``: "base" starts chains at the data-mean Bernoulli, "noise" at one rate for every pixel
    (the data's mean rate); the per-pixel frequencies of 4000 starts agree with each within 5 standard errors."""
    logits = jnp.log(jnp.array([0.05, 0.5, 0.9, 0.25]) / (1 - jnp.array([0.05, 0.5, 0.9, 0.25])))
    n = 4000
    for init, want in (("base", jnp.array([0.05, 0.5, 0.9, 0.25])), ("noise", jnp.full(4, 0.425))):
        x = initial_chains(logits, n, init, key=getkey())
        assert x.shape == (n, 4) and set(np.unique(np.asarray(x))) <= {0.0, 1.0}
        se = np.sqrt(want * (1 - want) / n)
        assert np.all(np.abs(np.asarray(x.mean(0)) - want) < 5 * se), (init, x.mean(0))
    with pytest.raises(zoo.ConfigError, match="sample_init"):
        RBMConfig(visible=4, hidden=2, image_shape=None, sample_init="zeros")
    with pytest.raises(zoo.ConfigError, match="sample_init"):
        ResNetEBMConfig(sample_init="data")
    cfg = RBMConfig(visible=4, hidden=2, image_shape=None, sample_steps=1, sample_init="noise")
    assert cfg.build(key=getkey()).sample(3, key=getkey()).shape == (3, 4)


def test_resnet_ebm_with_rbm_term(getkey, tmp_path):
    """With ``rbm_hidden > 0``: f = net + RBM free energy; a warm start copies a trained RBM and
    (zero head) reproduces its log-density exactly; the buffer starts from RBM block-Gibbs draws;
    bad combinations are ConfigErrors naming the fix."""
    with pytest.raises(zoo.ConfigError, match="base_dist=False"):
        ResNetEBMConfig(rbm_hidden=5)
    with pytest.raises(zoo.ConfigError, match="rbm_hidden > 0"):
        ResNetEBMConfig(buffer_init_sweeps=3)
    data = _binary_data(32, (8, 8, 1), getkey())
    rbm = RBMConfig(visible=64, hidden=6, image_shape=(8, 8, 1), init_std=0.5).build(key=getkey()).with_base(data)
    rbm = eqx.tree_at(lambda m: m.c, rbm, jax.random.normal(getkey(), (6,)))
    cfg = ResNetEBMConfig(channels=4, num_blocks=0, image_size=8, base_dist=False, rbm_hidden=6,
                          buffer_init_sweeps=2, sampling_steps=1, buffer_size=16, l2=0.1, sample_steps=2,
                          ais_steps=2, ais_chains=4)
    fresh = cfg.build(key=getkey())
    model = fresh.warm_start(rbm)
    x = jnp.asarray(data.reshape(32, -1))
    np.testing.assert_allclose(jax.vmap(model.log_prob)(x), jax.vmap(rbm.log_prob)(x), rtol=1e-6)
    np.testing.assert_array_equal(model.base_logits, rbm.base_logits)
    # with a nonzero head the network term adds to the RBM's
    net = eqx.tree_at(lambda m: m.head.bias, model, jnp.ones(()))
    np.testing.assert_allclose(jax.vmap(net.net)(x), 1.0)
    np.testing.assert_allclose(jax.vmap(net.log_prob)(x), jax.vmap(rbm.log_prob)(x) + 1, rtol=1e-5)
    with pytest.raises(zoo.ConfigError, match="rbm_hidden=6"):
        ResNetEBMConfig(image_size=8, base_dist=False, rbm_hidden=5).build(key=getkey()).warm_start(rbm)
    with pytest.raises(zoo.ConfigError, match="from a zoo RBM"):
        ResNetEBMConfig(image_size=8).build(key=getkey()).warm_start(rbm)
    state = model.init_state(data, key=getkey())
    assert state.buffer.shape == (16, 64) and set(np.unique(np.asarray(state.buffer))) <= {0.0, 1.0}
    assert isinstance(model.default_sampler(), zoo.samplers.GWG)
    with pytest.raises(zoo.ConfigError, match="rbm_hidden > 0"):
        ResNetEBMConfig(gibbs_mh_steps=2)
    model = zoo.replace_config(model, gibbs_mh_steps=2, gwg_steps_per_cycle=1)
    assert isinstance(model.default_sampler(), zoo.samplers.Cycle)


@pytest.mark.slow
def test_resnet_ebm_with_rbm_term_trains_and_round_trips(getkey, tmp_path):
    """PCD with the cycle of block-Gibbs-proposal MH and GWG steps trains both terms; save/load."""
    data = _binary_data(32, (8, 8, 1), getkey())
    rbm = RBMConfig(visible=64, hidden=6, image_shape=(8, 8, 1), init_std=0.5).build(key=getkey()).with_base(data)
    cfg = ResNetEBMConfig(channels=4, num_blocks=0, image_size=8, base_dist=False, rbm_hidden=6,
                          buffer_init_sweeps=2, gibbs_mh_steps=2, sampling_steps=1, buffer_size=16, l2=0.1)
    model = cfg.build(key=getkey()).warm_start(rbm)
    x = jnp.asarray(data.reshape(32, -1))
    tc = zoo.TrainConfig(steps=2, batch_size=8, learning_rate=1e-2, log_every=1)
    result = zoo.train(model, data, tc, key=getkey(), progress=False)
    assert "sampler_0_accept_prob" in result.history[-1]
    assert not np.allclose(result.model.rbm.W, model.rbm.W)  # the RBM term trains
    np.testing.assert_array_equal(result.model.base_logits, model.base_logits)  # the base stays
    path = zoo.save(result.model, tmp_path / "hybrid")
    loaded = zoo.load(path, weights="raw")
    np.testing.assert_allclose(jax.vmap(loaded.log_prob)(x), jax.vmap(result.model.log_prob)(x), rtol=1e-6)


def test_num_params_counts_what_the_driver_trains(getkey):
    """The frozen base logits are not counted (nor trained: test_rbm_pcd_training_and_checkpoint)."""
    model = RBMConfig(visible=6, hidden=3, image_shape=None).build(key=getkey())
    assert zoo.num_params(model) == 6 * 3 + 6 + 3
    resnet = ResNetEBMConfig(channels=4, num_blocks=0, image_size=8).build(key=getkey())
    every = sum(x.size for x in jax.tree.leaves(eqx.filter(resnet, eqx.is_inexact_array)))
    assert zoo.num_params(resnet) == every - 64
    assert zoo.num_params(eqx.nn.Linear(3, 2, key=getkey())) == 8  # plain modules: every inexact array


def test_effective_sample_size():
    rng = np.random.default_rng(0)
    t = 20000
    iid = rng.normal(size=(t, 2))
    np.testing.assert_allclose(effective_sample_size(iid), t, rtol=0.1)
    rho = 0.9
    ar = np.zeros(t)
    for i in range(1, t):
        ar[i] = rho * ar[i - 1] + rng.normal()
    expected = t * (1 - rho) / (1 + rho)
    np.testing.assert_allclose(effective_sample_size(ar), expected, rtol=0.25)


def test_mmd(getkey):
    p = jax.random.bernoulli(getkey(), 0.3, (400, 20)).astype(jnp.float32)
    q = jax.random.bernoulli(getkey(), 0.3, (400, 20)).astype(jnp.float32)
    r = jax.random.bernoulli(getkey(), 0.5, (400, 20)).astype(jnp.float32)
    same, diff = float(mmd(p, q)), float(mmd(p, r))
    assert abs(same) < 2e-3 and diff > 10 * max(abs(same), 1e-4)


def test_cli_sample_runs_rbm_chains_data_parallel(tmp_path, capsys):
    """With several devices (the tests' 4 CPU devices) `zoo sample` spreads an RBM's chains over them (its jitted
    path, weights replicated): the very samples `model.sample` draws on one device."""
    from zoo._cli import main

    model = RBMConfig(visible=16, hidden=8, image_shape=(4, 4, 1), init_std=1.0, sample_steps=5).build(
        key=jax.random.key(0))
    path = zoo.save(model, tmp_path / "rbm")
    npz = tmp_path / "s.npz"
    assert main(["sample", str(path), "-n", "8", "-o", str(tmp_path / "s.png"), "--npz", str(npz)]) == 0
    assert "data-parallel over 4 devices" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(npz)["samples"], model.sample(8, key=jax.random.key(0)))
