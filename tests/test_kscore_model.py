"""The kscore family model (fit + selection, Langevin sampling, evaluation, checkpoints) and the
entropy-gradient application."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo
import zoo.kscore as ks
from zoo.kscore import KernelScoreConfig


def _gmm8_points(n, seed):
    return np.asarray(ks.gmm8().sample(n, key=jax.random.key(seed)))


def test_fit_select_evaluate_sample_save_load(tmp_path, getkey):
    cfg = KernelScoreConfig(estimator="ssge", num_samples=150, dim=2, dataset="toy:gmm8", num_valid=100,
                            grid_bandwidth_scale=(0.2, 5.0), langevin_steps=10, langevin_step_size=1e-2)
    model = cfg.build(key=getkey())
    result = zoo.train(model, _gmm8_points(400, 0), zoo.TrainConfig(steps=0), key=getkey())
    assert [h["bandwidth_scale"] for h in result.history] == [0.2, 5.0]
    assert result.info["selected"] == {"bandwidth_scale": 0.2}  # 5x the median blurs the 8 modes away
    fitted = result.model
    metrics = zoo.evaluate(fitted, _gmm8_points(200, 1), key=getkey())
    assert set(metrics) == {"sm_objective", "score_mse", "score_rel_error", "true_sm_objective"}
    assert metrics["score_rel_error"] < 0.9  # the zero estimate scores 1.0
    assert metrics["sm_objective"] > metrics["true_sm_objective"] - 1.0  # the truth minimises it
    samples = zoo.sample(fitted, 16, key=getkey())
    assert samples.shape == (16, 2) and bool(jnp.all(jnp.isfinite(samples)))
    assert fitted.to_images(samples).shape[-1] == 3
    path = zoo.save(fitted, tmp_path / "ssge", training=result.info | {"command": "test"})
    loaded = zoo.load(path)
    x = jnp.asarray(_gmm8_points(5, 2))
    np.testing.assert_array_equal(jax.vmap(loaded.score)(x), jax.vmap(fitted.score)(x))


def test_stein_and_pca_checkpoints(tmp_path, getkey):
    # Low-rank "images": 16 pixels driven by 3 latent factors.
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((300, 3)) @ rng.standard_normal((3, 16)) + 0.5).reshape(300, 4, 4, 1)
    cfg = KernelScoreConfig(estimator="stein", kernel="imq", lam=1e-2, num_samples=80, dim=3, data_dim=16,
                            image_shape=(4, 4, 1), dataset="synthetic", num_valid=50, langevin_steps=10)
    result = zoo.train(cfg.build(key=getkey()), data, zoo.TrainConfig(steps=0), key=getkey())
    model = result.model
    z = model.project(data[:5])
    np.testing.assert_allclose(model.reconstruct(z), data[:5], atol=1e-4)  # rank 3 data, 3 components
    assert zoo.sample(model, 5, key=getkey()).shape == (5, 4, 4, 1)
    assert set(zoo.evaluate(model, data[200:], key=getkey())) == {"sm_objective"}
    loaded = zoo.load(zoo.save(model, tmp_path / "stein-pca"))
    np.testing.assert_array_equal(loaded.pca_basis, model.pca_basis)
    np.testing.assert_array_equal(jax.vmap(loaded.score)(z), jax.vmap(model.score)(z))


def test_float64_config():
    cfg = KernelScoreConfig(num_samples=10, dtype="float64")
    if not jax.config.jax_enable_x64:
        with pytest.raises(zoo.ConfigError, match="64-bit"):
            cfg.build(key=jax.random.key(0))
    with jax.enable_x64(True):
        model = cfg.build(key=jax.random.key(0))
        assert model.fitted.coef.dtype == jnp.float64


def test_bad_config_and_data():
    with pytest.raises(zoo.ConfigError, match="estimator"):
        KernelScoreConfig(estimator="kde")
    model = KernelScoreConfig(num_samples=50, dim=2).build(key=jax.random.key(0))
    with pytest.raises(zoo.DataError, match="features"):
        model.train(np.zeros((100, 3)), None, key=jax.random.key(0))
    with pytest.raises(zoo.ConfigError, match="exactly one"):
        ks.NuMethod()


def test_entropy_gradient_trains_an_implicit_sampler(getkey, optimised):
    """z = A eps + b matched to N(mu, S) by minimising KL(q || p) = -E log p(z) - H(q), with grad H
    from SSGE. Without the entropy term the sampler collapses onto the mode (the check can fail)."""
    mu = jnp.asarray([1.0, -1.0])
    chol = jnp.asarray([[1.0, 0.0], [0.6, 0.5]])
    cov = chol @ chol.T
    prec = jnp.linalg.inv(cov)
    est = ks.SSGE(n_eigen=6)

    def log_p(z):
        r = z - mu[None, :]
        return -0.5 * jnp.einsum("ni,ij,nj->n", r, prec, r)

    def loss(params, key, entropy):
        a, b = params
        z = jax.random.normal(key, (100, 2)) @ a.T + b[None, :]
        out = -jnp.mean(log_p(z))
        return out - ks.entropy_surrogate(est, z) if entropy else out

    def train(entropy, steps, key):
        params = (jnp.eye(2) * 0.3, jnp.zeros(2))
        opt = optax.adam(0.05)

        def step(carry, k):
            p, s = carry
            g = jax.grad(loss)(p, k, entropy)
            u, s = opt.update(g, s)
            return (optax.apply_updates(p, u), s), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
        return params

    key = getkey()
    a, b = jax.jit(train, static_argnums=(0, 1), compiler_options=optimised)(True, 250, key)
    np.testing.assert_allclose(b, mu, atol=0.15)
    np.testing.assert_allclose(a @ a.T, cov, atol=0.25)
    a0, _ = jax.jit(train, static_argnums=(0, 1), compiler_options=optimised)(False, 60, key)
    assert float(jnp.linalg.det(a0 @ a0.T)) < 0.1 * float(jnp.linalg.det(cov))
