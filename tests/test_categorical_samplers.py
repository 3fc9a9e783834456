"""Exact checks of the categorical / block / Langevin discrete samplers on enumerable spaces.

Every transition matrix is built from the sampler's own proposal and acceptance functions
(`propose`, `conditional`, `proposal_logits`, `offsets`) by enumerating its randomness, on
D = 3 positions with K = 3 values (27 states) or on {0,1}^4; detailed balance, stationarity
and uniqueness are checked to 1e-6, and a deliberately broken variant of each sampler fails
the same check. Long-run frequencies of independent chains pass a chi-square test.
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from discrete_targets import quadratic

from zoo import samplers
from zoo.ebm import IsingTarget


# ----------------------------------------------------------------------------- state spaces


def _values(d, k):
    """All value vectors of {0..K-1}^D, row r = base-K digits of r (position 0 first)."""
    return (np.arange(k**d)[:, None] // k ** np.arange(d)[None, :]) % k


def _states(d, k, binary=False):
    v = _values(d, k)
    return v.astype(np.float32) if binary else np.eye(k, dtype=np.float32)[v]


def _indices(xs, k):
    """State indices of a batch of binary (N, D) or one-hot (N, D, K) states."""
    xs = np.asarray(xs)
    v = xs.astype(int) if xs.ndim == 2 else np.argmax(xs, -1)
    return v @ k ** np.arange(v.shape[1])


def _potts(d, k, key, scale=1.0):
    """A random dense Potts log-density on one-hot (D, K) states, as a plain callable."""
    k1, k2 = jax.random.split(key)
    a = scale * jax.random.normal(k1, (d, d, k, k))
    W = (a + a.transpose(1, 0, 3, 2)) / 2 * (1 - jnp.eye(d))[:, :, None, None]
    b = scale * jax.random.normal(k2, (d, k))
    return lambda x: 0.5 * jnp.einsum("ik,ijkl,jl->", x, W, x) + jnp.sum(b * x)


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


def _fill_diagonal(P):
    P[np.arange(len(P)), np.arange(len(P))] += 1 - P.sum(1)
    return P


# ----------------------------------------------------------------------------- transition matrices


def _gwg_matrix(sampler, target, xs, k):
    """P[x, y] = sum over change sequences of q(seq | x) min(1, alpha), from `sampler.propose`."""
    d = xs.shape[1]
    seqs = jnp.asarray(list(itertools.product(range(d * k), repeat=sampler.num_changes)), jnp.int32)

    @jax.jit
    def row(x):
        state = sampler.init(target, x)

        def one(flat):
            log_alpha, x_new, _ = sampler.propose(target, x, state, flat)
            log_fwd = jnp.sum(state.log_q[flat])
            ok = jnp.isfinite(log_fwd)
            return jnp.where(ok, jnp.exp(jnp.where(ok, log_fwd, 0.0) + jnp.minimum(log_alpha, 0.0)), 0.0), x_new

        return jax.vmap(one)(seqs)

    P = np.zeros((len(xs), len(xs)))
    for a, x in enumerate(xs):
        probs, news = row(jnp.asarray(x))
        np.add.at(P[a], _indices(news, k), np.asarray(probs, np.float64))
    return _fill_diagonal(P)


def _gibbs_matrix(sampler, target, xs, k):
    d = xs.shape[1]

    @jax.jit
    def row(x):
        cache = sampler.init(target, x)
        return jax.vmap(lambda i: sampler.conditional(target, x, cache, i)[:2])(jnp.arange(d))

    P = np.zeros((len(xs), len(xs)))
    for a, x in enumerate(xs):
        logp, ys = row(jnp.asarray(x))
        np.add.at(P[a], _indices(np.asarray(ys).reshape((d * k,) + x.shape), k),
                  np.exp(np.asarray(logp, np.float64)).reshape(-1) / d)
    return P


def _uniform_mh_matrix(sampler, target, xs, k):
    """The radius r is uniform in 1..n; r distinct positions (uniform), new values uniform."""
    d, n = xs.shape[1], sampler.num_changes
    moves = []  # (positions padded with the first, value offsets, probability)
    for r in range(1, n + 1):
        for pos in itertools.permutations(range(d), r):
            for offs in itertools.product(range(1, k), repeat=r):
                prob = 1 / n / np.prod(np.arange(d, d - r, -1)) / (k - 1) ** r
                moves.append((pos + (pos[0],) * (n - r), offs + (1,) * (n - r), prob))
    idx, offs, probs = (np.asarray(m) for m in zip(*moves))

    @jax.jit
    def row(x):
        cache = sampler.init(target, x)

        def one(i, o):
            vals = (jnp.argmax(x[i], -1) + o) % k
            log_alpha, y, _ = sampler.propose(target, x, cache, i, vals.astype(jnp.int32))
            return jnp.exp(jnp.minimum(log_alpha, 0.0)), y

        return jax.vmap(one)(jnp.asarray(idx, jnp.int32), jnp.asarray(offs, jnp.int32))

    P = np.zeros((len(xs), len(xs)))
    for a, x in enumerate(xs):
        acc, ys = row(jnp.asarray(x))
        np.add.at(P[a], _indices(ys, k), probs * np.asarray(acc, np.float64))
    return _fill_diagonal(P)


def _dmala_matrix(sampler, target, xs, k):
    """P[x, y] = q(y | x) min(1, alpha(x, y)) for y != x, with q = prod_i q_i(y_i | x)."""
    ys = jnp.asarray(xs)
    vals = jnp.asarray(_values(xs.shape[1], k), jnp.int32)

    @jax.jit
    def row(x):
        state = sampler.init(target, x)

        def one(v):
            log_alpha, _, _ = sampler.propose(target, x, state, v)
            log_q = jnp.sum(state.log_q[jnp.arange(v.shape[0]), v])
            return jnp.exp(log_q + jnp.minimum(log_alpha, 0.0))

        return jax.vmap(one)(vals)

    P = np.stack([np.asarray(row(x), np.float64) for x in ys])
    P[np.arange(len(P)), np.arange(len(P))] = 0
    return _fill_diagonal(P)


def _block_matrix(sampler, target, xs, k):
    """Average over ordered blocks (uniform), over the auxiliary ball point u (uniform), of the
    restricted conditional around u."""
    d, b = xs.shape[1], sampler.block_size
    blocks = list(itertools.permutations(range(d), b))
    aux = sampler.ball_radius() < b

    @jax.jit
    def row(x, block):
        sampler.init(target, x)
        offsets = sampler.offsets(x)
        us = jax.vmap(lambda o: sampler.apply(x, block, o))(offsets) if aux else x[None]
        return jax.vmap(lambda u: sampler.conditional(target, u, block))(us)

    P = np.zeros((len(xs), len(xs)))
    for a, x in enumerate(xs):
        for block in blocks:
            logp, ys = row(jnp.asarray(x), jnp.asarray(block))
            probs = np.exp(np.asarray(logp, np.float64)) / logp.shape[0] / len(blocks)
            ys = np.asarray(ys)
            np.add.at(P[a], _indices(ys.reshape((-1,) + ys.shape[2:]), k), probs.reshape(-1))
    return P


# ----------------------------------------------------------------------------- exactness


D, K = 3, 3


@pytest.mark.parametrize("num_changes", [1, 2])
def test_categorical_gwg_exact(num_changes, getkey):
    target = _potts(D, K, getkey())
    xs = _states(D, K)
    _check_exact(_gwg_matrix(samplers.CategoricalGWG(num_changes=num_changes), target, xs, K), _pi(target, xs))


def test_categorical_gwg_proposal(getkey):
    """q is the softmax of (grad_ij - <x_i, grad_i>) / 2 over the D (K - 1) changes."""
    target = _potts(D, K, getkey())
    x = jnp.asarray(np.eye(K, dtype=np.float32)[[2, 0, 1]])
    state = samplers.CategoricalGWG().init(target, x)
    g = np.asarray(jax.grad(target)(x), np.float64)
    d = (g - np.sum(g * np.asarray(x), -1, keepdims=True)) / 2
    d[np.asarray(x) > 0] = -np.inf
    expected = d.reshape(-1) - scipy.special.logsumexp(d.reshape(-1))
    np.testing.assert_allclose(np.exp(state.log_q), np.exp(expected), atol=1e-6)
    assert np.all(np.exp(state.log_q).reshape(D, K)[np.asarray(x) > 0] == 0)


def test_categorical_gwg_without_reverse_term_fails(getkey):
    class NoReverse(samplers.CategoricalGWG):
        def propose(self, target, x, state, flat):
            log_alpha, x_new, s = super().propose(target, x, state, flat)
            k = x.shape[1]
            idx, val = flat // k, flat % k
            new = jnp.argmax(x_new[idx], -1)
            rev = idx * k + jnp.where(val == new, jnp.argmax(x[idx], -1), val)
            return log_alpha - jnp.sum(s.log_q[rev]) + jnp.sum(state.log_q[flat]), x_new, s

    target = _potts(D, K, getkey())
    xs = _states(D, K)
    with pytest.raises(AssertionError):
        _check_exact(_gwg_matrix(NoReverse(), target, xs, K), _pi(target, xs))


def test_categorical_gibbs_exact_and_broken(getkey):
    target = _potts(D, K, getkey())
    xs = _states(D, K)
    _check_exact(_gibbs_matrix(samplers.CategoricalGibbs(), target, xs, K), _pi(target, xs))

    class Tempered(samplers.CategoricalGibbs):  # draws from the conditional at temperature 2
        def conditional(self, target, x, cache, i):
            lp, ys, cs = super().conditional(target, x, cache, i)
            return jax.nn.log_softmax(lp / 2), ys, cs

    with pytest.raises(AssertionError):
        _check_exact(_gibbs_matrix(Tempered(), target, xs, K), _pi(target, xs))


@pytest.mark.parametrize("num_changes", [1, 2])
def test_categorical_uniform_mh_exact(num_changes, getkey):
    target = _potts(D, K, getkey())
    xs = _states(D, K)
    P = _uniform_mh_matrix(samplers.CategoricalUniformMH(num_changes=num_changes), target, xs, K)
    _check_exact(P, _pi(target, xs))


def test_categorical_uniform_mh_asymmetric_proposal_fails(getkey):
    """Always stepping a value up by one (mod K) is not symmetric for K = 3: the check rejects it."""
    target = _potts(D, K, getkey())
    xs = _states(D, K)
    sampler = samplers.CategoricalUniformMH()

    @jax.jit
    def row(x):
        cache = sampler.init(target, x)

        def one(i):
            v = (jnp.argmax(x[i]) + 1) % K
            log_alpha, y, _ = sampler.propose(target, x, cache, i[None], v[None].astype(jnp.int32))
            return jnp.exp(jnp.minimum(log_alpha, 0.0)) / D, y

        return jax.vmap(one)(jnp.arange(D))

    P = np.zeros((len(xs), len(xs)))
    for a, x in enumerate(xs):
        acc, ys = row(jnp.asarray(x))
        np.add.at(P[a], _indices(ys, K), np.asarray(acc, np.float64))
    with pytest.raises(AssertionError):
        _check_exact(_fill_diagonal(P), _pi(target, xs))


@pytest.mark.parametrize("binary", [False, True], ids=["onehot", "binary"])
def test_dmala_exact(binary, getkey):
    d, k = (4, 2) if binary else (D, K)
    target = quadratic(d, getkey()) if binary else _potts(d, k, getkey())
    xs = _states(d, k, binary)
    _check_exact(_dmala_matrix(samplers.DMALA(step_size=0.5), target, xs, k), _pi(target, xs))


def test_dmala_without_reverse_term_fails(getkey):
    class NoReverse(samplers.DMALA):  # DULA's proposal with only the target ratio
        def propose(self, target, x, state, values):
            log_alpha, x_new, s = super().propose(target, x, state, values)
            rows = jnp.arange(values.shape[0])
            log_rev = jnp.sum(s.log_q[rows, jnp.argmax(x, -1)])
            return log_alpha - log_rev + jnp.sum(state.log_q[rows, values]), x_new, s

    target = _potts(D, K, getkey())
    xs = _states(D, K)
    with pytest.raises(AssertionError):
        _check_exact(_dmala_matrix(NoReverse(step_size=0.5), target, xs, K), _pi(target, xs))


@pytest.mark.parametrize(
    "sampler,binary",
    [(samplers.HammingBall(block_size=2, radius=1), False), (samplers.HammingBall(block_size=3, radius=1), True),
     (samplers.EnumeratedBlockGibbs(block_size=2), False), (samplers.EnumeratedBlockGibbs(block_size=2), True)],
    ids=["hb-onehot", "hb-binary", "block-onehot", "block-binary"],
)
def test_block_samplers_exact(sampler, binary, getkey):
    d, k = (4, 2) if binary else (D, K)
    target = quadratic(d, getkey()) if binary else _potts(d, k, getkey())
    xs = _states(d, k, binary)
    _check_exact(_block_matrix(sampler, target, xs, k), _pi(target, xs))


def test_hamming_ball_without_auxiliary_point_fails(getkey):
    """Drawing from p restricted to the ball around x itself (no auxiliary u) is not reversible."""

    target = _potts(D, K, getkey())
    xs = _states(D, K)
    sampler = samplers.HammingBall(block_size=2, radius=1)
    blocks = list(itertools.permutations(range(D), 2))
    P = np.zeros((len(xs), len(xs)))
    conditional = jax.jit(lambda x, block: sampler.conditional(target, x, block))
    for a, x in enumerate(xs):
        for block in blocks:
            logp, ys = conditional(jnp.asarray(x), jnp.asarray(block))
            np.add.at(P[a], _indices(ys, K), np.exp(np.asarray(logp, np.float64)) / len(blocks))
    with pytest.raises(AssertionError):
        _check_exact(P, _pi(target, xs))


def test_ball_offsets():
    from zoo.samplers._hamming_ball import ball_offsets, ball_size

    o = ball_offsets(4, 2, 3)
    assert o.shape == (ball_size(4, 2, 3), 4) == (1 + 4 * 2 + 6 * 4, 4)
    assert np.all(o[0] == 0) and np.all((o > 0).sum(1) <= 2)
    assert len({tuple(r) for r in o}) == len(o)
    with pytest.raises(ValueError, match="enumerate"):
        samplers.EnumeratedBlockGibbs(block_size=20).init(lambda x: jnp.sum(x), jnp.zeros(30))


# ----------------------------------------------------------------------------- K = 2 equals binary


@pytest.mark.parametrize("num_changes", [1, 2])
@pytest.mark.parametrize("kind", ["callable", "target"])
def test_categorical_gwg_with_two_values_is_binary_gwg(kind, num_changes, getkey):
    """Same transition matrix (hence the same stationary law) and the same acceptance
    probability of every single change, for a plain callable and a cached target object."""
    d = 4
    a = jax.random.normal(getkey(), (d, d))
    ising = IsingTarget((a + a.T) * (1 - jnp.eye(d)) / 2, jax.random.normal(getkey(), (d,)))
    bin_target = ising if kind == "target" else (lambda x: ising(x))
    cat_target = ising if kind == "target" else (lambda x: ising(x[:, 1]))
    xb, xc = _states(d, 2, binary=True), _states(d, 2)
    Pb = _gwg_matrix_binary(samplers.GWG(num_flips=num_changes), bin_target, xb)
    Pc = _gwg_matrix(samplers.CategoricalGWG(num_changes=num_changes), cat_target, xc, 2)
    np.testing.assert_allclose(Pc, Pb, atol=1e-6)
    _check_exact(Pc, _pi(bin_target, xb))

    gwg, cgwg = samplers.GWG(), samplers.CategoricalGWG()

    @jax.jit
    def accept(x_b, x_c, i):
        la_b = gwg.propose(bin_target, x_b, gwg.init(bin_target, x_b), i[None])[0]
        flat = (2 * i + 1 - x_b[i].astype(jnp.int32))[None]
        la_c = cgwg.propose(cat_target, x_c, cgwg.init(cat_target, x_c), flat)[0]
        return jnp.exp(jnp.minimum(la_b, 0.0)), jnp.exp(jnp.minimum(la_c, 0.0))

    ab, ac = jax.vmap(jax.vmap(accept, (None, None, 0)), (0, 0, None))(jnp.asarray(xb), jnp.asarray(xc), jnp.arange(d))
    assert ab.shape == (len(xb), d) and float(jnp.min(ab)) < 0.99
    np.testing.assert_allclose(ac, ab, atol=1e-6)


def _gwg_matrix_binary(sampler, target, xs):
    d = xs.shape[1]
    seqs = jnp.asarray(list(itertools.product(range(d), repeat=sampler.num_flips)), jnp.int32)

    @jax.jit
    def row(x):
        state = sampler.init(target, x)

        def one(idx):
            log_alpha, x_new, _ = sampler.propose(target, x, state, idx)
            return jnp.exp(jnp.sum(state.log_q[idx]) + jnp.minimum(log_alpha, 0.0)), x_new

        return jax.vmap(one)(seqs)

    P = np.zeros((len(xs), len(xs)))
    for a, x in enumerate(xs):
        probs, news = row(jnp.asarray(x))
        np.add.at(P[a], _indices(news, 2), np.asarray(probs, np.float64))
    return _fill_diagonal(P)


def test_dmala_with_two_values_is_binary_dmala(getkey):
    d = 4
    f = quadratic(d, getkey())
    sampler = samplers.DMALA(step_size=0.5)
    Pb = _dmala_matrix(sampler, f, _states(d, 2, binary=True), 2)
    Pc = _dmala_matrix(sampler, lambda x: f(x[:, 1]), _states(d, 2), 2)
    np.testing.assert_allclose(Pc, Pb, atol=1e-6)


# ----------------------------------------------------------------------------- long-run frequencies


def _chi_square_pvalue(final, pi, k):
    idx = _indices(final, k)
    counts = np.bincount(idx, minlength=len(pi))
    return scipy.stats.chisquare(counts, len(idx) * pi).pvalue


@pytest.mark.parametrize(
    "sampler,binary",
    [(samplers.CategoricalGWG(), False), (samplers.CategoricalGWG(num_changes=2), False),
     (samplers.CategoricalGibbs(), False), (samplers.CategoricalUniformMH(num_changes=2), False),
     (samplers.DMALA(), False), (samplers.DMALA(), True), (samplers.HammingBall(block_size=2), False),
     (samplers.HammingBall(block_size=2), True), (samplers.EnumeratedBlockGibbs(block_size=2), False)],
    ids=["cgwg", "cgwg2", "cgibbs", "cmh2", "dmala", "dmala-bin", "hb", "hb-bin", "block"],
)
def test_empirical_frequencies(sampler, binary, getkey):
    """3000 independent chains, 60 steps from one fixed start: the final states are i.i.d.
    draws whose histogram passes a chi-square test (and rejects a wrong law)."""
    d, k = (4, 2) if binary else (D, K)
    target = quadratic(d, getkey(), 0.7) if binary else _potts(d, k, getkey(), 0.7)
    xs = _states(d, k, binary)
    pi = _pi(target, xs)
    x0 = jnp.broadcast_to(jnp.asarray(xs[0]), (3000,) + xs[0].shape)
    run = eqx.filter_jit(lambda s, x, kk: samplers.run(s, target, x, num_steps=60, key=kk, batched=True).final)
    final = run(sampler, x0, getkey())
    assert _chi_square_pvalue(final, pi, k) > 1e-3
    assert _chi_square_pvalue(final, np.roll(pi, 1), k) < 1e-6


def test_errors(getkey):
    f = _potts(D, K, getkey())
    with pytest.raises(ValueError, match="one-hot"):
        samplers.CategoricalGWG().init(f, jnp.zeros(3))
    with pytest.raises(ValueError, match="num_changes"):
        samplers.CategoricalGWG(num_changes=0)
    with pytest.raises(ValueError, match="step_size"):
        samplers.DMALA(step_size=0.0)
    with pytest.raises(ValueError, match="block_size"):
        samplers.HammingBall(block_size=5).init(f, jnp.zeros((3, 3)))
    with pytest.raises(TypeError, match="categorical sampler"):
        samplers.as_categorical_target(3)
    for name in ("categorical_gwg", "categorical_gibbs", "categorical_uniform_mh", "dmala", "hamming_ball",
                 "enumerated_block_gibbs"):
        assert name in samplers.SAMPLERS
