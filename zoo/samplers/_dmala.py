"""Discrete Metropolis-adjusted Langevin (DMALA; Zhang, Liu & Liu, 2022, "A Langevin-like
sampler for discrete distributions"), for binary ``(D,)`` and one-hot ``(D, K)`` states.

The proposal factorises over positions: with ``d_iv ~ f(x with x_i = v) - f(x)`` the
first-order estimate from ``grad f(x)`` (``g_i (v - x_i)`` for a binary state,
``g_iv - <x_i, g_i>`` for a one-hot one),

    q(x'_i = v | x) = softmax_v( d_iv / 2 - [v != x_i] / (2 * step_size) ),

so every position may change in one step (a Langevin move: drift ``grad f / 2``, a penalty
on the Hamming distance travelled). ``log alpha = f(x') - f(x) + log q(x | x') - log q(x' | x)``
makes it exact; without the correction it is the unadjusted DULA. The penalty is per changed
position for both kinds, so a one-hot state with ``K = 2`` gives the binary sampler's law.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._base import SAMPLERS, AbstractSampler
from ._categorical import as_discrete_target
from ._target import from_values, num_values, state_values


class DMALAState(eqx.Module):
    """The target's cache at the current point and the proposal ``log q(x'_i = v | x)``, ``(D, K)``."""

    cache: PyTree
    log_q: Float[Array, "D K"]


@SAMPLERS.register("dmala")
class DMALA(AbstractSampler[DMALAState]):
    """Discrete Metropolis-adjusted Langevin for one chain, binary or one-hot.

    - `step_size`: ``alpha``; the expected number of changed positions grows with it.
    """

    step_size: float = 0.2

    def __check_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")

    def init(self, target: Any, x: Array) -> DMALAState:
        num_values(x)  # a clear error for a wrong shape
        t = as_discrete_target(target)
        cache = t.init(x)
        return DMALAState(cache=cache, log_q=self.proposal_logits(x, t.grad(x, cache)))

    def proposal_logits(self, x: Array, grad: Array) -> Float[Array, "D K"]:
        """Per-position normalised log-probabilities of each value, ``(D, K)``."""
        if x.ndim == 1:
            d = grad[:, None] * (jnp.arange(2, dtype=x.dtype)[None, :] - x[:, None])
            cur = jax.nn.one_hot(x.astype(jnp.int32), 2, dtype=bool)
        else:
            d = grad - jnp.sum(x * grad, axis=-1, keepdims=True)
            cur = x > 0
        logits = jnp.where(cur, 0.0, d / 2 - 1 / (2 * self.step_size))
        return jax.nn.log_softmax(logits, axis=-1)

    def propose(
        self, target: Any, x: Array, state: DMALAState, values: Int[Array, " D"]
    ) -> tuple[Float[Array, ""], Array, DMALAState]:
        """For the proposed value indices `values`: ``(log alpha, x', state')`` (unclipped)."""
        t = as_discrete_target(target)
        x_new = from_values(x, values)
        cache_new = t.init(x_new)
        log_q_new = self.proposal_logits(x_new, t.grad(x_new, cache_new))
        rows = jnp.arange(values.shape[0])
        log_fwd = jnp.sum(state.log_q[rows, values])
        log_rev = jnp.sum(log_q_new[rows, state_values(x)])
        log_alpha = t.log_prob(x_new, cache_new) - t.log_prob(x, state.cache) + log_rev - log_fwd
        return log_alpha, x_new, DMALAState(cache=cache_new, log_q=log_q_new)

    def step(self, target: Any, x: Array, state: DMALAState, *, key: PRNGKeyArray):
        k_v, k_u = jax.random.split(key)
        values = jax.random.categorical(k_v, state.log_q, axis=-1).astype(jnp.int32)
        log_alpha, x_new, state_new = self.propose(target, x, state, values)
        log_alpha = jnp.minimum(log_alpha, 0.0)
        accept = jnp.log(jax.random.uniform(k_u, dtype=log_alpha.dtype)) < log_alpha
        x_out, state_out = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (x_new, state_new), (x, state))
        hops = jnp.sum(state_values(x_out) != state_values(x)).astype(log_alpha.dtype)
        return x_out, state_out, {"accept_prob": jnp.exp(log_alpha), "hops": hops}
