"""NCSNv2's interpolation mode (`AnnealedLangevinInterpolation`, `NCSN.interpolate`, `zoo sample --interpolate`)
against the official ``anneal_Langevin_dynamics_interpolation``, and the sampler rule names (old names still load)."""

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import zoo
from zoo import samplers
from zoo._cli import main
from zoo.ncsn import NCSNConfig, geometric_sigmas


ROOT = Path(__file__).resolve().parents[1]


class _Endpoint(samplers.AbstractSampler):
    """`AnnealedLangevin` driven by the noise of one end of an interpolation row: the interpolation
    step splits its key into the keys of p and q (in that order); this one uses half `which`."""

    inner: samplers.AnnealedLangevin
    which: int = eqx.field(static=True)

    @property
    def num_steps(self):
        return self.inner.num_steps

    def init(self, target, x):
        return self.inner.init(target, x)

    def step(self, target, x, state, *, key):
        return self.inner.step(target, x, state, key=jax.random.split(key)[self.which])


def _mixture_score(sigmas):
    """Exact noise-conditional score of 0.5 N(-2, 0.3^2 I) + 0.5 N(2, 0.3^2 I) (nonlinear in x)."""
    sig = jnp.asarray(sigmas)

    def score(x, i):
        var = 0.09 + sig[i] ** 2
        mu = jnp.array([-2.0, 2.0])[:, None]
        logp = -0.5 * jnp.sum((x[None] - mu) ** 2, axis=1) / var
        r = jax.nn.softmax(logp)
        return jnp.sum(r[:, None] * (mu - x[None]) / var, axis=0)

    return score


def _gaussian_score(mu, s2, sigmas):
    sig = jnp.asarray(sigmas)
    return lambda x, i: -(x - mu) / (s2 + sig[i] ** 2)


def _gaussian_linear_map(sampler, s2):
    """For the score of N(mu, s2 I) noised by sigma_i: x_T - mu = A (x_0 - mu) + sum_t B_t z_t, z_t the
    noise of step t. Returns A and V = sum_t B_t^2 (the variance of x_T given x_0), from the schedule."""
    sig = np.asarray(sampler.sigmas, np.float64)
    a_prod, var = 1.0, 0.0
    for level in range(len(sig)):
        alpha = sampler.step_lr * (sig[level] / sig[-1]) ** 2
        a = 1.0 - alpha / (s2 + sig[level] ** 2)
        for _ in range(sampler.steps_per_level):
            a_prod, var = a * a_prod, a * a * var + 2.0 * alpha
    if sampler.denoise:
        a = 1.0 - sig[-1] ** 2 / (s2 + sig[-1] ** 2)
        a_prod, var = a * a_prod, a * a * var
    return a_prod, var


def _run(sampler, score, x0, key):
    return jax.jit(lambda x, k: samplers.run(sampler, score, x, num_steps=sampler.num_steps, key=k,
                                             batched=True).final)(x0, key)


@pytest.mark.parametrize("denoise", [False, True])
def test_row_ends_are_annealed_langevin_chains(denoise, getkey):
    """Image 0 of a row is the annealed Langevin chain driven by p, image K-1 the one driven by q
    (cos(pi/2) ~ -4e-8 in float32), both from the row's start: two independent samplers."""
    sigmas = geometric_sigmas(3.0, 0.1, 4)
    kw = dict(steps_per_level=6, step_lr=5e-3, denoise=denoise)
    interp = samplers.AnnealedLangevinInterpolation.v1(sigmas, **kw)
    plain = samplers.AnnealedLangevin.v1(sigmas, **kw)
    score = _mixture_score(sigmas)
    start, key = jax.random.normal(getkey(), (3, 2)), getkey()
    first = np.asarray(_run(_Endpoint(plain, 0), score, start, key))
    last = np.asarray(_run(_Endpoint(plain, 1), score, start, key))
    for k in (2, 5):
        row = np.asarray(_run(interp, score, jnp.broadcast_to(start[:, None], (3, k, 2)), key))
        assert row.shape == (3, k, 2)
        np.testing.assert_allclose(row[:, 0], first, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(row[:, -1], last, rtol=1e-5, atol=1e-5)
        assert np.abs(first - last).max() > 0.1  # independent noises: the ends differ
        if k > 2:  # the middle images are neither end
            assert not np.allclose(row[:, 1], first, atol=1e-3) and not np.allclose(row[:, 1], last, atol=1e-3)


def test_gaussian_rows_lie_on_the_official_quarter_circle(getkey):
    """With a Gaussian target the chain is linear in its start and noise: image j of a row is
    c + cos(theta_j) P + sin(theta_j) Q, c = mu + A (x_0 - mu) the same for the whole row (one shared start),
    theta_j = j (pi/2) / (K - 1) (torch.linspace(0, pi/2, K)) and P, Q the ends' noise terms."""
    sigmas, mu, s2 = geometric_sigmas(2.0, 0.05, 5), 0.7, 0.25
    sampler = samplers.AnnealedLangevinInterpolation.v1(sigmas, steps_per_level=8, step_lr=2e-3, denoise=False)
    n_pairs, k = 4, 7
    start = jax.random.uniform(getkey(), (n_pairs, 6))
    x0 = jnp.broadcast_to(start[:, None], (n_pairs, k, 6))
    out = np.asarray(_run(sampler, _gaussian_score(mu, s2, sigmas), x0, getkey()), np.float64)
    a, _ = _gaussian_linear_map(sampler, s2)
    c = mu + a * (np.asarray(start, np.float64) - mu)
    p, q = out[:, 0] - c, out[:, -1] - c
    theta = np.linspace(0.0, np.pi / 2, k)
    want = c[:, None] + np.cos(theta)[None, :, None] * p[:, None] + np.sin(theta)[None, :, None] * q[:, None]
    np.testing.assert_allclose(out, want, atol=2e-5)
    assert np.abs(p).mean() > 0.05  # the noise terms are not negligible: a linear blend (1-t, t) would fail
    t = (theta / theta[-1])[None, :, None]
    assert np.abs(out - (c[:, None] + (1 - t) * p[:, None] + t * q[:, None])).max() > 1e-2


def test_gaussian_moments_closed_form(getkey):
    """Over many rows: each image ~ N(mu + A (x_0 - mu), V) (every image is an exact annealed Langevin
    chain) and images i, j of a row have correlation cos(theta_i - theta_j): 0 between the ends."""
    sigmas, mu, s2 = geometric_sigmas(2.0, 0.05, 5), -0.5, 0.3
    sampler = samplers.AnnealedLangevinInterpolation.v1(sigmas, steps_per_level=20, step_lr=2e-3, denoise=True)
    n, k = 4000, 3
    x0 = jnp.full((n, k, 2), 0.25)
    out = np.asarray(_run(sampler, _gaussian_score(mu, s2, sigmas), x0, getkey()), np.float64)
    a, v = _gaussian_linear_map(sampler, s2)
    mean = mu + a * (0.25 - mu)
    assert v > 0.1
    # standard error of the mean sqrt(V / 8000) ~ 0.006, of the variance ~ V * sqrt(2 / 8000) = V * 0.016
    np.testing.assert_allclose(out.mean(axis=(0, 2)), mean, atol=0.03)
    np.testing.assert_allclose(out.var(axis=(0, 2)), v, rtol=0.07)
    dev = (out - mean).transpose(1, 0, 2).reshape(k, -1)
    corr = np.corrcoef(dev)
    np.testing.assert_allclose(corr[0, 2], 0.0, atol=0.04)
    np.testing.assert_allclose([corr[0, 1], corr[1, 2]], np.cos(np.pi / 4), atol=0.04)


def _tiny(**kw):
    cfg = NCSNConfig(image_size=8, channels=3, ngf=4, variant="ncsnv2", num_scales=3, steps_per_level=2,
                     step_lr=1e-3, denoise=True, **kw)
    return cfg.build(key=jax.random.key(3))


def test_model_interpolate(getkey):
    model = _tiny()
    fn = eqx.filter_jit(lambda m, k: m.interpolate(2, 4, key=k))
    key = getkey()
    out = np.asarray(fn(model, key))
    assert out.shape == (2, 4, 8, 8, 3) and np.isfinite(out).all()
    np.testing.assert_array_equal(np.asarray(fn(model, key)), out)  # deterministic by key
    assert not np.allclose(np.asarray(fn(model, getkey())), out)
    # The official interpolation has no denoising step; otherwise the config's sampler settings.
    sampler = model.interpolation_sampler()
    default = model.default_sampler()
    assert isinstance(sampler, samplers.AnnealedLangevinInterpolation) and not sampler.denoise and default.denoise
    assert (sampler.sigmas, sampler.steps_per_level, sampler.step_lr) == (
        default.sigmas, default.steps_per_level, default.step_lr)
    # Column 0 is the annealed Langevin chain from the row's U[0, 1] start driven by p.
    k0, k1 = jax.random.split(key)
    start = jax.random.uniform(k0, (2, 1, 8, 8, 3))[:, 0]
    plain = samplers.AnnealedLangevin.v1(model.sigmas, steps_per_level=2, step_lr=1e-3, denoise=False)
    first = _run(_Endpoint(plain, 0), model.score, start, k1)
    np.testing.assert_allclose(out[:, 0], np.asarray(first), rtol=1e-4, atol=1e-5)
    # Technique 4 configs interpolate with the solved step_lr.
    t4 = zoo.replace_config(model, sampling_rule="technique4")
    assert t4.interpolation_sampler().step_lr == samplers.AnnealedLangevin.v2(model.sigmas, steps_per_level=2).step_lr


def test_model_interpolate_rejects_bad_input(getkey):
    model = _tiny()
    with pytest.raises(zoo.ConfigError, match="n_interpolations >= 2"):
        model.interpolate(2, 1, key=getkey())
    with pytest.raises(zoo.ConfigError, match="AnnealedLangevinInterpolation"):
        model.interpolate(2, 3, sampler=model.default_sampler(), key=getkey())
    assert samplers.SAMPLERS.get("annealed_langevin_interpolation") is samplers.AnnealedLangevinInterpolation


@pytest.mark.slow
def test_cli_sample_interpolate(tmp_path, capsys):
    path = zoo.save(_tiny(), tmp_path / "tiny")
    png, npz = tmp_path / "rows.png", tmp_path / "rows.npz"
    rc = main(["sample", str(path), "--interpolate", "3", "-n", "2", "-o", str(png), "--npz", str(npz),
               "--set", "steps_per_level=1"])
    assert rc == 0, capsys.readouterr().err
    assert np.load(npz)["samples"].shape == (2, 3, 8, 8, 3)
    with Image.open(png) as image:
        assert image.size == (3 * 10 + 2, 2 * 10 + 2)  # one row per pair, K images per row
    assert main(["sample", "toy-gmm8", "--interpolate", "3", "-o", str(png)]) == 2
    assert "no interpolation mode" in capsys.readouterr().err


# -- the sampler rule names -----------------------------------------------------------------------------------------


def test_sampling_rule_names_and_old_aliases():
    assert NCSNConfig().sampling_rule == "step-lr"
    assert NCSNConfig(sampling_rule="v1").sampling_rule == "step-lr"
    assert NCSNConfig(sampling_rule="v2").sampling_rule == "technique4"
    old = NCSNConfig(sampling_rule="technique4").to_dict()
    assert old["sampling_rule"] == "technique4"
    assert NCSNConfig.from_dict({**old, "sampling_rule": "v2"}) == NCSNConfig(sampling_rule="technique4")
    with pytest.raises(zoo.ConfigError, match="'step-lr', 'technique4'"):
        NCSNConfig(sampling_rule="v3")
    for name in ("ncsnv2/cifar10", "ncsnv2/ffhq256"):  # the official configs give step_lr
        assert zoo.get_preset(name).config.sampling_rule == "step-lr"


def _bundled_ncsn():
    out = []
    for folder in sorted((ROOT / "checkpoints").iterdir()):
        meta = folder / "config.json"
        if meta.is_file() and json.loads(meta.read_text())["family"] == "ncsn":
            out.append(folder)
    return out


def _old_meaning(rule, sigmas, steps_per_level, step_lr, denoise):
    """The sampler a config's rule built before the rename ("v1": the given step_lr, "v2": Technique 4)."""
    if rule in ("v1", "step-lr"):
        return samplers.AnnealedLangevin.v1(sigmas, steps_per_level=steps_per_level, step_lr=step_lr, denoise=denoise)
    return samplers.AnnealedLangevin.v2(sigmas, steps_per_level=steps_per_level, denoise=denoise)


def test_bundled_checkpoints_load_with_the_sampler_of_before():
    """Every bundled NCSN checkpoint (config.json with the old rule names) loads and builds the sampler the old
    names meant: an equal (and equally hashed) sampler object, hence the same chains from the same weights and key."""
    folders = _bundled_ncsn()
    assert folders, "no bundled NCSN checkpoint found under checkpoints/"
    for folder in folders:
        raw = json.loads((folder / "config.json").read_text())["config"]
        model = zoo.load(folder)
        assert model.config.sampling_rule == {"v1": "step-lr", "v2": "technique4"}.get(raw["sampling_rule"],
                                                                                        raw["sampling_rule"])
        before = _old_meaning(raw["sampling_rule"], model.sigmas, raw["steps_per_level"], raw["step_lr"],
                              raw["denoise"])
        assert model.default_sampler() == before and hash(model.default_sampler()) == hash(before)


@pytest.mark.slow
@pytest.mark.parametrize("folder", _bundled_ncsn(), ids=lambda f: f.name)
def test_bundled_checkpoints_sample_as_before(folder, getkey):
    """A short run (one step per level) of each bundled checkpoint's sampler: the config's vs the old meaning."""
    model = zoo.replace_config(zoo.load(folder), steps_per_level=1)
    raw = json.loads((folder / "config.json").read_text())["config"]
    before = _old_meaning(raw["sampling_rule"], model.sigmas, 1, raw["step_lr"], raw["denoise"])
    key = getkey()
    sample = eqx.filter_jit(lambda m, s, k: m.sample(2, sampler=s, key=k))
    np.testing.assert_array_equal(np.asarray(sample(model, None, key)), np.asarray(sample(model, before, key)))
