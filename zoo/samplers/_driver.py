"""`run`: the one loop that drives every sampler, as a jitted `lax.scan`."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray, PyTree

from .. import _malloc
from .._conv import filter_jit_with
from .._onednn import xla_kernels
from .._progress import ProgressMeter
from ._base import AbstractSampler
from ._random import split


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

    key_burn, key_main = split(key, 2)
    carry = (x0, state)
    if burn_in > 0:
        carry, _ = jax.lax.scan(one, carry, split(key_burn, burn_in), unroll=min(unroll, burn_in))

    def block(carry, inputs):
        i, k = inputs
        keys = split(k, thin)  # straight-line threefry: a rolled loop per step otherwise
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
        block, carry, (indices, split(key_main, num_saved)), unroll=outer
    )
    total = num_saved * thin
    info = jax.tree.map(lambda v: jnp.sum(v, axis=0) / total, info_sums)
    return ChainResult(final=carry[0], samples=samples, info=info)


def _run(
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
    compiler_options: Mapping[str, Any] | None = None,
    sharding: NamedSharding | None = None,
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
    - `progress`: show a progress bar (or pass a `ProgressMeter`). With ``progress=True``
      and ``save=False`` outside `jit` (concrete `x0` and `key`), the chain runs as a host
      loop of jitted transitions (`_run_on_host`: the same keys, so the same chain) and the
      bar is drawn from the host: no callback inside the compiled step, whose first call is
      not counted in the bar's rate (its ETA is the sampling time left) and which JAX's
      persistent compilation cache can keep (it never keeps a program with a host callback).
    - `unroll`: transitions per iteration of the compiled loop (passed to `lax.scan`;
      the chain is the same for every value). ``unroll >= max(burn_in, num_steps)`` (with
      ``thin=1``) compiles straight-line code with no loop: XLA:CPU runs convolutional
      targets several times faster that way, and a partly unrolled loop does not recover
      it (scripts/bench_ebm_unroll.py); so for long runs of such targets on CPU, call `run`
      on chunks of a few fully unrolled steps.
    - `compiler_options`: XLA options for the programs `run` compiles itself: called
      outside `jit` (concrete `x0`, `key` and `target`), the chain is jitted here, with them
      (and the host loop's transition is, with a progress bar). A convolutional
      model passes its ``compiler_options()`` (`zoo._conv`: XLA:CPU's YNNPACK fusions for reductions only).
      Under the caller's `jit` they have no effect: give them to that `jit`.
    - `sharding`: with ``batched=True``, a `NamedSharding` of the chains' leading axis (e.g.
      ``NamedSharding(zoo.data_mesh(), PartitionSpec("data"))``): each device runs its share of
      the chains, data-parallel, with the same keys as on one device, so the same chains.
      Outside `jit` the chains (and the host loop's keys) are placed with it and the target's
      arrays replicated over its mesh; under the caller's `jit` the chains are constrained to
      it. On a several-core CPU split into devices (``jax_num_cpu_devices``) this keeps every
      core busy where XLA:CPU runs a kernel on one thread (GWG on a 784x500 RBM, 100 chains,
      2 cores: 1.2-1.3x; scripts/bench_gwg.py ``@dp``); `zoo sample` does it whenever there
      are several devices.
    - `key`: PRNG key.

    The whole loop is one `lax.scan` under `jit` (called eagerly, `run` jits it itself, once
    per sampler, target structure and shapes; nothing here syncs with the host except the
    optional progress bar).
    """
    if num_steps <= 0 or thin <= 0 or burn_in < 0:
        raise ValueError(f"need num_steps > 0, thin > 0, burn_in >= 0; got {num_steps}, {thin}, {burn_in}")
    if num_steps % thin:
        raise ValueError(f"num_steps={num_steps} is not a multiple of thin={thin}")
    if isinstance(unroll, bool) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll!r}")
    if sharding is not None:
        x0, target = _place(x0, target, sharding, batched)
    if progress is True and not save and not _is_traced((x0, key)):
        return _run_on_host(sampler, target, x0, key, num_steps, burn_in, thin, batched, compiler_options, sharding)
    if not _is_traced((x0, key, target)):  # called eagerly: jit the chain here (cached), else each call re-traces
        return filter_jit_with(_run_chain, compiler_options)(
            sampler, target, x0, key, num_steps, burn_in, thin, save, batched, progress, unroll)
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



@functools.wraps(_run)
def run(sampler: AbstractSampler, target: Any, x0: PyTree[Array], **kwargs: Any) -> ChainResult:
    sharding = kwargs.get("sharding")
    # Chains split over several devices run XLA's convolutions, which GSPMD partitions (it would replicate
    # oneDNN's custom calls, zoo._onednn, on every device).
    multi = isinstance(sharding, NamedSharding) and sharding.mesh.size > 1  # (_run checks the type)
    with xla_kernels() if multi else contextlib.nullcontext():
        return _run(sampler, target, x0, **kwargs)


def _is_traced(tree: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _step_keys(key: PRNGKeyArray, burn_in: int, num_steps: int, thin: int) -> PRNGKeyArray:
    """The key of each of one chain's ``burn_in + num_steps`` transitions, as `_chain` draws them."""
    key_burn, key_main = split(key, 2)
    main = jax.vmap(lambda k: split(k, thin))(split(key_main, num_steps // thin))
    return jnp.concatenate([split(key_burn, burn_in), main.reshape(-1)])


@eqx.filter_jit
def _all_step_keys(key: PRNGKeyArray, n: int | None, burn_in: int, num_steps: int, thin: int) -> PRNGKeyArray:
    """``(chains, transitions)`` keys: each chain's `_step_keys` (one chain when `n` is None)."""
    if n is None:
        return _step_keys(key, burn_in, num_steps, thin)[None]
    return jax.vmap(lambda k: _step_keys(k, burn_in, num_steps, thin))(jax.random.split(key, n))


@eqx.filter_jit
def _init(sampler: AbstractSampler, target: Any, x0: PyTree[Array], batched: bool) -> Any:
    def init(x):
        return sampler.init(target, x)

    return (jax.vmap(init) if batched else init)(x0)


def _run_chain(sampler, target, x0, key, num_steps, burn_in, thin, save, batched, progress, unroll) -> ChainResult:
    """`run` with positional arguments, for `filter_jit_with`."""
    return run(sampler, target, x0, num_steps=num_steps, key=key, burn_in=burn_in, thin=thin, save=save,
               batched=batched, progress=progress, unroll=unroll)


def _transition(sampler: AbstractSampler, target: Any, x: PyTree[Array], state: Any, key: PRNGKeyArray, batched: bool):
    """One transition of every chain."""

    def step(x, s, k):
        return sampler.step(target, x, s, key=k)

    return (jax.vmap(step) if batched else step)(x, state, key)


@jax.jit
def _accumulate(info_sum: dict[str, Array], info: dict[str, Array], counted: Array) -> dict[str, Array]:
    return jax.tree.map(lambda a, b: a + jnp.where(counted, b, jnp.zeros_like(b)).astype(a.dtype), info_sum, info)


def _place(x0: PyTree[Array], target: Any, sharding: NamedSharding, batched: bool) -> tuple[PyTree[Array], Any]:
    """`x0` laid out with `sharding` (its leading, chain axis) and, outside `jit`, the target's
    arrays replicated over the sharding's mesh."""
    if not batched:
        raise ValueError("sharding= lays out a batch of chains over devices: it needs batched=True")
    if not isinstance(sharding, NamedSharding):
        raise TypeError(f"sharding must be a jax.sharding.NamedSharding (e.g. over zoo.data_mesh()), got {sharding!r}")
    n = jax.tree_util.tree_leaves(x0)[0].shape[0]
    ways = math.prod(sharding.mesh.shape[a] for a in jax.tree.leaves(tuple(sharding.spec)[:1]) if a is not None)
    if n % ways:
        raise ValueError(f"{n} chains do not split evenly over the {ways} devices of the sharding: run a multiple "
                         f"of {ways} chains, or a sharding over fewer devices")
    if _is_traced(x0):
        return jax.lax.with_sharding_constraint(x0, sharding), target
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    target = jax.tree.map(lambda v: jax.device_put(v, replicated) if eqx.is_array(v) else v, target)
    return jax.device_put(x0, sharding), target


def _committed(tree: Any) -> Any:
    """`tree` with its arrays committed to where they are, like the outputs of a jitted function
    (so that the first call of `_transition` compiles the program of all the others)."""
    return jax.tree.map(lambda v: jax.device_put(v, getattr(v, "sharding", None)), tree)


def _run_on_host(
    sampler: AbstractSampler, target: Any, x0: PyTree[Array], key: PRNGKeyArray, num_steps: int, burn_in: int,
    thin: int, batched: bool, compiler_options: Mapping[str, Any] | None, sharding: NamedSharding | None,
) -> ChainResult:
    """`run` with ``save=False`` and a progress bar, as a host loop over jitted transitions."""
    from .._progress import tqdm_bar

    n = jax.tree_util.tree_leaves(x0)[0].shape[0] if batched else None
    keys = _all_step_keys(key, n, burn_in, num_steps, thin)
    if sharding is not None:  # each chain's keys where the chain is
        keys = jax.device_put(keys, sharding)
    x, state = x0, _init(sampler, target, x0, batched)
    # Where the chains are (jit places an output that uses no committed argument on the default device).
    x, state = _committed((x, state)) if sharding is None else jax.device_put((x, state), sharding)
    total, bar, info_sum = burn_in + num_steps, None, None
    transition = filter_jit_with(_transition, compiler_options)
    for i in range(total):
        x, state, info = transition(sampler, target, x, state, keys[:, i] if batched else keys[0, i], batched)
        if info_sum is None:  # the sums in the dtype `_chain` gives them (bool statistics count as int), where
            info_sum = jax.tree.map(  # the statistics are
                lambda v: jax.device_put(jnp.zeros(v.shape, jax.eval_shape(jnp.sum, v).dtype), v.sharding), info)
        if info:
            info_sum = _accumulate(info_sum, info, jnp.asarray(i >= burn_in))
        jax.block_until_ready(x)
        if bar is None:  # after the first transition, which compiles
            _malloc.settle()  # the heap, where zoo's allocator setting is on (zoo/_malloc.py)
            bar = tqdm_bar(total, desc=type(sampler).__name__, initial=i + 1)
        else:
            bar.update(1)
    bar.close()
    return ChainResult(final=x, samples=None, info=jax.tree.map(lambda v: v / num_steps, info_sum))
