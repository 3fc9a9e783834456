"""zoo.estimators: unbiasedness against exact enumeration, variance reduction, and the official
RODEO code's outputs (rodeo_golden_estimators.npz)."""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo
import zoo.estimators as ze


GOLDEN = Path("/work/shared/reference/rodeo_golden_estimators.npz")
if not GOLDEN.exists():  # a copy next to the repository, if the shared folder moves
    GOLDEN = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "rodeo_golden_estimators.npz"

D = 5
W = jnp.array([1.0, -2.0, 0.5, 3.0, -1.0])
A = jnp.array([0.7, 0.2, -1.1, 0.4, 0.9])


def objective(z):
    """A nonlinear f of a (relaxed) binary vector with an offset, like a negative ELBO."""
    return 10.0 + W @ z + 2.0 * jnp.sin(A @ z) + (z[0] * z[3] - z[1]) ** 2


LOGITS = jnp.array([0.3, -1.2, 2.0, -0.4, 0.9])


def make(name, k, key):
    """Estimators with non-trivial control-variate parameters, so their CV terms are exercised."""
    if name == "reinforce":
        return ze.Reinforce(k)
    if name == "reinforce_baseline":
        return ze.ReinforceBaseline(k, baseline=9.0)
    if name == "rloo":
        return ze.RLOO(k)
    if name == "disarm":
        return ze.DisARM(k)
    if name == "double_cv":
        return ze.DoubleCV(k, alpha=0.8)
    if name == "rodeo":
        return ze.RODEO(k, key=key, alpha=0.7, beta=-0.4)
    if name == "rodeo_taylor":
        return ze.RODEO(k, control="taylor", alpha=0.9, beta=0.3)
    raise AssertionError(name)


CASES = [
    ("reinforce", 1), ("reinforce", 3), ("reinforce_baseline", 2), ("rloo", 2), ("rloo", 3), ("disarm", 2),
    ("disarm", 4), ("double_cv", 2), ("double_cv", 3), ("rodeo", 2), ("rodeo", 3), ("rodeo_taylor", 2),
]


def test_exact_gradient_matches_autodiff_of_enumeration():
    exact = ze.exact_gradient(objective, LOGITS)
    auto = jax.grad(lambda lg: ze.exact_expectation(objective, lg))(LOGITS)
    np.testing.assert_allclose(exact, auto, rtol=1e-5, atol=1e-5)
    probs = jnp.exp(ze.bernoulli_log_prob(ze.all_binary(D), LOGITS))
    np.testing.assert_allclose(jnp.sum(probs), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name,k", CASES)
def test_unbiased(name, k, getkey):
    est = make(name, k, getkey())
    exact = np.asarray(ze.exact_gradient(objective, LOGITS))
    m = 20_000
    draws = jax.jit(jax.vmap(lambda kk: est(objective, LOGITS, key=kk)))(jax.random.split(getkey(), m))
    draws = np.asarray(draws, np.float64)
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(m)
    # 5 standard errors per coordinate (D coordinates, 12 cases: a false alarm is ~1e-5 likely).
    assert np.all(np.abs(mean - exact) < 5 * se + 1e-4), (name, k, mean, exact, se)


def test_batched_estimate_equals_vmapped(getkey):
    est = ze.RODEO(2, key=getkey(), alpha=0.5, beta=0.2)
    logits = jax.random.normal(getkey(), (6, D))
    shift = jnp.arange(6.0)
    key = getkey()
    f = lambda z, c: objective(z) + c
    batched = est.estimate_batch(f, logits, (shift,), key=key, chunk=3)
    keys = jax.random.split(key, 6)
    ref = jax.vmap(lambda lg, c, kk: est.estimate(lambda z: f(z, c), lg, key=kk))(logits, shift, keys)
    np.testing.assert_allclose(batched.grad, ref.grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(batched.samples, ref.samples)


def _variance(est, key, m=4000):
    draws = jax.jit(jax.vmap(lambda kk: est(objective, LOGITS, key=kk)))(jax.random.split(key, m))
    return float(jnp.mean(jnp.var(draws, axis=0)))


def _fit(est, key, steps=200, lr=1e-2):
    """Adapt an estimator's own parameters by minimising mean(estimate**2), as in training."""
    opt = optax.adam(lr)
    state = opt.init(eqx.filter(est, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(est, state, k):
        def loss(e):
            g = jax.vmap(lambda kk: e(objective, LOGITS, key=kk))(jax.random.split(k, 64))
            return ze.variance_loss(g)

        grads = eqx.filter_grad(loss)(est)
        updates, state = opt.update(grads, state, eqx.filter(est, eqx.is_inexact_array))
        return eqx.apply_updates(est, updates), state

    for i in range(steps):
        est, state = step(est, state, jax.random.fold_in(key, i))
    return est


@pytest.mark.parametrize("name", ["reinforce_baseline", "rloo", "disarm", "double_cv", "rodeo", "rodeo_taylor"])
def test_control_variates_reduce_variance(name, getkey):
    k = 2
    key = getkey()
    base = _variance(ze.Reinforce(k), key)
    est = {
        "reinforce_baseline": lambda: _fit(ze.ReinforceBaseline(k), getkey(), lr=0.2),
        "rloo": lambda: ze.RLOO(k),
        "disarm": lambda: ze.DisARM(k),
        "double_cv": lambda: _fit(ze.DoubleCV(k), getkey()),
        "rodeo": lambda: _fit(ze.RODEO(k, key=getkey()), getkey()),
        "rodeo_taylor": lambda: _fit(ze.RODEO(k, control="taylor"), getkey()),
    }[name]()
    var = _variance(est, key)
    assert var < 0.5 * base, (name, var, base)


@pytest.mark.slow
def test_learned_rodeo_beats_rloo(getkey):
    """The learned Stein control variates reduce variance below their starting point (RLOO)."""
    key = getkey()
    rloo = _variance(ze.RLOO(2), key, m=8000)
    rodeo = _fit(ze.RODEO(2, key=getkey()), getkey(), steps=300)
    assert _variance(rodeo, key, m=8000) < rloo


@pytest.mark.parametrize("z", [0.0, -250.0])
def test_control_net_piecewise_linear_evaluation_matches_dense(z, getkey):
    net = ze.SteinControlNet(100, key=getkey())
    s = 20.0 * jax.random.normal(getkey(), (300,))
    z = jnp.asarray(z)

    def dense(n):
        return jnp.sum(jnp.sin(n.apply(s, z)))

    def fast(n):
        return jnp.sum(jnp.sin(n.apply_sorted(s, z)))

    np.testing.assert_allclose(net.apply_sorted(s, z), net.apply(s, z), rtol=1e-4, atol=1e-3)
    gd, gf = eqx.filter_grad(dense)(net), eqx.filter_grad(fast)(net)
    for a, b in zip(jax.tree_util.tree_leaves(gd), jax.tree_util.tree_leaves(gf)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-2)


def test_disarm_needs_even_samples():
    with pytest.raises(zoo.ConfigError, match="even"):
        ze.DisARM(3)
    with pytest.raises(zoo.ConfigError):
        ze.make_estimator("nope", 2)


def _golden_cases():
    if not GOLDEN.exists():
        return []
    with np.load(GOLDEN) as d:
        return sorted({k.split("/")[0] for k in d.files})


@pytest.mark.parametrize("case", _golden_cases())
def test_reproduces_official_rodeo_code(case):
    with np.load(GOLDEN) as d:
        g = {k.split("/", 1)[1]: jnp.asarray(d[k]) for k in d.files if k.startswith(case + "/")}
    k = g["u"].shape[0]
    np.testing.assert_array_equal((g["u"] > (1.0 - g["theta"])[None]).astype(jnp.float32), g["b"])
    if case.startswith("reinforce_loo"):
        est = ze.RLOO(k)
    elif case.startswith("double_cv"):
        est = ze.DoubleCV(k, alpha=float(g["alpha"]))
    else:
        est = ze.RODEO(k, key=jax.random.key(0), alpha=float(g["alpha"]), beta=float(g["beta"]))
        names = ("densex_kernel", "densex_bias", "densez_kernel", "densez_bias", "dense2_kernel", "dense2_bias")
        est = eqx.tree_at(
            lambda e: (e.net.wx, e.net.bx, e.net.wz, e.net.bz, e.net.w2, e.net.b2), est, tuple(g[n] for n in names)
        )
    out = jax.vmap(est.combine, in_axes=(0, 1, 1, 1))(g["eta"], g["b"], g["f_b"], g["grad_b"])
    np.testing.assert_allclose(out, g["eta_grads"], rtol=1e-5, atol=1e-5)
