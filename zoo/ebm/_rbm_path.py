"""AIS along an RBM's own annealing path (Salakhutdinov & Murray, 2008), optionally times a
second term ``exp(rest(x))`` (the RBM-term ResNet EBM).

Intermediate distributions scale the RBM's JOINT energy by ``beta`` and move its visible
biases to the base's: ``W_b = b W``, ``c_b = b c``, ``bias_b = b bias + (1 - b) base_logits``,
whose marginal over x is again an RBM free energy,

    f_b(x) = bias_b . x + sum_j softplus(c_b,j + x . W_b[:, j]) + b rest(x).

At ``b = 0`` this is ``base_logits . x + H log 2``: the Bernoulli base (exact draws) with
``log Z_0 = H log 2 + sum_i softplus(base_logits_i)``. Every intermediate distribution is an
RBM times ``exp(b rest)``, so `FactorBlockGibbsMH` (a block-Gibbs sweep of the intermediate
RBM, accepted by the rest term alone) is an exact transition with global moves, where the
geometric path of `ais` mixes by single flips. Without a rest term every proposal is accepted:
annealed block Gibbs, the standard RBM estimator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import samplers
from ._ais import AISResult
from ._raise import reverse_chains
from ._rbm import RBMTarget


class _Scaled(eqx.Module):
    fn: Callable[[Array], Array] | None
    beta: Float[Array, ""]

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        return self.beta * self.fn(x) if self.fn is not None else jnp.zeros((), x.dtype)


class RBMPath(eqx.Module):
    """The path: `rbm` (the RBM term), `base_logits` (the Bernoulli base), `rest` (or None)."""

    rbm: RBMTarget
    base_logits: Float[Array, " D"]
    rest: Callable[[Array], Array] | None = None

    def at(self, beta: Float[Array, ""]) -> samplers.ProductTarget:
        """``f_beta`` as a `zoo.samplers.ProductTarget` (the intermediate RBM times the rest)."""
        r = self.rbm
        factor = RBMTarget(beta * r.W, beta * r.b + (1 - beta) * self.base_logits, beta * r.c)
        return samplers.ProductTarget(factor, _Scaled(self.rest, beta))

    def increment_given_rest(self, x: Float[Array, " D"], rest: Array, b_prev: Array, b: Array) -> Float[Array, ""]:
        """``f_b(x) - f_b_prev(x)``, given ``rest = rest(x)`` (unscaled; 0 without a rest term)."""
        return self.at(b).factor(x) - self.at(b_prev).factor(x) + (b - b_prev) * rest

    def log_z0(self) -> Float[Array, ""]:
        return self.rbm.c.shape[0] * math.log(2.0) + jnp.sum(jax.nn.softplus(self.base_logits))


def _transition(
    path: RBMPath, sampler: samplers.AbstractSampler | None, b: Array, x: Array, rest: Array, key: PRNGKeyArray
) -> tuple[Array, Array, dict[str, Array]]:
    """One transition leaving ``f_b`` invariant from `x` (with ``rest = rest(x)``, unscaled):
    `sampler` (re-initialised) if given, else the fused block-Gibbs-proposal MH step."""
    target = path.at(b)
    if sampler is not None:
        x, _, info = sampler.step(target, x, sampler.init(target, x), key=key)
        return x, (path.rest(x) if path.rest is not None else rest), info
    k_h, k_v, k_u = jax.random.split(key, 3)
    h = jax.random.bernoulli(k_h, jax.nn.sigmoid(target.factor.hidden_logits(x))).astype(x.dtype)
    x_new = jax.random.bernoulli(k_v, jax.nn.sigmoid(target.factor.visible_logits(h))).astype(x.dtype)
    if path.rest is None:
        return x_new, rest, {"accept_prob": jnp.ones((), x.dtype)}
    rest_new = path.rest(x_new)
    log_alpha = jnp.minimum(b * (rest_new - rest), 0.0)
    accept = jnp.log(jax.random.uniform(k_u, dtype=log_alpha.dtype)) < log_alpha
    return jnp.where(accept, x_new, x), jnp.where(accept, rest_new, rest), {"accept_prob": jnp.exp(log_alpha)}


def _rest(path: RBMPath, x: Array) -> Array:
    return path.rest(x) if path.rest is not None else jnp.zeros((), x.dtype)


class RBMPathAISKernel(samplers.AbstractSampler):
    """One AIS transition on an `RBMPath` (the target `run` passes), position ``(x, log_w)``,
    state ``(t, rest(x))``: adds ``f_{t+1}(x) - f_t(x)``, then one transition on ``f_{t+1}``:
    `sampler` if given (re-initialised), else block-Gibbs-proposal MH (`FactorBlockGibbsMH`)
    fused with the weight update, so each temperature costs one evaluation of the rest term."""

    sampler: samplers.AbstractSampler | None
    betas: Float[Array, " T1"]

    def init(self, path: RBMPath, x: tuple[Array, Array]) -> tuple[Array, Array]:
        return jnp.zeros((), jnp.int32), _rest(path, x[0])

    def step(self, path: RBMPath, x: tuple[Array, Array], state: tuple[Array, Array], *, key: PRNGKeyArray):
        (x, logw), (t, rest) = x, state
        b_prev, b = self.betas[t], self.betas[t + 1]
        logw = logw + path.increment_given_rest(x, rest, b_prev, b)
        x, rest, info = _transition(path, self.sampler, b, x, rest, key)
        return (x, logw), (t + 1, rest), info


class RBMPathRAISEKernel(samplers.AbstractSampler):
    """RAISE (reverse annealing, see `zoo.ebm.raise_log_prob`) on an `RBMPath`: position ``(x,
    log_p)`` started at a data point with ``log_p = f(x) - log Z_0``; step ``t`` runs ``k = K - t``:
    one transition on ``f_{b_k}``, then subtracts ``f_{b_k}(x') - f_{b_{k-1}}(x')`` at the new point."""

    sampler: samplers.AbstractSampler | None
    betas: Float[Array, " T1"]

    def init(self, path: RBMPath, x: tuple[Array, Array]) -> tuple[Array, Array]:
        return jnp.zeros((), jnp.int32), _rest(path, x[0])

    def step(self, path: RBMPath, x: tuple[Array, Array], state: tuple[Array, Array], *, key: PRNGKeyArray):
        (x, log_p), (t, rest) = x, state
        k = self.betas.shape[0] - 1 - t
        b, b_prev = self.betas[k], self.betas[k - 1]
        x, rest, info = _transition(path, self.sampler, b, x, rest, key)
        log_p = log_p - path.increment_given_rest(x, rest, b_prev, b)
        return (x, log_p), (t + 1, rest), info


def _run(kernel: RBMPathAISKernel, path: RBMPath, x: Array, logw: Array, num_steps: int, key: PRNGKeyArray):
    # called eagerly, samplers.run jits the chains itself (cached) and runs them on a CPU as one group per core
    return samplers.run(kernel, path, (x, logw), num_steps=num_steps, key=key, batched=True).final


def rbm_path_ais(
    rbm: RBMTarget,
    base_logits: Float[Array, " D"],
    *,
    rest: Callable[[Array], Array] | None = None,
    num_steps: int,
    num_chains: int,
    key: PRNGKeyArray,
    sampler: samplers.AbstractSampler | None = None,
) -> AISResult:
    """log Z of ``rbm(x) + rest(x)`` by AIS along the RBM's annealing path (module docstring).

    - `rbm`: a `zoo.ebm.RBMTarget` (e.g. ``model.target()`` of an RBM, ``model.rbm`` of a
      ResNet EBM with an RBM term); `rest`: the other term of the log-density, or None.
    - `sampler`: the transition on each ``f_b`` (default: block-Gibbs-proposal MH, i.e.
      `FactorBlockGibbsMH`, fused with the weight update; or e.g. a `Cycle` with GWG steps,
      re-initialised at every temperature).
    Returns an `AISResult` whose ``log_z`` includes ``log Z_0``; ``log_weights`` exclude it.
    """
    if num_steps < 1 or num_chains < 1:
        raise ValueError(f"need num_steps >= 1 and num_chains >= 1, got {num_steps}, {num_chains}")
    base_logits = jnp.asarray(base_logits, jnp.float32)
    path = RBMPath(rbm, base_logits, rest)
    k0, k1 = jax.random.split(key)
    x = jax.random.bernoulli(k0, jax.nn.sigmoid(base_logits)[None, :], (num_chains, base_logits.shape[0]))
    x = x.astype(jnp.float32)
    logw = jnp.zeros((num_chains,), jnp.float32)
    betas = jnp.linspace(0.0, 1.0, num_steps + 1, dtype=jnp.float32)
    x, logw = _run(RBMPathAISKernel(sampler, betas), path, x, logw, num_steps, k1)
    log_z = path.log_z0() + jax.scipy.special.logsumexp(logw) - math.log(num_chains)
    return AISResult(log_z=log_z, log_weights=logw, samples=x)


@eqx.filter_jit
def _raise_start(path: RBMPath, x: Array) -> Array:
    return jax.vmap(lambda xi: path.at(jnp.ones(()))(xi))(x) - path.log_z0()


def _run_raise(kernel: RBMPathRAISEKernel, path: RBMPath, x: Array, num_steps: int, key: PRNGKeyArray) -> Array:
    # called eagerly, samplers.run jits the chains itself (cached) and runs them on a CPU as one group per core
    log_p = _raise_start(path, x)
    return samplers.run(kernel, path, (x, log_p), num_steps=num_steps, key=key, batched=True).final[1]


def rbm_path_raise_log_prob(
    rbm: RBMTarget,
    base_logits: Float[Array, " D"],
    data: Float[Array, "N D"],
    *,
    rest: Callable[[Array], Array] | None = None,
    num_steps: int,
    num_chains_per_example: int = 1,
    key: PRNGKeyArray,
    sampler: samplers.AbstractSampler | None = None,
    batch_size: int = 1000,
) -> np.ndarray:
    """RAISE estimates of ``log p(x)`` (conservative: a stochastic lower bound on the annealed
    model's log-likelihood) for every row of `data`, ``(N,)``, along the RBM's path (module
    docstring; arguments as for `rbm_path_ais` and `zoo.ebm.raise_log_prob`)."""
    base_logits = jnp.asarray(base_logits, jnp.float32)
    path = RBMPath(rbm, base_logits, rest)
    kernel = RBMPathRAISEKernel(sampler, jnp.linspace(0.0, 1.0, max(num_steps, 1) + 1, dtype=jnp.float32))
    return reverse_chains(
        lambda chains, k: _run_raise(kernel, path, chains, num_steps, k), data, base_logits.shape[0],
        num_steps=num_steps, num_chains_per_example=num_chains_per_example, batch_size=batch_size, key=key,
    )
