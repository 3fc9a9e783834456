"""Annealed importance sampling with GWG transitions, for log Z and held-out log-likelihood.

Intermediate targets ``f_beta(x) = (1 - beta) log p0(x) + beta f(x)`` between a
normalised base ``p0`` and the unnormalised target ``f``: on binary states ``(D,)`` a product
of Bernoullis (logits ``base_logits`` ``(D,)``, e.g. the data mean), on one-hot states
``(D, K)`` a product of categoricals (logits ``base_logits`` ``(D, K)``, with categorical GWG
transitions by default), on a linear schedule ``beta_t = t / T``. Each chain starts
from ``p0`` with log-weight 0 and, at every step, adds ``(beta_t - beta_{t-1}) (f(x) -
log p0(x))`` and then takes one MCMC step leaving ``f_{beta_t}`` invariant. ``log Z`` is
estimated by the log-mean-exp of the final log-weights (unbiased for ``Z``); the spread
over chains is reported through the standard deviation of the log-weights and a bootstrap
standard error of the estimate. The same path run backwards from data points is RAISE
(`_raise.py`), a conservative log-likelihood estimate that needs no log Z.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import samplers


class AnnealedTarget(samplers.AbstractBinaryTarget, samplers.AbstractCategoricalTarget):
    """``(1 - beta) log p0(x) + beta f(x)``; cache: the inner target's cache and gradient,
    so changing `beta` costs nothing. Binary (``base_logits`` ``(D,)``, Bernoulli base, `flip`)
    or categorical (``base_logits`` ``(D, K)``, a categorical per position, `change`)."""

    base_logits: Float[Array, " D"] | Float[Array, "D K"]
    inner: samplers.AbstractDiscreteTarget
    beta: Float[Array, ""]

    def _base_grad(self) -> Array:
        """``grad log p0``: the logits (binary) or the log-probabilities (categorical)."""
        if self.base_logits.ndim == 2:
            return jax.nn.log_softmax(self.base_logits, axis=-1)
        return self.base_logits

    def base_log_prob(self, x: Array) -> Float[Array, ""]:
        if self.base_logits.ndim == 2:
            return jnp.sum(x * self._base_grad())
        return jnp.sum(x * self.base_logits - jax.nn.softplus(self.base_logits))

    def init(self, x):
        c = self.inner.init(x)
        return c, self.inner.grad(x, c)

    def log_prob(self, x, cache):
        return (1 - self.beta) * self.base_log_prob(x) + self.beta * self.inner.log_prob(x, cache[0])

    def grad(self, x, cache):
        return (1 - self.beta) * self._base_grad() + self.beta * cache[1]

    def flip(self, x, cache, idx: Int[Array, " n"], first: Array):
        x_new, c, g = self.inner.flip_and_grad(x, cache[0], idx, first)
        return x_new, (c, g)

    def change(self, x, cache, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array):
        x_new, c, g = self.inner.change_and_grad(x, cache[0], idx, values, first)
        return x_new, (c, g)


class AISResult(eqx.Module):
    """``log_z`` (log-mean-exp of the weights), ``log_weights`` per chain, final ``samples``."""

    log_z: Float[Array, ""]
    log_weights: Float[Array, " chains"]
    samples: Float[Array, "chains D"]


class AISKernel(samplers.AbstractSampler):
    """One AIS transition as a sampler, so that `zoo.samplers.run` drives AIS.

    The chain's position is ``(x, log_w)``; its state is ``(cache, t)``, the annealed
    target's cache and the step index. Step ``t`` adds ``(beta_{t+1} - beta_t) (f(x) -
    log p0(x))`` to ``log_w`` and then takes one `sampler` step that leaves
    ``f_{beta_{t+1}}`` invariant. The target passed to `run` is the inner (binary) target.
    """

    sampler: samplers.AbstractSampler
    base_logits: Float[Array, " D"]
    betas: Float[Array, " T1"]

    def init(self, target: samplers.AbstractBinaryTarget, x: tuple[Array, Array]):
        at = AnnealedTarget(self.base_logits, target, self.betas[0])
        return at.init(x[0]), jnp.zeros((), jnp.int32)

    def step(self, target: samplers.AbstractBinaryTarget, x: tuple[Array, Array], state, *, key: PRNGKeyArray):
        (x, logw), (cache, t) = x, state
        b_prev, b = self.betas[t], self.betas[t + 1]
        at = AnnealedTarget(self.base_logits, target, b)
        logw = logw + (b - b_prev) * (target.log_prob(x, cache[0]) - at.base_log_prob(x))
        x, cache, info = annealed_step(self.sampler, at, x, cache, key=key)
        return (x, logw), (cache, t + 1), info


def annealed_step(
    sampler: samplers.AbstractSampler, at: AnnealedTarget, x: Float[Array, " D"], cache: Any, *, key: PRNGKeyArray
) -> tuple[Float[Array, " D"], Any, dict[str, Array]]:
    """One `sampler` step leaving ``f_beta`` (`at`) invariant, from the annealed target's cache
    at `x` (valid at every beta); returns the new point, its cache and the step's statistics.
    GWG's proposal is recomputed at `at`'s temperature."""
    if isinstance(sampler, samplers.GWG):
        inner_state = sampler.state_at(at, x, cache)
    elif isinstance(sampler, samplers.CategoricalGWG):
        inner_state = samplers.CategoricalGWGState(cache=cache, log_q=sampler.proposal_logits(x, at.grad(x, cache)))
    else:
        inner_state = cache
    x, inner_state, info = sampler.step(at, x, inner_state, key=key)
    gwg = isinstance(sampler, (samplers.GWG, samplers.CategoricalGWG))
    cache = inner_state.cache if gwg else inner_state
    return x, cache, info


def _run_ais(kernel: AISKernel, inner: Any, x: Array, logw: Array, num_steps: int, key: PRNGKeyArray):
    # called eagerly, samplers.run jits the chains itself (cached) and runs them on a CPU as one group per core
    return samplers.run(kernel, inner, (x, logw), num_steps=num_steps, key=key, batched=True).final


def ais(
    target: Any,
    base_logits: Float[Array, " D"],
    *,
    num_steps: int,
    num_chains: int,
    key: PRNGKeyArray,
    sampler: samplers.AbstractSampler | None = None,
) -> AISResult:
    """AIS from the base with logits `base_logits` to `target` (a log-density callable on one
    example or an `AbstractDiscreteTarget`), driven by `zoo.samplers.run`.

    - `base_logits`: ``(D,)``, a Bernoulli base on binary states; ``(D, K)``, a product of
      categoricals on one-hot states ``(D, K)`` (``softmax`` of each row).
    - `num_steps`: intermediate distributions (MCMC transitions); `num_chains`: chains.
    - `sampler`: the transition kernel (default `GWG()`, or `CategoricalGWG()` on one-hot
      states; any sampler of the state kind whose state is the target cache, e.g.
      `RandomScanGibbs` or `CategoricalGibbs`, also works).
    All steps run in one jitted `lax.scan` of the shared driver.
    """
    base_logits = jnp.asarray(base_logits, jnp.float32)
    k0, k1 = jax.random.split(key)
    if base_logits.ndim == 2:  # one-hot states, a product of categoricals
        sampler = samplers.CategoricalGWG() if sampler is None else sampler
        inner = samplers.as_categorical_target(target)
        v = jax.random.categorical(k0, base_logits, axis=-1, shape=(num_chains, base_logits.shape[0]))
        x = jax.nn.one_hot(v, base_logits.shape[1], dtype=jnp.float32)
    elif base_logits.ndim == 1:
        sampler = samplers.GWG() if sampler is None else sampler
        inner = samplers.as_binary_target(target)
        p0 = jax.nn.sigmoid(base_logits)[None, :]
        x = jax.random.bernoulli(k0, p0, (num_chains, base_logits.shape[0])).astype(jnp.float32)
    else:
        raise ValueError(f"base_logits must be (D,) (binary) or (D, K) (one-hot states), got {base_logits.shape}")
    logw = jnp.zeros((num_chains,), jnp.float32)
    betas = jnp.linspace(0.0, 1.0, num_steps + 1, dtype=jnp.float32)
    x, logw = _run_ais(AISKernel(sampler, base_logits, betas), inner, x, logw, num_steps, k1)
    log_z = jax.scipy.special.logsumexp(logw) - math.log(num_chains)
    return AISResult(log_z=log_z, log_weights=logw, samples=x)


def bootstrap_std(log_weights: np.ndarray, *, num: int = 1000, seed: int = 0) -> float:
    """Bootstrap standard error (over chains) of ``log mean exp(log_weights)``."""
    w = np.asarray(log_weights, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(w), (num, len(w)))
    s = w[idx]
    m = s.max(1, keepdims=True)
    est = (m[:, 0] + np.log(np.mean(np.exp(s - m), axis=1)))
    return float(est.std())


def mean_log_prob(log_prob: Callable[[Array], Array], data: Float[Array, "N D"], *, batch: int = 500) -> np.ndarray:
    """``log_prob`` of every row of `data` (batched, jitted)."""
    f = eqx.filter_jit(lambda lp, x: jax.vmap(lp)(x))
    out = [np.asarray(f(log_prob, data[i : i + batch])) for i in range(0, data.shape[0], batch)]
    return np.concatenate(out)


def ais_log_likelihood(
    target: Any,
    base_logits: Float[Array, " D"],
    data: Float[Array, "N D"],
    log_prob: Callable[[Array], Array],
    *,
    num_steps: int,
    num_chains: int,
    key: PRNGKeyArray,
    sampler: samplers.AbstractSampler | None = None,
) -> dict[str, float]:
    """AIS log Z (`ais`), then the mean of ``log_prob(x) - log Z`` over `data` (nats per
    example): `log_likelihood_summary` of the result."""
    result = ais(target, base_logits, num_steps=num_steps, num_chains=num_chains, key=key, sampler=sampler)
    return log_likelihood_summary(result, data, log_prob, num_steps=num_steps)


def log_likelihood_summary(
    result: AISResult, data: Float[Array, "N D"], log_prob: Callable[[Array], Array], *, num_steps: int
) -> dict[str, float]:
    """The held-out figures of an AIS run.

    Keys: ``log_z``, ``log_z_bootstrap_std`` (standard error over chains), ``log_w_std``
    (spread of the chains' log-weights), ``log_likelihood``, ``unnormalised_log_prob``,
    ``num_steps``, ``num_chains``. AIS under-estimates log Z in expectation, so the
    log-likelihood is an optimistic (upper) estimate; the paper's numbers share this bias.
    """
    lw = np.asarray(result.log_weights)
    lp = mean_log_prob(log_prob, data)
    log_z = float(result.log_z)
    return {
        "log_z": log_z,
        "log_z_bootstrap_std": bootstrap_std(lw),
        "log_w_std": float(lw.std()),
        "log_likelihood": float(lp.mean()) - log_z,
        "unnormalised_log_prob": float(lp.mean()),
        "num_steps": float(num_steps),
        "num_chains": float(len(lw)),
    }
