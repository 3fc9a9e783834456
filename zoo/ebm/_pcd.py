"""Persistent contrastive divergence with a replay buffer, as a model's `loss`/`init_state`.

Each update draws ``batch`` persistent chains from the buffer (re-initialising each from
the data-mean Bernoulli base with probability ``reinit_freq``), advances them ``k`` steps
of an MCMC sampler on the (frozen) current model, writes them back, and returns the
surrogate ``-(mean f(data) - mean f(fake)) + l2 * (mean r(data)^2 + mean r(fake)^2)`` (``r = f``
unless a regularised part ``reg_fn`` is given, e.g. the network term of ``f`` without its base),
whose gradient is the maximum-likelihood gradient estimate.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import samplers


class PCDState(eqx.Module):
    """The replay buffer of persistent chains, ``(buffer_size, D)`` in {0, 1}."""

    buffer: Float[Array, "N D"]


def data_mean_logits(data: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    """Logits of the data-mean Bernoulli, with the mean squeezed into [eps, 1 - eps]."""
    x = np.asarray(data, np.float64).reshape(len(data), -1)
    m = x.mean(0) * (1 - 2 * eps) + eps
    return np.log(m / (1 - m)).astype(np.float32)


def init_buffer(base_logits: Array, size: int, *, key: PRNGKeyArray) -> PCDState:
    """A buffer of `size` draws from the Bernoulli with logits `base_logits`."""
    x = jax.random.bernoulli(key, jax.nn.sigmoid(base_logits)[None, :], (size, base_logits.shape[0]))
    return PCDState(buffer=x.astype(jnp.float32))


def frozen(model: Any) -> Any:
    """`model` with `stop_gradient` on every inexact array (for sampling inside a loss)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return eqx.combine(jax.lax.stop_gradient(params), static)


def run_unrolled(
    sampler: samplers.AbstractSampler, target: Any, x0: Float[Array, "B D"], num_steps: int, *, key: PRNGKeyArray
) -> tuple[Float[Array, "B D"], dict[str, Array]]:
    """`num_steps` transitions of batched chains as straight-line code (no loop), with
    the per-chain step statistics averaged. For short runs of convolutional targets."""
    state = jax.vmap(sampler.init, in_axes=(None, 0))(target, x0)
    x = x0
    sums: dict[str, Array] = {}
    for k in jax.random.split(key, num_steps):
        keys = jax.random.split(k, x.shape[0])
        x, state, info = jax.vmap(lambda x, s, kk: sampler.step(target, x, s, key=kk))(x, state, keys)
        sums = info if not sums else jax.tree.map(jnp.add, sums, info)
    return x, jax.tree.map(lambda v: v / num_steps, sums)


def pcd_loss(
    model: Any,
    x_data: Float[Array, "B D"],
    state: PCDState,
    *,
    sampler: samplers.AbstractSampler,
    num_steps: int,
    reinit_freq: float,
    l2: float,
    unroll: bool = False,
    reg_fn: Any = None,
    key: PRNGKeyArray,
) -> tuple[Float[Array, ""], tuple[PCDState, dict[str, Array]]]:
    """The PCD surrogate loss. `model` provides ``log_prob(x)`` (one flat example),
    ``target()`` (what `sampler` runs on) and ``base_logits`` (the re-init distribution).
    ``unroll=True`` unrolls the `num_steps` transitions instead of scanning them (XLA:CPU
    runs convolutions inside loop bodies ~10x slower; use it for convolutional models)."""
    b = x_data.shape[0]
    n = state.buffer.shape[0]
    if b > n:
        raise ValueError(f"batch size {b} exceeds the replay buffer size {n}")
    k_idx, k_re, k_init, k_run = jax.random.split(key, 4)
    idx = jax.random.choice(k_idx, n, (b,), replace=False)
    x_buf = state.buffer[idx]
    fixed = frozen(model)
    reinit = jax.random.bernoulli(k_re, reinit_freq, (b, 1))
    x_new = jax.random.bernoulli(k_init, jax.nn.sigmoid(fixed.base_logits)[None, :], x_buf.shape).astype(x_buf.dtype)
    x0 = jnp.where(reinit, x_new, x_buf)
    if unroll:
        x_fake, info = run_unrolled(sampler, fixed.target(), x0, num_steps, key=k_run)
    else:
        result = samplers.run(sampler, fixed.target(), x0, num_steps=num_steps, key=k_run, batched=True)
        x_fake, info = result.final, result.info
    x_fake = jax.lax.stop_gradient(x_fake)
    buffer = state.buffer.at[idx].set(x_fake)

    f_real = jax.vmap(model.log_prob)(x_data)
    f_fake = jax.vmap(model.log_prob)(x_fake)
    gap = jnp.mean(f_real) - jnp.mean(f_fake)
    if l2 > 0 and reg_fn is not None:  # penalise e.g. only the network part of f
        r_real, r_fake = jax.vmap(reg_fn)(x_data), jax.vmap(reg_fn)(x_fake)
    else:
        r_real, r_fake = f_real, f_fake
    loss = -gap + l2 * (jnp.mean(r_real**2) + jnp.mean(r_fake**2))
    metrics = {
        "logp_real": jnp.mean(f_real),
        "logp_fake": jnp.mean(f_fake),
        "gap": gap,
        **{f"sampler_{k}": jnp.mean(v) for k, v in info.items()},
    }
    return loss, (PCDState(buffer=buffer), metrics)
