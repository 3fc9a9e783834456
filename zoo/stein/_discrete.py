"""Kernel Stein discrepancy for binary and categorical data (Yang, Liu, Rao & Neville, ICML 2018).

On ``{0, .., m-1}^d`` let ``shift_i`` add 1 (mod m) to coordinate ``i`` and ``shift_i^-1`` subtract 1.
The **difference score** of a model ``p`` (known up to its normaliser) is

    s_p(x)_i = 1 - p(shift_i x) / p(x),

and the difference Stein operator ``A_p f(x) = s_p(x) f(x) - Delta* f(x)``,
``Delta*_i f(x) = f(x) - f(shift_i^-1 x)``, has ``E_p[A_p f] = 0``. With the Hamming kernel
``k(x, y) = exp(-H(x, y) / d)`` the discrete Stein kernel is

    kappa_p(x, y) = sum_i (s_p(x)_i - Delta*_{x,i}) (s_p(y)_i - Delta*_{y,i}) k(x, y)

(expanded: ``s.s' k - s.Delta*_y k - s'.Delta*_x k + tr Delta*_x Delta*_y k``), and
``E_{x, y ~ q} kappa_p(x, y) = 0`` iff ``q = p``. For binary data (m = 2) both shifts flip the bit.
The estimators and the wild-bootstrap test are those of the continuous KSD (`zoo.stein.ksd`).

The model is an unnormalised log-probability on one example (a callable, e.g. an EBM's
``model.log_prob``, or a `zoo.samplers.AbstractBinaryTarget` such as an RBM's or Ising target), or
precomputed difference scores (n, ...). Samples (n, ...) hold category indices (any dtype; binary
images as 0./1. floats); they are flattened per example.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..samplers import AbstractBinaryTarget
from ._ksd import (
    AbstractSteinKernel,
    KSDTest,
    bootstrap_test,
    check_options,
    check_samples,
    estimate,
    map_examples,
)


def _log_prob_fn(log_prob: Any):
    if isinstance(log_prob, AbstractBinaryTarget):
        return lambda x: log_prob.log_prob(x, log_prob.init(x))
    if callable(log_prob):
        return log_prob
    raise TypeError(
        f"a discrete model is an unnormalised log-probability callable on one example or an "
        f"AbstractBinaryTarget, got {type(log_prob).__name__}"
    )


def difference_score(log_prob: Any, x: Float[Array, ...], *, num_categories: int = 2) -> Float[Array, ...]:
    """``s_p(x)_i = 1 - p(shift_i x) / p(x)`` at one example, from the unnormalised `log_prob`
    (d + 1 evaluations, vmapped)."""
    fn = _log_prob_fn(log_prob)
    flat = x.reshape(-1)
    d = flat.shape[0]
    m = num_categories

    def shifted(i):
        return fn(flat.at[i].set((flat[i] + 1) % m).reshape(x.shape))

    lp = fn(x)
    lps = jax.vmap(shifted)(jnp.arange(d))
    return (1.0 - jnp.exp(lps - lp)).astype(_float_dtype(x)).reshape(x.shape)


def _float_dtype(x: Array):
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32


class HammingSteinKernel(AbstractSteinKernel):
    """The discrete Stein kernel ``kappa_p`` with the Hamming kernel ``exp(-H / d)`` on ``m`` categories."""

    num_categories: int = eqx.field(static=True)

    def __call__(self, x, y, sx, sy):
        m = self.num_categories
        d = x.shape[0]
        neq = (x != y).astype(sx.dtype)
        k = jnp.exp(-jnp.sum(neq) / d)
        # k(shift_i^-1 x, y) / k and k(x, shift_i^-1 y) / k: one coordinate's mismatch changes.
        ex = jnp.exp(-(((x - 1) % m != y).astype(sx.dtype) - neq) / d)
        ey = jnp.exp(-((x != (y - 1) % m).astype(sx.dtype) - neq) / d)
        return k * jnp.sum(sx * sy - sx * (1.0 - ey) - sy * (1.0 - ex) + (2.0 - ex - ey))


def _check_categories(x: Array, m: int) -> None:
    if m < 2:
        raise ValueError(f"num_categories must be >= 2, got {m}")
    try:
        v = np.asarray(x)
    except jax.errors.TracerArrayConversionError:  # traced by the caller's jit: unchecked
        return
    if v.size and (np.any(v != np.round(v)) or v.min() < 0 or v.max() > m - 1):
        raise ValueError(
            f"discrete samples must be category indices in 0..{m - 1} (binary: 0/1), got values in "
            f"[{v.min()}, {v.max()}]; binarise the data or set num_categories"
        )


def _prepare(x, log_prob, m):
    n = x.shape[0]
    if isinstance(log_prob, jax.Array):
        s = log_prob.astype(_float_dtype(x))
    else:
        s = map_examples(lambda xi: difference_score(log_prob, xi, num_categories=m), x, batch=64)
    return HammingSteinKernel(m), x.reshape(n, -1), s.reshape(n, -1)


def _inputs(samples, log_prob, m):
    x = jnp.asarray(samples)
    check_samples(x)
    _check_categories(x, m)
    if isinstance(log_prob, jax.Array | np.ndarray):
        log_prob = jnp.asarray(log_prob)
        if log_prob.shape != x.shape:
            raise ValueError(
                f"precomputed difference scores have shape {log_prob.shape}, the samples {x.shape}: they must match"
            )
    return x, log_prob


@eqx.filter_jit
def _ksd_jit(x, log_prob, m, estimator, chunk_size):
    sk, flat, s = _prepare(x, log_prob, m)
    return estimate(sk, flat, s, estimator, chunk_size)


def discrete_ksd(
    samples: Array,
    log_prob: Any,
    *,
    num_categories: int = 2,
    estimator: str = "u",
    chunk_size: int | None = None,
) -> Float[Array, ""]:
    """An estimate of the discrete ``KSD^2`` between `samples` (n, ...) and the model `log_prob`
    (callable, `AbstractBinaryTarget`, or precomputed difference scores); `estimator` ``"u"``, ``"v"``
    or ``"linear"`` as in `zoo.stein.ksd`."""
    check_options(estimator=estimator)
    x, log_prob = _inputs(samples, log_prob, num_categories)
    return _ksd_jit(x, log_prob, num_categories, estimator, chunk_size)


@eqx.filter_jit
def _test_jit(x, log_prob, m, num_bootstrap, flip_prob, key, chunk_size):
    sk, flat, s = _prepare(x, log_prob, m)
    return bootstrap_test(sk, flat, s, num_bootstrap, flip_prob, key, chunk_size)


def discrete_ksd_test(
    samples: Array,
    log_prob: Any,
    *,
    num_categories: int = 2,
    num_bootstrap: int = 1000,
    flip_prob: float = 0.5,
    chunk_size: int | None = None,
    key: PRNGKeyArray,
) -> KSDTest:
    """The wild-bootstrap goodness-of-fit test with the discrete KSD (see `zoo.stein.ksd_test`)."""
    check_options(num_bootstrap=num_bootstrap, flip_prob=flip_prob)
    x, log_prob = _inputs(samples, log_prob, num_categories)
    return _test_jit(x, log_prob, num_categories, num_bootstrap, flip_prob, key, chunk_size)


@eqx.filter_jit
def _matrix_jit(x, log_prob, m):
    sk, flat, s = _prepare(x, log_prob, m)
    return jax.vmap(lambda xi, si: jax.vmap(lambda xj, sj: sk(xi, xj, si, sj))(flat, s))(flat, s)


def discrete_stein_kernel_matrix(samples: Array, log_prob: Any, *, num_categories: int = 2) -> Float[Array, "n n"]:
    """The full discrete Stein Gram matrix ``kappa_p(x_i, x_j)`` (small n)."""
    x, log_prob = _inputs(samples, log_prob, num_categories)
    return _matrix_jit(x, log_prob, num_categories)
