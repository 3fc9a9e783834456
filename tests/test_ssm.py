"""Sliced score matching (zoo.stein.ssm_*, annealed for NCSN, an objective of the toy model): unbiased for
Hyvarinen's objective, minimised by the true score, and the NCSN/toy objective switch."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo
from zoo import kscore, stein
from zoo.ncsn import NCSNConfig, geometric_sigmas
from zoo.toy import ToyScoreConfig


MU = np.array([1.0, -0.5])
COV = np.array([[1.0, 0.4], [0.4, 0.5]])


def _gaussian_samples(key, n):
    chol = jnp.asarray(np.linalg.cholesky(COV).T, jnp.float32)
    return jnp.asarray(MU, jnp.float32)[None, :] + jax.random.normal(key, (n, 2)) @ chol


@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_ssm_is_unbiased_for_hyvarinen(getkey, projection, variance_reduction):
    """Linear score s(x) = A x + b on N(m, C): J = tr A + 1/2 (tr(A C A^T) + ||A m + b||^2) in closed form;
    the SSM terms' mean lies within 4 standard errors of it."""
    a = jnp.asarray([[-0.7, 0.3], [0.5, -1.2]])
    b = jnp.asarray([0.2, -0.1])
    n = 20000
    x = _gaussian_samples(getkey(), n)
    terms = np.asarray(stein.ssm_terms(lambda v: a @ v + b, x, key=getkey(), projection=projection,
                                       variance_reduction=variance_reduction))
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    want = np.trace(an) + 0.5 * (np.trace(an @ COV @ an.T) + np.sum((an @ MU + bn) ** 2))
    se = terms.std(ddof=1) / np.sqrt(n)
    assert abs(terms.mean() - want) < 4 * se, (terms.mean(), want, se)


def test_ssm_matches_the_exact_objective_of_a_network(getkey):
    """For an MLP score on 3-D points, SSM (4 projections per point) minus the exact objective (trace of
    the Jacobian, `zoo.kscore.score_matching_objective`) averages to zero within 4 standard errors,
    and the variance-reduced version has the smaller spread."""
    mlp = eqx.nn.MLP(3, 3, 16, 2, activation=jnp.tanh, key=getkey())
    x = jax.random.normal(getkey(), (3000, 3)) * 1.5
    exact = np.asarray(jax.vmap(lambda v: kscore.score_matching_objective(mlp, v[None]))(x))
    key = getkey()
    spread = []
    for vr in (False, True):
        diff = np.asarray(stein.ssm_terms(mlp, x, key=key, num_projections=4, variance_reduction=vr)) - exact
        assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(len(diff))
        spread.append(diff.std())
    assert spread[1] < spread[0]


def test_ssm_is_minimised_by_the_true_score(getkey):
    """Fitting a linear score A x + b by SSM (Rademacher) and SSM-VR (Gaussian) on Gaussian samples
    recovers the true score -C^{-1}(x - m) (up to the sampling error of 4096 points)."""
    x = _gaussian_samples(getkey(), 4096)
    prec = np.linalg.inv(np.cov(np.asarray(x, np.float64).T, bias=True))
    want_a, want_b = -prec, prec @ np.asarray(x, np.float64).mean(0)
    opt = optax.adam(optax.cosine_decay_schedule(0.05, 400))
    for projection, vr in (("rademacher", False), ("gaussian", True)):
        params = (jnp.zeros((2, 2)), jnp.zeros(2))

        def loss(p, k):
            return stein.ssm_loss(lambda v: p[0] @ v + p[1], x, key=k, projection=projection, variance_reduction=vr)

        def step(carry, k):
            p, s = carry
            g = jax.grad(loss)(p, k)
            u, s = opt.update(g, s)
            return (optax.apply_updates(p, u), s), None

        (params, _), _ = jax.jit(lambda p, k: jax.lax.scan(step, (p, opt.init(p)), jax.random.split(k, 400)))(
            params, getkey()
        )
        np.testing.assert_allclose(np.asarray(params[0]), want_a, atol=0.12)
        np.testing.assert_allclose(np.asarray(params[1]), want_b, atol=0.12)


def test_annealed_ssm_per_level_and_level_draws(getkey):
    """Data N(0, s^2 I) noised at sigma_i: at the exact noised score -x/(s^2 + sigma_i^2) the weighted term
    sigma^2 (1/2 ||s||^2 + v^T grad s v) has mean -1/2 D sigma^2 / (s^2 + sigma^2); c times that score has
    mean sigma^2 D (c^2/2 - c) / (s^2 + sigma^2), larger. Levels are drawn uniformly."""
    s2, n, shape = 0.25, 8000, (2, 2, 1)
    d = int(np.prod(shape))
    sigmas = jnp.asarray(geometric_sigmas(1.0, 0.1, 4))
    x = jnp.sqrt(s2) * jax.random.normal(getkey(), (n, *shape))
    labels = jnp.arange(n) % 4
    sig = np.asarray(sigmas, np.float64)
    for c in (1.0, 1.4):
        terms = np.asarray(stein.anneal_ssm_terms(lambda v, i: -c * v / (s2 + sigmas[i] ** 2), x, labels, sigmas,
                                                  key=getkey()))
        want = sig**2 * d * (c * c / 2 - c) / (s2 + sig**2)
        for i in range(4):
            t = terms[np.asarray(labels) == i]
            assert abs(t.mean() - want[i]) < 4 * t.std(ddof=1) / np.sqrt(len(t)), (c, i, t.mean(), want[i])
    # a score equal to the level index: sigma_i^2 * 1/2 * D * i^2, averaged over uniform levels
    val = float(stein.anneal_ssm_loss(lambda v, i: jnp.full_like(v, i), x[:4000], sigmas, key=getkey()))
    want = np.mean(sig**2 * 0.5 * d * np.arange(4) ** 2)
    assert abs(val - want) < 0.03 * want


class _LinearLevels(eqx.Module):
    """A stand-in network ``(x, i) -> w_i x`` (for NCSN v1, whose score is the network output)."""

    w: jax.Array

    def __call__(self, x, level):
        return self.w[level] * x


def test_ncsn_objective_ssm_trains_to_the_exact_score(getkey):
    """`NCSNConfig(objective="ssm")` makes `NCSN.loss` annealed SSM: with a per-level linear network on
    Gaussian images, a short `zoo.train` run lowers the loss and brings w_i to -1/(s^2 + sigma_i^2)."""
    cfg = NCSNConfig(image_size=8, ngf=2, num_scales=3, sigma_end=0.1, dequantize=False, objective="ssm")
    skeleton = eqx.filter_eval_shape(cfg.build, key=getkey())  # an NCSN whose only array leaves are the net's
    model = eqx.tree_at(lambda m: m.net, skeleton, _LinearLevels(jnp.zeros(3)))
    s2 = 0.2
    data = np.sqrt(s2) * np.random.default_rng(0).normal(size=(512, 8, 8, 1))
    data = (data - data.mean(0)).astype(np.float32)  # centred: the noised score is -x / (s^2 + sigma^2)
    probe = jnp.asarray(data[:256])
    k = getkey()
    loss_fn = eqx.filter_jit(lambda m: m.loss(probe, None, key=k)[0])
    before = float(loss_fn(model))
    tc = zoo.TrainConfig(steps=200, batch_size=64, learning_rate=0.1, log_every=50)
    trained = zoo.train(model, data, tc, key=getkey()).model
    assert float(loss_fn(trained)) < before - 1.0
    want = -1.0 / (s2 + np.asarray(cfg.sigmas, np.float64) ** 2)
    np.testing.assert_allclose(np.asarray(trained.net.w), want, rtol=0.1)
    # the DSM objective is the default, and a config.json without the field loads as DSM
    assert NCSNConfig.from_dict({"image_size": 8, "ngf": 2}).objective == "dsm"
    with pytest.raises(zoo.ConfigError, match="objective"):
        NCSNConfig(objective="sm")


@pytest.mark.slow
def test_ncsn_refinenet_with_ssm_lowers_its_loss(getkey):
    """The real (tiny) RefineNet trained by annealed SSM: the loss falls (second-order autodiff through
    the custom-VJP layers; slow to compile on CPU)."""
    cfg = NCSNConfig(image_size=8, ngf=4, variant="v1-unconditional", num_scales=3, objective="ssm")
    model = cfg.build(key=getkey())
    rng = np.random.default_rng(0)
    data = rng.uniform(0.3, 0.7, (256, 8, 8, 1)).astype(np.float32)
    probe = jnp.asarray(data[:64])
    k = getkey()
    loss_fn = eqx.filter_jit(lambda m: m.loss(probe, None, key=k)[0])
    before = float(loss_fn(model))
    tc = zoo.TrainConfig(steps=30, batch_size=32, learning_rate=3e-3, log_every=10)
    after = float(loss_fn(zoo.train(model, data, tc, key=getkey()).model))
    assert after < before - 0.5 * abs(before)


def test_toy_model_objectives(getkey):
    """`ToyScoreConfig(objective="ssm-vr")` trains the MLP by SSM-VR on x + sigma z towards its floor
    -1/2 sum_i 1/(var_i + sigma^2); the default stays DSM; bad names are refused."""
    rng = np.random.default_rng(0)
    var = np.array([1.0, 0.09])
    data = (rng.normal(size=(1024, 2)) * np.sqrt(var) + 1.0).astype(np.float32)
    cfg = ToyScoreConfig(width=32, depth=2, sigma=0.3, objective="ssm-vr", projection="rademacher")
    res = zoo.train(cfg.build(key=getkey()), data, zoo.TrainConfig(steps=300, batch_size=128, learning_rate=5e-3,
                                                                   log_every=100), key=getkey())
    floor = -0.5 * np.sum(1.0 / (var + cfg.sigma**2))
    losses = [row["loss"] for row in res.history]
    assert losses[-1] - floor < 0.25 * (losses[0] - floor), (losses, floor)
    assert ToyScoreConfig.from_dict({"dim": 2}).objective == "dsm"
    with pytest.raises(zoo.ConfigError, match="objective"):
        ToyScoreConfig(objective="ssm_vr")
    with pytest.raises(zoo.ConfigError, match="projection"):
        ToyScoreConfig(projection="sphere")
    with pytest.raises(ValueError, match="projection"):
        stein.ssm_loss(lambda v: -v, jnp.zeros((4, 2)), key=getkey(), projection="sphere")
