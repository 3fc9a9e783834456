"""`run`: the one loop that drives every sampler, as a jitted `lax.scan`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import math
import threading
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
from .._onednn._choice import cpus
from .._progress import ProgressMeter
from ._base import AbstractSampler
from ._random import split, split_range


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
    carry = (x0, sampler.init(target, x0))
    key_burn, key_main = split(key, 2)
    if burn_in > 0:
        carry = _burn(sampler, target, carry, key_burn, 0, burn_in, burn_in, unroll)
    carry, samples, info_sums = _blocks(
        sampler, target, carry, key_main, 0, num_saved, num_saved, thin, save, unroll,
        None if progress is None else lambda i: progress.update(burn_in + (i + 1) * thin))
    info = jax.tree.map(lambda v: v / (num_saved * thin), info_sums)
    return ChainResult(final=carry[0], samples=samples, info=info)


# A chain's transitions, as `_chain` runs them and a run in pieces does (`_run_pieces`): burn-in transition ``t`` has
# key ``split(key_burn, burn_in)[t]``, saved block ``j`` (``thin`` transitions, then the state is saved) key
# ``split(key_main, num_saved)[j]`` split ``thin`` ways, so any range of either can be run on its own.
def _one(sampler: AbstractSampler, target: Any):
    def one(carry, k):
        x, s = carry
        x, s, info = sampler.step(target, x, s, key=k)
        return (x, s), info

    return one


def _burn(sampler, target, carry, key_burn, start, length: int, total: int, unroll: int):
    """Burn-in transitions ``start .. start + length`` of `total` (no statistics, nothing saved)."""
    keys = split_range(key_burn, start, length, total)
    return jax.lax.scan(_one(sampler, target), carry, keys, unroll=min(unroll, length))[0]


def _blocks(sampler, target, carry, key_main, start, length: int, total: int, thin: int, save: bool, unroll: int,
            on_block=None):
    """Saved blocks ``start .. start + length`` of `total`: ``(carry, states saved at each block's end or None, sums
    of each statistic over the blocks' transitions)``; ``on_block(j)`` after block ``j`` (the progress bar)."""
    one = _one(sampler, target)

    def block(carry, inputs):
        j, k = inputs
        keys = split(k, thin)  # straight-line threefry: a rolled loop per step otherwise
        if thin == 1:  # no inner loop, so that `unroll` unrolls straight-line steps
            carry, info = one(carry, keys[0])
        else:
            carry, infos = jax.lax.scan(one, carry, keys, unroll=min(unroll, thin))
            info = jax.tree.map(lambda v: jnp.sum(v, axis=0), infos)
        if on_block is not None:
            on_block(j)
        return carry, (carry[0] if save else None, info)

    # About `unroll` transitions per loop iteration: the inner (thinning) loop unrolls first, the outer one by the rest.
    outer = min(max(1, unroll // thin), length)
    inputs = (start + jnp.arange(length), split_range(key_main, start, length, total))
    carry, (samples, infos) = jax.lax.scan(block, carry, inputs, unroll=outer)
    return carry, samples, jax.tree.map(lambda v: jnp.sum(v, axis=0), infos)


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
    groups: int | None = None,
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
    - `groups`: with ``batched=True`` outside `jit`, the chains run as this many equal groups,
      each by its own executions of one compiled program, all at once from host threads. On a
      CPU, XLA runs a cheap step's many small kernels one after another, each split over the
      cores or not at all; separate executions keep every core busy (2 cores, 100 chains: GWG
      and block Gibbs on the 784x500 RBM 1.6x, Potts GWG 1.4x, the deep EBMs' GWG 1.05-1.2x;
      scripts/bench_groups.py). Each chain keeps its key, so the chains are those of one execution
      up to float rounding (a batched product's rounding can depend on how many chains it holds,
      and a draw at a boundary can then go the other way). Concurrent executions (the groups, or
      a `sharding`'s devices) run in pieces of a few hundred transitions: XLA:CPU holds some
      memory per loop iteration until such an execution ends. ``None`` (default): on a CPU
      backend, as many groups as divide the chains, up to one per core and with at least 16
      chains each (with fewer the executions' overhead outweighs the gain); 1 on other backends
      (and for fewer than 32 chains on 2 cores). No effect under the caller's `jit`, with a
      `sharding`, or with a progress bar's host loop (``progress=True, save=False``: for costly
      steps, such as NCSN's, where it gains nothing).
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
    if groups is not None and (isinstance(groups, bool) or not isinstance(groups, int) or groups < 1):
        raise ValueError(f"groups must be a positive int (or None: one per CPU core), got {groups!r}")
    if sharding is not None:
        x0, target = _place(x0, target, sharding, batched)
    host_loop = progress is True and not save
    if batched and not host_loop and not isinstance(progress, ProgressMeter) and not _is_traced((x0, key, target)):
        # Several executions at once (the groups, or the devices of a sharding's program) run in pieces (`_PIECE`).
        ways = 1 if sharding is not None else _group_count(groups, jax.tree_util.tree_leaves(x0)[0].shape[0])
        if ways > 1 or (sharding is not None and sharding.mesh.size > 1):
            return _run_groups(ways, sampler, target, x0, key, num_steps=num_steps, burn_in=burn_in, thin=thin,
                               save=save, progress=progress, unroll=unroll, compiler_options=compiler_options,
                               sharding=sharding)
    if host_loop and not _is_traced((x0, key)):
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


# The fewest chains a group gets by default: with fewer, the executions' overhead can outweigh the cores they keep
# busy. 2 cores, two groups vs one execution: GWG on the 784x500 RBM 0.80x with 2 chains a group, 0.86x with 4, 1.30x
# with 8, 1.32x with 16 (`scripts/bench_gwg.py --timing-only --chains 4|8|16|32 --samplers gwg@g1,gwg@g2`); the 8x8
# Potts model's GWG, 1000 steps, 0.49x / 0.80x / 0.81x, 1.10x with 16 (`scripts/bench_groups.py --chains 4|8|16|32`
# at commit d712f70, before this floor).
_MIN_CHAINS_PER_GROUP = 16


def _group_count(groups: int | None, n: int) -> int:
    """How many groups `run` splits `n` eager batched chains into: `groups` (which must divide `n`), or for None
    the most that divide `n`, up to one per CPU core and with at least `_MIN_CHAINS_PER_GROUP` chains each, on a CPU
    backend (1 elsewhere)."""
    if groups is not None:
        if n % groups:
            raise ValueError(f"{n} chains do not split into {groups} equal groups: run a multiple of {groups} "
                             f"chains, or pass groups=None (as many groups as divide the chains, up to one per "
                             f"core, 16 chains each at least)")
        return groups
    if jax.default_backend() != "cpu":
        return 1
    return max(d for d in range(1, max(1, min(len(cpus()), n // _MIN_CHAINS_PER_GROUP)) + 1) if n % d == 0)


# Transitions per execution in a run in pieces: XLA:CPU holds some memory per loop iteration until an execution ends
# when several executions run at once (e.g. 25 KB a GWG step of a 784x500 RBM, measured with glibc's mallinfo2), so
# concurrent chains run as a sequence of short executions. Fewer, for a progress bar: a piece per ~1% of the run.
_PIECE = 256


def _pieces(total: int, most: int) -> list[tuple[int, int]]:
    """``(start, length)``: `total` in consecutive pieces of at most `most`, all of one length where some count of
    pieces (up to twice the fewest) divides `total`, so that one program runs them all."""
    if total == 0:
        return []
    fewest = -(-total // most)
    count = next((c for c in range(fewest, 2 * fewest + 1) if total % c == 0), fewest)
    size = -(-total // count)
    return [(a, min(size, total - a)) for a in range(0, total, size)]


def _piece(sampler, target, x, state, keys, start, phase: str, length: int, total: int, thin: int, save: bool,
           unroll: int):
    """Burn-in transitions (``phase="burn"``) or saved blocks (``"main"``) ``start .. start + length`` of `total` of
    the batched chains `x` (chain ``i`` with key ``keys[i]``), from their sampler state: ``(x, state, saved states
    (saved, chains, ...) or None, per-chain sums of the statistics)``."""

    def chain(x, s, k):
        key_burn, key_main = split(k, 2)
        if phase == "burn":
            return _burn(sampler, target, (x, s), key_burn, start, length, total, unroll), None, {}
        return _blocks(sampler, target, (x, s), key_main, start, length, total, thin, save, unroll)

    (x, state), saved, info = jax.vmap(chain)(x, state, keys)
    return x, state, (None if saved is None else jax.tree.map(lambda v: jnp.swapaxes(v, 0, 1), saved)), info


def _run_pieces(
    sampler: AbstractSampler, target: Any, x: PyTree[Array], state: Any, keys: PRNGKeyArray, *, num_steps: int,
    burn_in: int, thin: int, save: bool, unroll: int, compiler_options: Mapping[str, Any] | None, bar: bool,
    stop: threading.Event | None = None,
) -> ChainResult:
    """The batched chains `x` from their sampler `state`, chain ``i`` with key ``keys[i]`` (the keys `_chain` gives
    it, so the same chain), as a sequence of short executions (`_piece`), each awaited before the next; a progress
    bar drawn from the host after each piece when `bar`. Once `stop` is set (another group failed, or the caller was
    interrupted), no further piece starts."""
    from .._progress import tqdm_bar

    piece = filter_jit_with(_piece, compiler_options)
    total = burn_in + num_steps
    most = max(1, min(_PIECE, -(-total // 100))) if bar else _PIECE
    num_saved = num_steps // thin
    plan = [("burn", a, n, burn_in) for a, n in _pieces(burn_in, most)]
    plan += [("main", a, n, num_saved) for a, n in _pieces(num_saved, max(1, most // thin))]
    saved, info_sum, shown = [], None, None
    for phase, a, n, of in plan:
        if stop is not None and stop.is_set():
            raise _Stopped
        x, state, out, info = piece(sampler, target, x, state, keys, jnp.asarray(a, jnp.int32), phase, n, of, thin,
                                    save, unroll)
        if phase == "main":
            saved.append(out)
            info_sum = info if info_sum is None else jax.tree.map(jnp.add, info_sum, info)
        jax.block_until_ready(x)  # one piece at a time: `stop` is then heeded within a piece
        if bar:
            moved = n if phase == "burn" else n * thin
            if shown is None:  # after the first piece, which compiles: the bar's rate is the sampling's
                _malloc.settle()  # the heap, where zoo's allocator setting is on (zoo/_malloc.py)
                shown = tqdm_bar(total, desc=type(sampler).__name__, initial=moved)
            else:
                shown.update(moved)
    if shown is not None:
        shown.close()
    samples = jax.tree.map(lambda *v: jnp.concatenate(v, axis=0), *saved) if save else None
    return ChainResult(final=x, samples=samples, info=jax.tree.map(lambda v: v / num_steps, info_sum))


class _Stopped(Exception):
    """A group's pieces stopped because another group failed (`_run_groups` raises that group's error)."""


def _run_groups(
    ways: int, sampler: AbstractSampler, target: Any, x0: PyTree[Array], key: PRNGKeyArray, *, num_steps: int,
    burn_in: int, thin: int, save: bool, progress: bool, unroll: int, compiler_options: Mapping[str, Any] | None,
    sharding: NamedSharding | None,
) -> ChainResult:
    """Eager batched chains as `ways` equal groups, each run in pieces (`_run_pieces`) by its own host thread, all
    at once; the bar follows group 0. Chain ``i`` keeps its key of one execution (``jax.random.split(key, n)[i]``)."""
    n = jax.tree_util.tree_leaves(x0)[0].shape[0]
    m = n // ways
    keys = jax.random.split(key, n)
    if sharding is not None:  # each chain's key where the chain is
        keys = jax.device_put(keys, sharding)
    # Each group's chains, keys and sampler state, made here before any group's execution starts.
    parts = []
    for g in range(ways):
        x = jax.tree.map(lambda v, g=g: v[g * m:(g + 1) * m], x0) if ways > 1 else x0
        parts.append((x, _init(sampler, target, x, True), keys[g * m:(g + 1) * m] if ways > 1 else keys))
    jax.block_until_ready(parts)

    def one(g):
        return _run_pieces(sampler, target, *parts[g], num_steps=num_steps, burn_in=burn_in, thin=thin, save=save,
                           unroll=unroll, compiler_options=compiler_options, bar=bool(progress) and g == 0, stop=stop)

    stop = threading.Event()
    if ways == 1:
        return one(0)
    with concurrent.futures.ThreadPoolExecutor(ways) as pool:
        futures = [pool.submit(one, g) for g in range(ways)]
        try:
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        finally:  # after a group's error, or an interrupt, the other groups stop after their current piece
            stop.set()
        errors = [e for f in futures if (e := f.exception()) is not None and not isinstance(e, _Stopped)]
        if errors:
            raise errors[0]
        results = [f.result() for f in futures]

    def cat(axis):
        return lambda *vs: jnp.concatenate(vs, axis=axis)

    return ChainResult(final=jax.tree.map(cat(0), *(r.final for r in results)),
                       samples=jax.tree.map(cat(1), *(r.samples for r in results)) if save else None,
                       info=jax.tree.map(cat(0), *(r.info for r in results)))


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
