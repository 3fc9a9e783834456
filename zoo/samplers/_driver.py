"""`run`: the one loop that drives every sampler, as a jitted `lax.scan`."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._progress import ProgressMeter
from ._base import AbstractSampler


class ChainResult(eqx.Module):
    """What `run` returns.

    * ``final``: the state of the chain(s) after the last step.
    * ``samples``: the saved states, stacked on a new leading axis (after burn-in, every
      ``thin``-th step); ``None`` when ``save=False``. For batched chains the layout is
      ``(num_saved, num_chains, ...)``.
    * ``info``: each of the sampler's per-step statistics averaged over the saved
      segment (burn-in excluded) and, for batched chains, per chain.
    """

    final: PyTree[Array]
    samples: PyTree[Array] | None
    info: dict[str, Array]


def _chain(
    sampler: AbstractSampler,
    target: Any,
    x0: PyTree[Array],
    key: PRNGKeyArray,
    num_saved: int,
    burn_in: int,
    thin: int,
    save: bool,
    progress: ProgressMeter | None,
    unroll: int,
) -> ChainResult:
    state = sampler.init(target, x0)

    def one(carry, k):
        x, s = carry
        x, s, info = sampler.step(target, x, s, key=k)
        return (x, s), info

    key_burn, key_main = jax.random.split(key)
    carry = (x0, state)
    if burn_in > 0:
        carry, _ = jax.lax.scan(one, carry, jax.random.split(key_burn, burn_in), unroll=min(unroll, burn_in))

    def block(carry, inputs):
        i, k = inputs
        keys = jax.random.split(k, thin)
        if thin == 1:  # no inner loop, so that `unroll` unrolls straight-line steps
            carry, info = one(carry, keys[0])
        else:
            carry, infos = jax.lax.scan(one, carry, keys, unroll=min(unroll, thin))
            info = jax.tree.map(lambda v: jnp.sum(v, axis=0), infos)
        if progress is not None:
            progress.update(burn_in + (i + 1) * thin)
        x = carry[0]
        return carry, (x if save else None, info)

    indices = jnp.arange(num_saved)
    # About `unroll` transitions per loop iteration: the inner (thinning) loop unrolls
    # first, the outer one by the rest.
    outer = min(max(1, unroll // thin), num_saved)
    carry, (samples, info_sums) = jax.lax.scan(
        block, carry, (indices, jax.random.split(key_main, num_saved)), unroll=outer
    )
    total = num_saved * thin
    info = jax.tree.map(lambda v: jnp.sum(v, axis=0) / total, info_sums)
    return ChainResult(final=carry[0], samples=samples, info=info)


def run(
    sampler: AbstractSampler,
    target: Any,
    x0: PyTree[Array],
    *,
    num_steps: int,
    key: PRNGKeyArray,
    burn_in: int = 0,
    thin: int = 1,
    save: bool = False,
    batched: bool = False,
    progress: bool | ProgressMeter = False,
    unroll: int = 1,
) -> ChainResult:
    """Run `sampler` on `target` from `x0` for `burn_in + num_steps` transitions.

    **Arguments:**

    - `sampler`: an `AbstractSampler`.
    - `target`: whatever the sampler evaluates (log-density, score function, model).
    - `x0`: initial state of one chain, or, with ``batched=True``, of many chains
      stacked on the leading axis (the chains run under `jax.vmap` with independent keys).
    - `num_steps`: transitions after burn-in; must be a multiple of `thin`.
    - `burn_in`: transitions discarded before saving and averaging statistics.
    - `thin`: save every `thin`-th state.
    - `save`: whether to return the saved states (they cost memory).
    - `progress`: show a progress bar (or pass a `ProgressMeter`).
    - `unroll`: transitions per iteration of the compiled loop (passed to `lax.scan`;
      the chain is the same for every value). ``unroll >= max(burn_in, num_steps)`` (with
      ``thin=1``) compiles straight-line code with no loop: XLA:CPU runs convolutional
      targets several times faster that way, and a partly unrolled loop does not recover
      it (scripts/bench_ebm_unroll.py); so for long runs of such targets on CPU, call `run`
      on chunks of a few fully unrolled steps.
    - `key`: PRNG key.

    The whole loop is one `lax.scan` under `jit` (callers jit `run` or the function
    around it; nothing here syncs with the host except the optional progress bar).
    """
    if num_steps <= 0 or thin <= 0 or burn_in < 0:
        raise ValueError(f"need num_steps > 0, thin > 0, burn_in >= 0; got {num_steps}, {thin}, {burn_in}")
    if num_steps % thin:
        raise ValueError(f"num_steps={num_steps} is not a multiple of thin={thin}")
    if isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll!r}")
    meter = (
        progress
        if isinstance(progress, ProgressMeter)
        else (ProgressMeter(burn_in + num_steps, desc=type(sampler).__name__) if progress else None)
    )
    num_saved = num_steps // thin
    if batched:
        n = jax.tree_util.tree_leaves(x0)[0].shape[0]
        keys = jax.random.split(key, n)
        # The progress bar is updated by chain 0 only.
        result = jax.vmap(
            lambda x, k, first: _chain(
                sampler,
                target,
                x,
                k,
                num_saved,
                burn_in,
                thin,
                save,
                meter.only_if(first) if meter is not None else None,
                unroll,
            )
        )(x0, keys, jnp.arange(n) == 0)
        # vmap puts the chain axis first; the documented layout is (saved, chain, ...).
        samples = None if result.samples is None else jax.tree.map(lambda v: jnp.swapaxes(v, 0, 1), result.samples)
        result = ChainResult(final=result.final, samples=samples, info=result.info)
    else:
        result = _chain(sampler, target, x0, key, num_saved, burn_in, thin, save, meter, unroll)
    return result
