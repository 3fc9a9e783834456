"""Exact checks of the path auxiliary sampler (`zoo.samplers.PathAuxiliary`) on enumerable spaces.

The transition matrix is built from the sampler's own `propose` and `path_log_prob` by
enumerating every path (and every length, with `random_length`) on {0,1}^4 or on D = 3
positions with K = 3 values (27 states): detailed balance, stationarity and uniqueness to 1e-6,
for plain callables and for cached targets (whose caches move by the net change of a path that
may undo itself). Variants with the reverse-path term dropped, or with the reverse path scored
under the forward point's gradient, fail the same check. With one change per path the sampler
is GWG: same proposal, same acceptance of every change from every state. Long-run frequencies
of independent chains pass a chi-square test that rejects a wrong law.
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from discrete_targets import quadratic

from zoo import samplers
from zoo.ebm import DensePottsTarget, IsingTarget, RBMTarget
from zoo.samplers._path_auxiliary import change_log_probs


D, K = 3, 3  # one-hot tests; binary tests use {0,1}^4


def _states(d, k, binary):
    v = (np.arange(k**d)[:, None] // k ** np.arange(d)[None, :]) % k  # row r: base-K digits of r
    return v.astype(np.float32) if binary else np.eye(k, dtype=np.float32)[v]


def _indices(xs, k):
    xs = np.asarray(xs)
    v = xs.astype(int) if xs.ndim == 2 else np.argmax(xs, -1)
    return v @ k ** np.arange(v.shape[1])


def _target(binary, kind, key, scale=1.0):
    """A random Ising-like (binary, d = 4) or dense Potts (one-hot, D x K) log-density: a plain
    callable or the equivalent cached target object."""
    k1, k2 = jax.random.split(key)
    if binary:
        if kind == "callable":
            return quadratic(4, key, scale)
        a = scale * jax.random.normal(k1, (4, 4))
        return IsingTarget((a + a.T) / 2 * (1 - jnp.eye(4)), scale * jax.random.normal(k2, (4,)))
    a = scale * jax.random.normal(k1, (D, D, K, K))
    W = (a + a.transpose(1, 0, 3, 2)) / 2 * (1 - jnp.eye(D))[:, :, None, None]
    b = scale * jax.random.normal(k2, (D, K))
    potts = DensePottsTarget(W, b)
    return potts if kind == "target" else (lambda x: potts(x))


def _pi(target, xs):
    t = samplers.as_discrete_target(target)
    logp = np.asarray(jax.vmap(lambda x: t.log_prob(x, t.init(x)))(jnp.asarray(xs)), np.float64)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def _check_exact(P, pi):
    assert np.all(P >= -1e-6) and np.allclose(P.sum(1), 1, atol=1e-6)
    flow = pi[:, None] * P
    np.testing.assert_allclose(flow, flow.T, atol=1e-6)  # detailed balance
    np.testing.assert_allclose(pi @ P, pi, atol=1e-6)  # stationarity
    w, v = np.linalg.eig(P.T)  # ... and pi is the only stationary law (irreducible)
    assert np.sum(np.abs(w - 1) < 1e-6) == 1
    stat = np.real(v[:, np.argmin(np.abs(w - 1))])
    np.testing.assert_allclose(stat / stat.sum(), pi, atol=1e-6)


def _pas_matrix(sampler, target, xs, k):
    """P[x, y] = E_L sum over paths of length L of q_x(path) min(1, alpha), from `propose` and
    `path_log_prob`; L uniform on 1..2 path_length - 1 with `random_length`."""
    binary = xs.ndim == 2
    num_changes = xs.shape[1] * (1 if binary else k)
    n = sampler.max_length()
    lengths = range(1, n + 1) if sampler.random_length else [n]

    @jax.jit
    def row(x, seqs, active):
        state = sampler.init(target, x)

        def one(seq):
            log_alpha, y, _ = sampler.propose(target, x, state, seq, active)
            log_fwd = sampler.path_log_prob(x, state, seq, active)
            ok = jnp.isfinite(log_fwd)
            return jnp.where(ok, jnp.exp(jnp.where(ok, log_fwd, 0.0) + jnp.minimum(log_alpha, 0.0)), 0.0), y

        return jax.vmap(one)(seqs)

    P = np.zeros((len(xs), len(xs)))
    for length in lengths:
        seqs = np.zeros((num_changes**length, n), np.int32)
        seqs[:, :length] = list(itertools.product(range(num_changes), repeat=length))
        active = jnp.arange(n) < length
        for a, x in enumerate(xs):
            probs, ys = row(jnp.asarray(x), jnp.asarray(seqs), active)
            np.add.at(P[a], _indices(ys, k), np.asarray(probs, np.float64) / len(lengths))
    P[np.arange(len(P)), np.arange(len(P))] += 1 - P.sum(1)
    return P


@pytest.mark.parametrize(
    "binary,path_length,random_length,kind",
    [(True, 3, False, "target"), pytest.param(True, 2, True, "callable", marks=pytest.mark.slow),
     (False, 2, False, "target"), pytest.param(False, 2, True, "callable", marks=pytest.mark.slow)],
    ids=["bin-L3-target", "bin-L1to3-callable", "onehot-L2-target", "onehot-L1to3-callable"],
)
def test_exact(binary, path_length, random_length, kind, getkey):
    """Fixed and random lengths (L in {1, 2, 3}), cached targets and plain callables."""
    target = _target(binary, kind, getkey())
    k = 2 if binary else K
    xs = _states(4 if binary else D, k, binary)
    sampler = samplers.PathAuxiliary(path_length=path_length, random_length=random_length)
    _check_exact(_pas_matrix(sampler, target, xs, k), _pi(target, xs))


class NoReverse(samplers.PathAuxiliary):
    """The reverse-path term dropped: ``log alpha = f(y) - f(x) - log q_x(path)``."""

    def reverse_log_prob(self, x, path, table_y, log_q_y):
        return jnp.zeros((), table_y.dtype)


class ForwardGradient(samplers.PathAuxiliary):
    """The reverse path scored under the approximation at ``x`` instead of ``y``."""

    def _propose(self, target, x, state, path):
        log_alpha, y, s = super()._propose(target, x, state, path)
        table_x = state.grad / self.temperature
        right = self.reverse_log_prob(x, path, s.grad / self.temperature, s.log_q)
        wrong = self.reverse_log_prob(x, path, table_x, change_log_probs(path.final, table_x))
        return log_alpha - right + wrong, y, s


@pytest.mark.parametrize("broken", [NoReverse, ForwardGradient])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "onehot"])
def test_broken_variants_fail(broken, binary, getkey):
    target = _target(binary, "callable", getkey())
    k = 2 if binary else K
    xs = _states(4 if binary else D, k, binary)
    sampler = broken(path_length=3 if binary else 2)
    with pytest.raises(AssertionError):
        _check_exact(_pas_matrix(sampler, target, xs, k), _pi(target, xs))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "onehot"])
def test_one_change_is_gwg(binary, getkey):
    """``path_length=1``: the proposal probability and the acceptance probability of every
    single change from every state are GWG's (`GWG` / `CategoricalGWG`, temperature 2)."""
    target = _target(binary, "callable", getkey())
    k = 2 if binary else K
    xs = jnp.asarray(_states(4 if binary else D, k, binary))
    pas = samplers.PathAuxiliary()
    gwg = samplers.GWG() if binary else samplers.CategoricalGWG()
    num_changes = xs.shape[1] * (1 if binary else k)
    active = jnp.ones((1,), bool)

    @jax.jit
    def compare(x, c):
        s_p, s_g = pas.init(target, x), gwg.init(target, x)
        seq = c[None]
        la_p = pas.propose(target, x, s_p, seq, active)[0]
        la_g = gwg.propose(target, x, s_g, seq)[0]
        q_p, q_g = jnp.exp(pas.path_log_prob(x, s_p, seq, active)), jnp.exp(s_g.log_q[c])
        ok = q_g > 0  # one-hot: the current values are no change (probability 0 for both)
        acc = lambda la: jnp.where(ok, jnp.exp(jnp.minimum(jnp.where(ok, la, 0.0), 0.0)), 0.0)
        return q_p, q_g, acc(la_p), acc(la_g)

    q_p, q_g, a_p, a_g = jax.vmap(jax.vmap(compare, (None, 0)), (0, None))(xs, jnp.arange(num_changes))
    np.testing.assert_allclose(q_p, q_g, atol=1e-6)
    np.testing.assert_allclose(a_p, a_g, atol=1e-6)
    assert float(jnp.min(jnp.where(q_g > 0, a_g, 1.0))) < 0.99  # the acceptance is not trivially 1


def _chi_square_pvalue(final, pi, k):
    counts = np.bincount(_indices(final, k), minlength=len(pi))
    return scipy.stats.chisquare(counts, counts.sum() * pi).pvalue


@pytest.mark.parametrize(
    "sampler,binary",
    [(samplers.PathAuxiliary(path_length=3), True),
     pytest.param(samplers.PathAuxiliary(path_length=2, random_length=True), False, marks=pytest.mark.slow)],
    ids=["bin-L3", "onehot-L1to3"],
)
def test_empirical_frequencies(sampler, binary, getkey):
    """3000 independent chains, 60 steps from one fixed start (cached targets): the final states
    are i.i.d. draws whose histogram passes a chi-square test (and rejects a wrong law)."""
    target = _target(binary, "target", getkey(), 0.7)
    k = 2 if binary else K
    xs = _states(4 if binary else D, k, binary)
    pi = _pi(target, xs)
    x0 = jnp.broadcast_to(jnp.asarray(xs[0]), (3000,) + xs[0].shape)
    run = eqx.filter_jit(lambda s, x, kk: samplers.run(s, target, x, num_steps=60, key=kk, batched=True).final)
    final = run(sampler, x0, getkey())
    assert _chi_square_pvalue(final, pi, k) > 1e-3
    assert _chi_square_pvalue(final, np.roll(pi, 1), k) < 1e-6


def test_empirical_frequencies_broken_variant_fails(getkey):
    """The same chi-square test rejects the sampler with the reverse-path term dropped."""
    target = _target(True, "target", getkey(), 0.7)
    xs = _states(4, 2, binary=True)
    x0 = jnp.broadcast_to(jnp.asarray(xs[0]), (3000, 4))
    run = eqx.filter_jit(lambda s, x, kk: samplers.run(s, target, x, num_steps=60, key=kk, batched=True).final)
    final = run(NoReverse(path_length=3), x0, getkey())
    assert _chi_square_pvalue(final, _pi(target, xs), 2) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("binary", [True, False], ids=["rbm", "potts"])
def test_cache_follows_net_change(binary, getkey):
    """After many steps of paths that undo and redo changes, the cached state (RBM hidden
    pre-activations / Potts local fields) and gradient equal a recomputation at the chain's point."""
    k1, k2, k3 = jax.random.split(getkey(), 3)
    if binary:
        d = 12
        target = RBMTarget(jax.random.normal(k1, (d, 5)), jax.random.normal(k2, (d,)), jax.random.normal(k3, (5,)))
        x = jnp.zeros((d,))
    else:
        target = _target(False, "target", k1)
        x = jax.nn.one_hot(jnp.zeros((D,), jnp.int32), K)
    sampler = samplers.PathAuxiliary(path_length=3, random_length=True)

    @jax.jit
    def chain(x, key):
        def body(carry, kk):
            x, s = carry
            x, s, info = sampler.step(target, x, s, key=kk)
            return (x, s), info["hops"]

        return jax.lax.scan(body, (x, sampler.init(target, x)), jax.random.split(key, 300))

    (x_end, s_end), hops = chain(x, getkey())
    ref = sampler.init(target, x_end)
    assert float(jnp.sum(hops)) > 30  # the chain moved
    np.testing.assert_allclose(s_end.cache, ref.cache, atol=1e-4)
    np.testing.assert_allclose(s_end.grad, ref.grad, atol=1e-4)


def test_errors(getkey):
    f = quadratic(4, getkey())
    with pytest.raises(ValueError, match="path_length"):
        samplers.PathAuxiliary(path_length=0)
    with pytest.raises(ValueError, match="temperature"):
        samplers.PathAuxiliary(temperature=0.0)
    with pytest.raises(ValueError, match="parity"):  # fixed even L on two values cannot mix
        samplers.PathAuxiliary(path_length=2).init(f, jnp.zeros(4))
    with pytest.raises(ValueError, match="parity"):
        samplers.PathAuxiliary(path_length=4).init(lambda x: jnp.sum(x), jnp.zeros((4, 2)))
    samplers.PathAuxiliary(path_length=2, random_length=True).init(f, jnp.zeros(4))
    samplers.PathAuxiliary(path_length=2).init(lambda x: jnp.sum(x), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="one-hot"):
        samplers.PathAuxiliary().init(f, jnp.zeros((2, 4, 2)))
    assert samplers.SAMPLERS.get("path_auxiliary") is samplers.PathAuxiliary
