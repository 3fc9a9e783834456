"""The kernel Stein discrepancy of continuous models, its estimators and its goodness-of-fit test.

For a model ``p`` known through its score ``s_p = grad log p`` and a radial kernel ``k``, the Langevin
Stein kernel (Liu, Lee & Jordan 2016; Chwialkowski, Strathmann & Gretton 2016; Gorham & Mackey 2017)

    u_p(x, y) = s_p(x).s_p(y) k(x, y) + s_p(x).grad_y k(x, y) + s_p(y).grad_x k(x, y) + tr grad_x grad_y k(x, y)

has ``E_{x ~ p} u_p(x, y) = 0`` for every ``y``, and ``KSD^2(q, p) = E_{x, y ~ q} u_p(x, y)`` is zero
iff ``q = p`` (for a characteristic kernel and smooth, decaying densities). For
``k = psi(||x - y||^2)``, ``r = x - y`` and ``d`` the dimension:

    u_p(x, y) = psi s_p(x).s_p(y) + 2 psi' (s_p(y) - s_p(x)).r - 2 d psi' - 4 ||r||^2 psi''.

Estimators from samples ``x_1..x_n`` of ``q`` (`ksd`): the U-statistic (unbiased,
``sum_{i != j} u_p(x_i, x_j) / (n (n - 1))``), the V-statistic (``sum_{i, j} / n^2``, >= 0, biased
upwards by ``mean_i u_p(x_i, x_i) / n``) and the linear-time estimator (``mean_i u_p(x_{2i-1}, x_{2i})``,
unbiased, O(n) cost, larger variance). `ksd_test` is the goodness-of-fit test of Chwialkowski et al.
(2016): statistic ``n V_n`` against its wild bootstrap ``B_n = sum_ij W_i W_j u_p(x_i, x_j) / n`` with
``W`` a sign process that flips with probability `flip_prob` per step (0.5: i.i.d. Rademacher for
i.i.d. samples; smaller for autocorrelated MCMC output).

The Stein kernel is a single-pair function, vmapped over blocks of rows of the n x n Gram matrix,
which is never held in memory (`chunk_size` rows at a time). Scores come from a callable on one
example (a score, a log-density differentiated by JAX, a model's bound ``score`` method, a fitted
kscore estimator: see `zoo.samplers.as_score`) or as a precomputed (n, ...) array.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..kscore import AbstractDiagonalKernel
from ..samplers import ChainResult, as_score
from ._kernels import IMQ


ESTIMATORS = ("u", "v", "linear")
_GRAM_BUDGET = 1 << 23  # elements of one (rows, n, d) block of pairwise work
_BANDWIDTH_POINTS = 1000  # the median heuristic looks at the first this-many samples
_SCORE_BATCH = 256  # examples per vmapped score evaluation


class AbstractSteinKernel(eqx.Module):
    """A Stein kernel ``u_p(x, y)`` on one pair, given the per-example model quantities ``sx, sy``
    (the score for the Langevin operator, the difference score for the discrete one)."""

    @abc.abstractmethod
    def __call__(
        self, x: Float[Array, " d"], y: Float[Array, " d"], sx: Float[Array, " d"], sy: Float[Array, " d"]
    ) -> Float[Array, ""]:
        """``u_p(x, y)``."""


class LangevinSteinKernel(AbstractSteinKernel):
    """The Langevin Stein kernel of a radial `kernel` at a fixed `bandwidth` (module docstring)."""

    kernel: AbstractDiagonalKernel
    bandwidth: Float[Array, ""]

    def __call__(self, x, y, sx, sy):
        r = x - y
        s = jnp.dot(r, r)
        psi, d1, d2, _ = self.kernel.profile(s, self.bandwidth)
        d = x.shape[0]
        return psi * jnp.dot(sx, sy) + 2.0 * d1 * (jnp.dot(sy, r) - jnp.dot(sx, r)) - 2.0 * d * d1 - 4.0 * s * d2


class KSDTest(eqx.Module):
    """A goodness-of-fit test's outcome: ``statistic`` (``n V_n``), ``p_value``, ``ksd`` (the V-statistic
    ``V_n``, an estimate of KSD^2) and the ``bootstrap`` draws of the statistic under the null."""

    statistic: Float[Array, ""]
    p_value: Float[Array, ""]
    ksd: Float[Array, ""]
    bootstrap: Float[Array, " B"]


# -- shared machinery (continuous and discrete) -------------------------------------------------


def _rows_per_block(n: int, d: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}")
        return min(chunk_size, n)
    return max(1, min(n, _GRAM_BUDGET // max(1, n * d)))


def gram_matvec(
    sk: AbstractSteinKernel,
    x: Float[Array, "n d"],
    s: Float[Array, "n d"],
    w: Float[Array, "n b"],
    *,
    chunk_size: int | None = None,
) -> Float[Array, "n b"]:
    """``H @ w`` for the Stein Gram matrix ``H_ij = u_p(x_i, x_j)``, a block of rows at a time."""
    n, d = x.shape
    rows = _rows_per_block(n, d, chunk_size)
    nb = -(-n // rows)
    pad = nb * rows - n
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    sp = jnp.pad(s, ((0, pad), (0, 0)))

    def row(xi, si):
        return jax.vmap(lambda xj, sj: sk(xi, xj, si, sj))(x, s)

    def block(args):
        xb, sb = args
        return jax.vmap(row)(xb, sb) @ w

    if nb == 1:
        return block((x, s))
    out = jax.lax.map(block, (xp.reshape(nb, rows, d), sp.reshape(nb, rows, d)))
    return out.reshape(nb * rows, w.shape[1])[:n]


def gram_diag(sk: AbstractSteinKernel, x: Float[Array, "n d"], s: Float[Array, "n d"]) -> Float[Array, " n"]:
    """``u_p(x_i, x_i)``."""
    return jax.vmap(sk)(x, x, s, s)


def estimate(
    sk: AbstractSteinKernel,
    x: Float[Array, "n d"],
    s: Float[Array, "n d"],
    estimator: str,
    chunk_size: int | None = None,
) -> Float[Array, ""]:
    """The U-, V- or linear-time estimate of ``KSD^2`` from samples `x` with model quantities `s`."""
    n = x.shape[0]
    if estimator == "linear":
        m = n // 2
        return jnp.mean(jax.vmap(sk)(x[0 : 2 * m : 2], x[1 : 2 * m : 2], s[0 : 2 * m : 2], s[1 : 2 * m : 2]))
    total = jnp.sum(gram_matvec(sk, x, s, jnp.ones((n, 1), x.dtype), chunk_size=chunk_size))
    if estimator == "v":
        return total / (n * n)
    return (total - jnp.sum(gram_diag(sk, x, s))) / (n * (n - 1))


def wild_bootstrap_weights(
    n: int, num: int, flip_prob: float, *, key: PRNGKeyArray, dtype: Any = jnp.float32
) -> Float[Array, "n num"]:
    """`num` sign processes of length `n` (columns): ``W_1`` uniform on {-1, 1}, then ``W_t = -W_{t-1}``
    with probability `flip_prob`, else ``W_{t-1}`` (Chwialkowski et al. 2016; 0.5 gives i.i.d. signs)."""
    if flip_prob == 0.5:
        return jax.random.rademacher(key, (n, num), dtype)
    k0, k1 = jax.random.split(key)
    first = jax.random.rademacher(k0, (1, num), dtype)
    flips = jnp.where(jax.random.uniform(k1, (n - 1, num)) < flip_prob, -1.0, 1.0).astype(dtype)
    return jnp.cumprod(jnp.concatenate([first, flips], axis=0), axis=0)


def bootstrap_test(
    sk: AbstractSteinKernel,
    x: Float[Array, "n d"],
    s: Float[Array, "n d"],
    num_bootstrap: int,
    flip_prob: float,
    key: PRNGKeyArray,
    chunk_size: int | None = None,
) -> KSDTest:
    """The wild-bootstrap test of ``n V_n`` (one pass over the Gram matrix for all draws)."""
    n = x.shape[0]
    w = wild_bootstrap_weights(n, num_bootstrap, flip_prob, key=key, dtype=x.dtype)
    hw = gram_matvec(sk, x, s, jnp.concatenate([jnp.ones((n, 1), x.dtype), w], axis=1), chunk_size=chunk_size)
    stat = jnp.sum(hw[:, 0]) / n
    boot = jnp.sum(w * hw[:, 1:], axis=0) / n
    p = (1.0 + jnp.sum(boot >= stat)) / (1.0 + num_bootstrap)
    return KSDTest(statistic=stat, p_value=p.astype(x.dtype), ksd=stat / n, bootstrap=boot)


def check_options(estimator: str | None = None, num_bootstrap: int | None = None, flip_prob: float | None = None):
    if estimator is not None and estimator not in ESTIMATORS:
        raise ValueError(f"unknown KSD estimator {estimator!r}; use one of {ESTIMATORS}")
    if num_bootstrap is not None and num_bootstrap < 1:
        raise ValueError(f"num_bootstrap must be >= 1, got {num_bootstrap}")
    if flip_prob is not None and not 0 < flip_prob <= 1:
        raise ValueError(f"flip_prob must be in (0, 1] (0.5 for i.i.d. samples), got {flip_prob}")


def check_samples(x: Array, what: str = "samples") -> None:
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"{what} must be a batch (n, ...) with n >= 2, got shape {x.shape}")


# -- the continuous (Langevin) KSD -------------------------------------------------------------


def _scores(score: Any, x: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
    if isinstance(score, jax.Array | np.ndarray):
        s = jnp.asarray(score, x.dtype)
        if s.shape != x.shape:
            raise ValueError(f"precomputed scores have shape {s.shape}, the samples {x.shape}: they must match")
        return s
    return map_examples(as_score(score), x)


def map_examples(fn: Any, x: Array, batch: int = _SCORE_BATCH) -> Array:
    """``vmap(fn)(x)``, `batch` examples at a time when there are more."""
    if x.shape[0] <= batch:
        return jax.vmap(fn)(x)
    return jax.lax.map(fn, x, batch_size=batch)


def _prepare(x: Array, score: Any, kernel: AbstractDiagonalKernel) -> tuple[LangevinSteinKernel, Array, Array]:
    n = x.shape[0]
    s = _scores(score, x).reshape(n, -1)
    flat = x.reshape(n, -1)
    sigma = jax.lax.stop_gradient(kernel.select_bandwidth(flat[:_BANDWIDTH_POINTS]))
    return LangevinSteinKernel(kernel, sigma), flat, s


def _as_float(samples: Any) -> Array:
    x = jnp.asarray(samples)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"continuous KSD needs floating-point samples, got {x.dtype}; for binary or categorical data "
            "use zoo.stein.discrete_ksd"
        )
    check_samples(x)
    return x


def _check_kernel(kernel: Any) -> None:
    if not isinstance(kernel, AbstractDiagonalKernel):
        raise TypeError(
            f"kernel must be a radial scalar kernel (zoo.stein.IMQ(), zoo.stein.RBF(), any "
            f"zoo.kscore.AbstractDiagonalKernel), got {type(kernel).__name__}"
        )


@eqx.filter_jit
def _ksd_jit(x, score, kernel, estimator, chunk_size):
    sk, flat, s = _prepare(x, score, kernel)
    return estimate(sk, flat, s, estimator, chunk_size)


def ksd(
    samples: Float[Array, "n ..."],
    score: Any,
    *,
    kernel: AbstractDiagonalKernel = IMQ(),
    estimator: str = "u",
    chunk_size: int | None = None,
) -> Float[Array, ""]:
    """An estimate of ``KSD^2`` between the distribution of `samples` and the model of `score`.

    - `samples`: (n, ...) draws (flattened per example for the kernel).
    - `score`: a callable on one example (score or log-density) or precomputed scores (n, ...).
    - `kernel`: `IMQ` (c = 1, beta = -1/2, the default), `RBF` (median heuristic unless given), or any
      `zoo.kscore.AbstractDiagonalKernel`; a median-heuristic bandwidth is set on the first 1000 samples.
    - `estimator`: ``"u"`` (unbiased U-statistic), ``"v"`` (V-statistic, >= 0) or ``"linear"``.
    - `chunk_size`: Gram rows per block (default: a memory budget of 2^23 pair-coordinates).
    """
    check_options(estimator=estimator)
    _check_kernel(kernel)
    return _ksd_jit(_as_float(samples), score, kernel, estimator, chunk_size)


@eqx.filter_jit
def _test_jit(x, score, kernel, num_bootstrap, flip_prob, key, chunk_size):
    sk, flat, s = _prepare(x, score, kernel)
    return bootstrap_test(sk, flat, s, num_bootstrap, flip_prob, key, chunk_size)


def ksd_test(
    samples: Float[Array, "n ..."],
    score: Any,
    *,
    kernel: AbstractDiagonalKernel = IMQ(),
    num_bootstrap: int = 1000,
    flip_prob: float = 0.5,
    chunk_size: int | None = None,
    key: PRNGKeyArray,
) -> KSDTest:
    """The KSD goodness-of-fit test (Chwialkowski et al. 2016): does `samples` come from the model of
    `score`? Reject at level alpha when ``p_value <= alpha``. ``flip_prob=0.5`` for independent samples;
    for a Markov chain's autocorrelated draws use a smaller flip probability (the paper's ``a_n``)."""
    check_options(num_bootstrap=num_bootstrap, flip_prob=flip_prob)
    _check_kernel(kernel)
    return _test_jit(_as_float(samples), score, kernel, num_bootstrap, flip_prob, key, chunk_size)


@eqx.filter_jit
def _matrix_jit(x, score, kernel):
    sk, flat, s = _prepare(x, score, kernel)
    return jax.vmap(lambda xi, si: jax.vmap(lambda xj, sj: sk(xi, xj, si, sj))(flat, s))(flat, s)


def stein_kernel_matrix(
    samples: Float[Array, "n ..."], score: Any, *, kernel: AbstractDiagonalKernel = IMQ()
) -> Float[Array, "n n"]:
    """The full Stein Gram matrix ``u_p(x_i, x_j)`` (small n: it is held in memory)."""
    _check_kernel(kernel)
    return _matrix_jit(_as_float(samples), score, kernel)


@eqx.filter_jit
def _trace_jit(xs, scores, kernel, estimator, chunk_size):
    def one(args):
        x, s = args
        sk, flat, sflat = _prepare(x, s, kernel)
        return estimate(sk, flat, sflat, estimator, chunk_size)

    if isinstance(scores, jax.Array):
        return jax.lax.map(one, (xs, scores))
    score_fn = as_score(scores)
    return jax.lax.map(lambda x: one((x, map_examples(score_fn, x))), xs)


def ksd_trace(
    chain: ChainResult | Float[Array, "T n ..."],
    score: Any,
    *,
    kernel: AbstractDiagonalKernel = IMQ(),
    estimator: str = "v",
    chunk_size: int | None = None,
) -> Float[Array, " T"]:
    """KSD^2 of each saved state of a particle system or of a batch of chains: a convergence diagnostic.

    `chain` is a `zoo.samplers.ChainResult` of a run with ``save=True`` (its ``samples``, (T, n, ...):
    n batched chains or n SVGD particles at T saved steps) or such an array; the discrepancy is taken
    across the n at each step. The default estimator is the V-statistic (non-negative: plot
    ``sqrt``); `score` as in `ksd` (a callable, or precomputed scores (T, n, ...)).
    """
    check_options(estimator=estimator)
    _check_kernel(kernel)
    if isinstance(chain, ChainResult):
        if chain.samples is None:
            raise ValueError("the ChainResult holds no samples: run the sampler with save=True (and thin=...)")
        chain = chain.samples
    xs = jnp.asarray(chain)
    if xs.ndim < 3:
        raise ValueError(f"ksd_trace needs states of shape (T, n, ...), got {xs.shape}")
    _as_float(xs[0])
    if isinstance(score, jax.Array | np.ndarray):
        score = jnp.asarray(score, xs.dtype)
        if score.shape != xs.shape:
            raise ValueError(f"precomputed scores have shape {score.shape}, the states {xs.shape}: they must match")
    return _trace_jit(xs, score, kernel, estimator, chunk_size)
