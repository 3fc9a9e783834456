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
from zoo.dvae import DVAEConfig


# The shared folder sits next to the repository (../shared), as the data does.
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rodeo_golden_estimators.npz"

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
    if name == "arms":
        return ze.ARMS(k)
    if name == "double_cv":
        return ze.DoubleCV(k, alpha=0.8)
    if name == "rodeo":
        return ze.RODEO(k, key=key, alpha=0.7, beta=-0.4)
    if name == "rodeo_taylor":
        return ze.RODEO(k, control="taylor", alpha=0.9, beta=0.3)
    raise AssertionError(name)


CASES = [
    ("reinforce", 1), ("reinforce", 3), ("reinforce_baseline", 2), ("rloo", 2), ("rloo", 3), ("disarm", 2),
    ("disarm", 4), ("arms", 2), ("arms", 3), ("arms", 5),
    ("double_cv", 2), ("double_cv", 3), ("rodeo", 2), ("rodeo", 3), ("rodeo_taylor", 2),
]


def test_exact_gradient_matches_autodiff_of_enumeration():
    exact = ze.exact_gradient(objective, LOGITS)
    auto = jax.grad(lambda lg: ze.exact_expectation(objective, lg))(LOGITS)
    np.testing.assert_allclose(exact, auto, rtol=1e-5, atol=1e-5)
    probs = jnp.exp(ze.bernoulli_log_prob(ze.all_binary(D), LOGITS))
    np.testing.assert_allclose(jnp.sum(probs), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name,k", CASES)
def test_unbiased(name, k, getkey, optimised):
    est = make(name, k, getkey())
    exact = np.asarray(ze.exact_gradient(objective, LOGITS))
    m = 20_000
    draw = jax.jit(jax.vmap(lambda kk: est(objective, LOGITS, key=kk)), compiler_options=optimised)
    draws = draw(jax.random.split(getkey(), m))
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
    batched = eqx.filter_jit(lambda e: e.estimate_batch(f, logits, (shift,), key=key, chunk=3))(est)
    keys = jax.random.split(key, 6)
    ref = jax.jit(jax.vmap(lambda lg, c, kk: est.estimate(lambda z: f(z, c), lg, key=kk)))(logits, shift, keys)
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
    net = ze.SteinControlNet(24, key=getkey())  # 300 inputs per row: the bitonic-sort path
    s = 20.0 * jax.random.normal(getkey(), (300,))
    z = jnp.asarray(z)

    def dense(n):
        return jnp.sum(jnp.sin(n.apply(s, z)))

    def fast(n):
        return jnp.sum(jnp.sin(n.apply_sorted(s, z)))

    fast_out = eqx.filter_jit(lambda n: n.apply_sorted(s, z))(net)
    np.testing.assert_allclose(fast_out, net.apply(s, z), rtol=1e-4, atol=1e-3)
    gd, gf = eqx.filter_jit(eqx.filter_grad(dense))(net), eqx.filter_jit(eqx.filter_grad(fast))(net)
    for a, b in zip(jax.tree_util.tree_leaves(gd), jax.tree_util.tree_leaves(gf)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-2)


def test_bitonic_argsort_sorts_with_a_permutation(getkey):
    from zoo.estimators._rodeo import _bitonic_argsort

    x = jax.random.normal(getkey(), (5, 128))
    x = x.at[:, 100:].set(jnp.inf).at[0, :10].set(0.5)  # padding and ties, as in the control net
    xs, order = jax.jit(_bitonic_argsort)(x)
    np.testing.assert_array_equal(xs, np.sort(np.asarray(x), axis=1))
    np.testing.assert_array_equal(np.take_along_axis(np.asarray(x), np.asarray(order), 1), xs)
    assert all(sorted(row) == list(range(128)) for row in np.asarray(order).tolist())


def _rodeo_dense_reference(est, logits, b, f_b, grad_b):
    """RODEO's estimate written as the official code computes it: every one-bit-flip neighbour
    materialised and the control network run densely on each (notes_rodeo.md, section 1)."""
    k, d = b.shape
    theta = jax.nn.sigmoid(logits)
    w = jnp.where(b > 0.5, 1.0 - theta[None, :], theta[None, :])  # q_i(flipped value)
    eye = jnp.eye(d)

    def controls(kk):  # h, H at b_k and at its D neighbours, averaged over j != k
        ys = jnp.concatenate([b[kk][None, :], jnp.abs(b[kk][None, :] - eye)])  # (1 + D, D)
        outs = [est.net.apply((ys - b[j][None, :]) @ grad_b[j], f_b[j]) for j in range(k) if j != kk]
        return sum(outs) / (k - 1)  # (1 + D, 2)

    terms, a_h = [], []
    for kk in range(k):
        c = controls(kk)
        ys = jnp.abs(b[kk][None, :] - eye)
        a_h.append(jnp.sum(w[kk] * (c[1:, 0] - c[0, 0])) / d)
        field = c[1:, 1:2] * (ys - theta[None, :]) - c[0, 1] * (b[kk] - theta)[None, :]  # H(y)(y - theta) - at b_k
        a_hs = jnp.sum(w[kk][:, None] * field, 0) / d
        terms.append(a_hs)
    a_h = jnp.stack(a_h)
    vr = f_b + est.alpha * a_h
    out = 0.0
    for kk in range(k):
        base = (jnp.sum(vr) - vr[kk]) / (k - 1)
        out = out + (f_b[kk] - base) * (b[kk] - theta) + est.beta * terms[kk]
    return out / k


@pytest.mark.parametrize("k", [2, 3])
def test_rodeo_fast_path_matches_dense_reference(k, getkey):
    """At a training-sized D (the bitonic-sort path) the estimate and the gradients of the variance
    loss (through the custom backward pass) equal the dense official-code formula."""
    d = 64
    est = ze.RODEO(k, key=getkey(), width=24, alpha=0.7, beta=-0.4)
    logits = jax.random.normal(getkey(), (d,))
    b = (jax.random.uniform(getkey(), (k, d)) < 0.5).astype(jnp.float32)
    f_b = 100.0 + 5.0 * jax.random.normal(getkey(), (k,))
    grad_b = jax.random.normal(getkey(), (k, d))
    fast = lambda e: e.combine(logits, b, f_b, grad_b)  # noqa: E731
    dense = lambda e: _rodeo_dense_reference(e, logits, b, f_b, grad_b)  # noqa: E731
    np.testing.assert_allclose(eqx.filter_jit(fast)(est), eqx.filter_jit(dense)(est), rtol=1e-4, atol=1e-4)
    g_fast = eqx.filter_jit(eqx.filter_grad(lambda e: ze.variance_loss(fast(e))))(est)
    g_dense = eqx.filter_jit(eqx.filter_grad(lambda e: ze.variance_loss(dense(e))))(est)
    for a, c in zip(jax.tree_util.tree_leaves(g_fast), jax.tree_util.tree_leaves(g_dense)):
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(c))) + 1e-6)


def test_arms_with_two_samples_is_disarm(getkey):
    """ARMS's correlation correction turns RLOO on an antithetic pair into exactly DisARM."""
    logits = 2.0 * jax.random.normal(getkey(), (D,))
    u = jax.random.uniform(getkey(), (D,))
    theta = jax.nn.sigmoid(logits)
    b = jnp.stack([(u > 1 - theta), (u < theta)]).astype(jnp.float32)  # DisARM's pair
    f_b = jax.vmap(objective)(b)
    np.testing.assert_allclose(ze.ARMS(2).combine(logits, b, f_b), ze.DisARM(2).combine(logits, b, f_b),
                               rtol=1e-5, atol=1e-6)
    # saturated logits (a trained encoder has them): finite, and still DisARM at K = 2
    sat = jnp.array([-90.0, -50.0, -20.0, 20.0, 50.0, 90.0])
    pair, f2 = jnp.stack([jnp.zeros(6), jnp.ones(6)]), jnp.array([0.0, 1.0])
    np.testing.assert_allclose(ze.ARMS(2).combine(sat, pair, f2), ze.DisARM(2).combine(sat, pair, f2), rtol=1e-5)
    assert np.all(np.isfinite(ze.ARMS(3).combine(sat, jnp.concatenate([pair, pair[1:]]), jnp.arange(3.0))))
    samples = ze.ARMS(3).draw(logits, key=getkey())
    assert samples.shape == (3, D) and set(np.unique(np.asarray(samples))) <= {0.0, 1.0}


def test_disarm_needs_even_samples():
    with pytest.raises(zoo.ConfigError, match="use an even K"):
        ze.DisARM(3)
    with pytest.raises(zoo.ConfigError, match="even"):
        ze.make_estimator("disarm", 5)
    with pytest.raises(zoo.ConfigError, match="even"):
        DVAEConfig(estimator="disarm", num_samples=3)
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
    combine = eqx.filter_jit(lambda e, *a: jax.vmap(e.combine, in_axes=(0, 1, 1, 1))(*a))
    out = combine(est, g["eta"], g["b"], g["f_b"], g["grad_b"])
    np.testing.assert_allclose(out, g["eta_grads"], rtol=1e-5, atol=1e-5)
