"""RAISE (Burda, Grosse & Salakhutdinov, 2015): conservative held-out log-likelihood by
reverse annealing, with no estimate of log Z.

The annealing path is AIS's: ``f_k(x) = (1 - b_k) log p0(x) + b_k f(x)``, ``b_0 = 0 < ... <
b_K = 1``, with transitions ``T_k`` that leave ``f_k`` invariant and are reversible (GWG's
Metropolis-Hastings kernel is). Forward AIS draws ``x_0 ~ p0``, ``x_k ~ T_k(. | x_{k-1})``;
the marginal of its last state is ``p_ann``, the annealed approximation of the model.
RAISE runs the chain backwards from a data point: ``x_K = x``, ``x_{k-1} ~ T_k(. | x_k)``
for ``k = K..1``, and weighs the forward path against the reverse one,

    p_hat(x) = p0(x_0) prod_k T_k(x_k | x_{k-1}) / prod_k T_k(x_{k-1} | x_k)
             = p0(x_0) prod_k exp(f_k(x_k) - f_k(x_{k-1}))        (detailed balance)

so ``E[p_hat(x)] = sum_{x_0..x_{K-1}} p0(x_0) prod_k T_k(x_k | x_{k-1}) = p_ann(x)``. (With
``K = 1`` and an exact sampler ``T_1(x' | .) = p_1(x')``: ``E[p_hat] = sum_{x_0} p_1(x_0) p0(x_0)
exp(f(x) - f(x_0)) = p_1(x)``.) Telescoping the sum gives the form computed here, the mirror
image of the AIS weight:

    log p_hat(x) = f(x) - sum_{k=1}^{K} (b_k - b_{k-1}) (f(x_{k-1}) - log p0(x_{k-1})).

By Jensen, ``E[log p_hat(x)] <= log p_ann(x)``: a stochastic lower bound on the annealed
model's log-likelihood, which tends to ``log p(x)`` as K grows. Forward AIS over-estimates
the log-likelihood in expectation (it under-estimates log Z), so the two sandwich it.
Several reverse chains per example are combined by log-mean-exp (still a lower bound, tighter).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import samplers
from .._errors import DataError
from ._ais import AnnealedTarget, annealed_step


class RAISEKernel(samplers.AbstractSampler):
    """One reverse-annealing transition as a sampler, so that `zoo.samplers.run` drives RAISE.

    The chain's position is ``(x, log_p)``, started at a data point and ``log_p = f(x)``; its
    state is ``(cache, t)``, the annealed target's cache and the step index. Step ``t`` runs
    ``k = K - t``: one `sampler` step leaving ``f_{b_k}`` invariant, then subtracts ``(b_k -
    b_{k-1}) (f(x') - log p0(x'))`` at the new point ``x'``. After K steps ``log_p`` is ``log
    p_hat(x)``. The target passed to `run` is the inner (binary) target; `betas` ascend from 0 to 1.
    """

    sampler: samplers.AbstractSampler
    base_logits: Float[Array, " D"]
    betas: Float[Array, " K1"]

    def init(self, target: samplers.AbstractBinaryTarget, x: tuple[Array, Array]):
        at = AnnealedTarget(self.base_logits, target, self.betas[-1])
        return at.init(x[0]), jnp.zeros((), jnp.int32)

    def step(self, target: samplers.AbstractBinaryTarget, x: tuple[Array, Array], state, *, key: PRNGKeyArray):
        (x, log_p), (cache, t) = x, state
        k = self.betas.shape[0] - 1 - t
        b, b_prev = self.betas[k], self.betas[k - 1]
        at = AnnealedTarget(self.base_logits, target, b)
        x, cache, info = annealed_step(self.sampler, at, x, cache, key=key)
        log_p = log_p - (b - b_prev) * (target.log_prob(x, cache[0]) - at.base_log_prob(x))
        return (x, log_p), (cache, t + 1), info


@eqx.filter_jit
def _raise_start(inner: Any, x: Array) -> Array:
    return jax.vmap(lambda xi: inner.log_prob(xi, inner.init(xi)))(x)


def _run_raise(kernel: RAISEKernel, inner: Any, x: Array, num_steps: int, key: PRNGKeyArray) -> Array:
    # called eagerly, samplers.run jits the chains itself (cached) and runs them on a CPU as one group per core
    return samplers.run(kernel, inner, (x, _raise_start(inner, x)), num_steps=num_steps, key=key, batched=True).final[1]


def raise_log_prob(
    target: Any,
    base_logits: Float[Array, " D"],
    data: Float[Array, "N D"],
    *,
    num_steps: int,
    num_chains_per_example: int = 1,
    key: PRNGKeyArray,
    sampler: samplers.AbstractSampler | None = None,
    batch_size: int = 1000,
) -> np.ndarray:
    """RAISE estimates of ``log p(x)`` for every row of `data`, shape ``(N,)`` (nats).

    - `target`: a log-density callable on one flat example or an `AbstractBinaryTarget`
      (e.g. ``model.target()``); `base_logits`: the Bernoulli base ``p0`` (as for `ais`).
    - `num_steps`: K, intermediate distributions (transitions) per reverse chain, on the
      linear schedule ``b_k = k / K``.
    - `num_chains_per_example`: reverse chains per example, combined by log-mean-exp.
    - `sampler`: the transition kernel; it must be reversible (default `GWG()`; also
      `RandomScanGibbs`).
    - `batch_size`: chains run together in one jitted `lax.scan` (bounds memory).
    """
    sampler = samplers.GWG() if sampler is None else sampler
    inner = samplers.as_binary_target(target)
    base_logits = jnp.asarray(base_logits, jnp.float32)
    betas = jnp.linspace(0.0, 1.0, max(num_steps, 1) + 1, dtype=jnp.float32)
    kernel = RAISEKernel(sampler, base_logits, betas)
    return reverse_chains(
        lambda chains, k: _run_raise(kernel, inner, chains, num_steps, k), data, base_logits.shape[0],
        num_steps=num_steps, num_chains_per_example=num_chains_per_example, batch_size=batch_size, key=key,
    )


def reverse_chains(
    run: Any,
    data: Float[Array, "N D"],
    dim: int,
    *,
    num_steps: int,
    num_chains_per_example: int,
    batch_size: int,
    key: PRNGKeyArray,
) -> np.ndarray:
    """The batching shared by the RAISE estimators: checks `data` (``(N, dim)``, binary) and the
    counts, runs ``run(chains, key) -> log p_hat per chain`` on padded batches of
    `num_chains_per_example` copies of each example (one compilation for every batch), and
    combines each example's chains by log-mean-exp. Returns ``(N,)``."""
    x = np.asarray(data, np.float32)
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
        raise DataError(f"RAISE needs data of shape (N, {dim}) (flat binary examples, N >= 1), got {x.shape}")
    if not np.all((x == 0) | (x == 1)):
        raise DataError("RAISE needs binary data (every entry 0 or 1); binarise the examples first")
    if num_steps < 1 or num_chains_per_example < 1 or batch_size < 1:
        raise ValueError(
            f"need num_steps, num_chains_per_example and batch_size >= 1, got {num_steps}, "
            f"{num_chains_per_example}, {batch_size}"
        )
    c = num_chains_per_example
    n = x.shape[0]
    per_batch = min(max(1, batch_size // c), n)
    out = []
    for i, start in enumerate(range(0, n, per_batch)):
        rows = x[start : start + per_batch]
        m = rows.shape[0]
        if m < per_batch:  # pad to the common shape: one compilation for every batch
            rows = np.concatenate([rows, np.repeat(rows[-1:], per_batch - m, axis=0)])
        log_p = run(jnp.asarray(np.repeat(rows, c, axis=0)), jax.random.fold_in(key, i))
        log_p = jax.scipy.special.logsumexp(log_p.reshape(per_batch, c), axis=1) - math.log(c)
        out.append(np.asarray(log_p)[:m])
    return np.concatenate(out)


def raise_log_likelihood(
    target: Any,
    base_logits: Float[Array, " D"],
    data: Float[Array, "N D"],
    *,
    num_steps: int,
    num_chains_per_example: int = 1,
    key: PRNGKeyArray,
    sampler: samplers.AbstractSampler | None = None,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Mean RAISE log-likelihood of `data` (nats per example), a conservative estimate: in
    expectation below the annealed model's (see `raise_log_prob` for the arguments).

    Keys: ``log_likelihood``, ``log_likelihood_std_error`` (standard error of the mean over
    examples: data and estimator noise together; NaN for one example), ``num_steps``,
    ``num_chains_per_example``, ``num_examples``.
    """
    lp = raise_log_prob(
        target, base_logits, data, num_steps=num_steps, num_chains_per_example=num_chains_per_example, key=key,
        sampler=sampler, batch_size=batch_size,
    ).astype(np.float64)
    n = lp.shape[0]
    return {
        "log_likelihood": float(lp.mean()),
        "log_likelihood_std_error": float(lp.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "num_steps": float(num_steps),
        "num_chains_per_example": float(num_chains_per_example),
        "num_examples": float(n),
    }
