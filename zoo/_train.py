"""The shared training driver: `fit`.

One jitted step (optax update of the arrays `model.trainable()` selects, the family's
auxiliary state, optional EMA), data-parallel over every local device through `jax.sharding`
(batch sharded over a ``data`` mesh axis, parameters replicated), multi-host through
`jax.distributed`. Periodic Orbax checkpoints of the full training state (through the one
leaf codec, `zoo._leaves`) make a run resumable: a run resumed from its last checkpoint sees
exactly the batches (`zoo.data._batching.batch_indices`) and PRNG keys an uninterrupted run would, so
both end with the same weights. The checkpoints also carry the training seconds so far, so a
workdir's wall time adds up across resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import PRNGKeyArray, PyTree

from . import _leaves, _malloc
from ._errors import CheckpointError, ConfigError
from ._model import AbstractModel
from ._onednn import xla_kernels
from ._optim import get_ema, get_optimizer, make_optimizer, set_ema
from ._progress import tqdm_bar
from .data._batching import batch_indices


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser, schedule, EMA, batching, logging and checkpointing."""

    steps: int
    batch_size: int = 128
    learning_rate: float = 1e-3
    optimizer: str = "adam"  # a name in the optimiser table: "adam" | "adamw" | "sgd" (zoo._optim)
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None  # global-norm clipping
    warmup_steps: int = 0
    ema_decay: float | None = None
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    seed: int = 0  # data order

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size <= 0:
            raise ConfigError(f"need steps >= 0 and batch_size > 0, got {self.steps}, {self.batch_size}")
        get_optimizer(self.optimizer)  # a ConfigError naming the known optimisers

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"TrainConfig has no field(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class TrainResult:
    """What `fit` returns. ``ema`` is the EMA model (None without ``ema_decay``);
    ``info`` holds the facts a checkpoint records (steps, hardware, wall time...)."""

    model: AbstractModel
    ema: AbstractModel | None
    state: PyTree
    step: int
    history: list[dict[str, float]]
    info: dict[str, Any]


def hardware() -> str:
    """A short description of the devices this process trains on."""
    devs = jax.devices()
    kind = devs[0].device_kind
    if devs[0].platform == "cpu":
        return f"CPU ({os.cpu_count()} cores, {platform.machine()}), {len(devs)} JAX device(s)"
    return f"{len(devs)} x {kind}" + (f", {jax.process_count()} hosts" if jax.process_count() > 1 else "")


def data_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over all (or the given) devices."""
    devs = np.asarray(devices if devices is not None else jax.devices())
    return Mesh(devs, ("data",))


def _num_examples(data: PyTree[np.ndarray]) -> int:
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ConfigError("training data is empty")
    n = leaves[0].shape[0]
    if any(x.shape[0] != n for x in leaves):
        raise ConfigError(f"training arrays disagree on the number of examples: {[x.shape for x in leaves]}")
    return n


def _global_batch(data: PyTree[np.ndarray], idx: np.ndarray, sharding: NamedSharding) -> PyTree[jax.Array]:
    # Each host holds its slice of the global batch; single-process this is the batch.
    nproc, pid = jax.process_count(), jax.process_index()
    local = idx.reshape(nproc, -1)[pid]
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x[local])), data)


def _place(tree: PyTree, sharding: NamedSharding) -> PyTree:
    # Always a copy: the step donates its inputs, which must never be the caller's arrays
    # (nor two leaves sharing one buffer).
    # (device_put alone may reuse the source buffer as one shard of the result.)
    return jax.tree.map(lambda x: jax.device_put(jnp.copy(x), sharding) if eqx.is_array(x) else x, tree)


def _leaf_scales(model: AbstractModel, config: TrainConfig) -> tuple[float, ...] | None:
    """Each trainable array's ``rate / config.learning_rate`` from `AbstractModel.learning_rates`,
    or None where every parameter trains at the run's rate."""
    rates = model.learning_rates(config.learning_rate)
    if rates is None:
        return None
    params = eqx.filter(model, model.trainable())
    n_params, rate_leaves = len(jax.tree.leaves(params)), jax.tree.leaves(rates)
    if len(rate_leaves) != n_params:
        raise ValueError(
            f"{type(model).__name__}.learning_rates gave {len(rate_leaves)} rates for {n_params} trainable arrays"
        )
    scales = tuple(float(r) / config.learning_rate for r in rate_leaves)
    return None if all(s == 1.0 for s in scales) else scales


@functools.lru_cache(maxsize=16)
def _make_step(
    config: TrainConfig,
    optimizer: optax.GradientTransformation | None,
    options: tuple[tuple[str, Any], ...] = (),
    leaf_scales: tuple[float, ...] | None = None,
) -> Callable:
    # Cached on the (hashable) config, optimiser, the model's compiler options (`AbstractModel.compiler_options`)
    # and per-parameter rates so repeated `fit` calls reuse the compiled step.
    optimizer = make_optimizer(config, optimizer, leaf_scales=leaf_scales)

    @eqx.filter_jit(donate="all-except-first", compiler_options=dict(options) or None)
    def step(key, model, opt_state, state, batch):
        params, frozen = eqx.partition(model, model.trainable())

        def loss_fn(p):
            return eqx.combine(p, frozen).loss(batch, state, key=key)

        (loss, (new_state, metrics)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        model = eqx.apply_updates(model, updates)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
        return model, opt_state, new_state, metrics

    return step


class _Checkpoints:
    """Orbax `CheckpointManager` over the full training state: per step, the items ``state``
    (the state's arrays as `zoo._leaves` items ``{"00000": leaf, ...}``) and ``meta`` (JSON)."""

    def __init__(self, directory: Path, keep: int) -> None:
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = directory.absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, tree: PyTree, meta: dict[str, Any]) -> None:
        state = _leaves.save_args(_leaves.to_items(tree))
        self.manager.save(step, args=self._ocp.args.Composite(state=state, meta=self._ocp.args.JsonSave(meta)))
        self.manager.wait_until_finished()

    def restore(self, step: int, template: PyTree) -> tuple[PyTree, dict[str, Any]]:
        """The state saved at `step`, in the structure and device layout of `template`, and its meta."""
        state = _leaves.restore_args(_leaves.abstract_items(template))
        try:
            out = self.manager.restore(
                step, args=self._ocp.args.Composite(state=state, meta=self._ocp.args.JsonRestore())
            )
            tree = _leaves.from_items(template, out.state)
        except Exception as e:
            raise CheckpointError(
                f"cannot resume from {self.directory}/{step}: {type(e).__name__}: {e}. "
                "The training state does not match this model/optimiser; use a fresh workdir."
            ) from e
        return tree, dict(out.meta)

    def close(self) -> None:
        self.manager.close()


def fit(
    model: AbstractModel,
    data: PyTree[np.ndarray],
    config: TrainConfig,
    *,
    key: PRNGKeyArray,
    workdir: str | os.PathLike | None = None,
    ema: AbstractModel | None = None,
    mesh: Mesh | None = None,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    optimizer: optax.GradientTransformation | None = None,
) -> TrainResult:
    """Train `model` on `data` (a pytree of arrays with a shared leading axis).

    **Arguments:**

    - `model`: a freshly built model (training from scratch) or a loaded one (fine-tuning).
    - `data`: numpy arrays; batches of ``config.batch_size`` are drawn each step.
    - `config`: a `TrainConfig`.
    - `key`: PRNG key; step ``t`` uses ``fold_in(key, t)``.
    - `workdir`: where to write ``metrics.jsonl`` and Orbax checkpoints of the training
      state every ``config.checkpoint_every`` steps. If it already holds a checkpoint
      of this run, training resumes from the latest one.
    - `ema`: initial EMA weights (e.g. a loaded checkpoint's), else the model's.
    - `mesh`: device mesh with a ``data`` axis (default: all devices).
    - `progress`: progress bar (default: when stderr is a terminal).
    - `callback`: called as ``callback(step, metrics)`` at every log step.
    - `optimizer`: an optax transformation to use instead of the one ``config`` names
      (``config.ema_decay`` still appends the EMA); a resumed run must pass the same one.
    """
    t_start = time.perf_counter()
    n = _num_examples(data)
    if config.batch_size > n:
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {n} training examples; use at most {n}")
    mesh = mesh if mesh is not None else data_mesh()
    ndev = mesh.devices.size
    if config.batch_size % ndev:
        raise ConfigError(
            f"batch_size {config.batch_size} is not divisible by the {ndev} devices; use a multiple of {ndev}"
        )
    replicated = NamedSharding(mesh, P())
    batch_sharding = NamedSharding(mesh, P("data"))
    leaf_scales = _leaf_scales(model, config)
    opt = make_optimizer(config, optimizer, leaf_scales=leaf_scales)
    key_state, key_steps = jax.random.split(key)

    model = _place(model, replicated)
    params = eqx.filter(model, model.trainable())
    opt_state = opt.init(params)
    if ema is not None and config.ema_decay is not None:
        opt_state = set_ema(opt_state, eqx.filter(ema, ema.trainable()))
    opt_state = _place(opt_state, replicated)
    state = _place(model.init_state(data, key=key_state), replicated)

    start = 0
    earlier_s, estimated = 0.0, False  # training seconds of earlier runs of this workdir
    history: list[dict[str, float]] = []
    ckpts = None
    log_file = None
    run_meta = {"train_config": config.to_dict(), "num_examples": n}
    if workdir is not None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        ckpts = _Checkpoints(workdir / "checkpoints", config.keep_checkpoints)
        latest = ckpts.latest()
        if latest is not None:
            (model, opt_state, state), meta = ckpts.restore(latest, (model, opt_state, state))
            _check_resume(meta, run_meta, workdir)
            start = latest
            earlier_s, estimated = _earlier_wall_time(meta, workdir, latest)
        log_file = open(workdir / "metrics.jsonl", "a")

    step_fn = _make_step(config, optimizer, model.compiler_options(), leaf_scales)
    # Over several devices: XLA's convolutions, which GSPMD partitions (it would replicate oneDNN's custom calls,
    # zoo._onednn, on every device). The step traces on its first call, inside this context.
    kernels = xla_kernels if ndev > 1 else contextlib.nullcontext
    bar = tqdm_bar(config.steps, desc="train", initial=start) if progress is not False else None
    sums: dict[str, Any] = {}
    count = 0
    t_log = time.perf_counter()
    try:
        for step in range(start, config.steps):
            idx = batch_indices(n, config.batch_size, step, seed=config.seed)
            batch = _global_batch(data, idx, batch_sharding)
            k = jax.random.fold_in(key_steps, step)
            with kernels():
                model, opt_state, state, metrics = step_fn(k, model, opt_state, state, batch)
            if step == start and _malloc.applied():  # the step compiled and ran once: settle the heap (zoo/_malloc.py)
                jax.block_until_ready(model)
                _malloc.settle()
            sums = metrics if not sums else jax.tree.map(jnp.add, sums, metrics)
            count += 1
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                now = time.perf_counter()
                row = {"step": done, **{k: float(v) / count for k, v in sums.items()}}
                row["steps_per_s"] = count / max(now - t_log, 1e-9)
                history.append(row)
                if log_file is not None:
                    log_file.write(json.dumps(row) + "\n")
                    log_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4g}")
                if callback is not None:
                    callback(done, row)
                sums, count, t_log = {}, 0, now
            if bar is not None:
                bar.update(1)
            if ckpts is not None and (done % config.checkpoint_every == 0 or done == config.steps):
                wall = {"wall_time_s": round(earlier_s + time.perf_counter() - t_start, 3)}
                ckpts.save(done, (model, opt_state, state), {**run_meta, **wall, "wall_time_estimated": estimated})
    finally:
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
        if ckpts is not None:
            ckpts.close()

    ema_params_tree = get_ema(opt_state)
    ema_model = None
    if ema_params_tree is not None:
        ema_model = eqx.combine(ema_params_tree, eqx.filter(model, model.trainable(), inverse=True))
    this_run = time.perf_counter() - t_start
    info = {
        "steps": config.steps,
        "hardware": hardware(),
        "wall_time_s": round(earlier_s + this_run, 1),  # every run of this workdir
        "wall_time_s_this_run": round(this_run, 1),
        "resumed_from": start,
        "train_config": config.to_dict(),
    }
    if estimated:
        info["wall_time_estimated"] = True  # earlier runs' share estimated from metrics.jsonl
    return TrainResult(model=model, ema=ema_model, state=state, step=config.steps, history=history, info=info)


def _earlier_wall_time(meta: dict[str, Any], workdir: Path, step: int) -> tuple[float, bool]:
    """Training seconds recorded up to the checkpoint at `step`, and whether they are an estimate.

    A checkpoint written before wall time was recorded gets an estimate from metrics.jsonl (rows up
    to `step`): each row's steps since the previous row over its steps_per_s, where a row whose step
    does not grow starts a resumed run and counts at most ``log_every`` steps.
    """
    if "wall_time_s" in meta:
        return float(meta["wall_time_s"]), bool(meta.get("wall_time_estimated", False))
    log_every = max(int(meta.get("train_config", {}).get("log_every", 1)), 1)
    total, prev = 0.0, 0
    try:
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0.0, True
    for line in lines:
        try:
            row = json.loads(line)
            done, rate = int(row["step"]), float(row["steps_per_s"])
        except (ValueError, KeyError, TypeError):
            continue
        if done <= step and rate > 0:
            total += (done - prev if done > prev else min(done, log_every)) / rate
        prev = done
    return round(total, 3), True


def _check_resume(saved: dict[str, Any], current: dict[str, Any], workdir: Path) -> None:
    a, b = dict(saved["train_config"]), dict(current["train_config"])
    a.pop("steps", None), b.pop("steps", None)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if changed or saved.get("num_examples") != current["num_examples"]:
        what = [f"{k}: the run has {a.get(k)!r}, this call {b.get(k)!r}" for k in changed] or ["the training data"]
        raise ConfigError(
            f"{workdir} holds a run with different settings ({'; '.join(what)}); resume with the run's settings "
            "(only `steps` may grow; `zoo train` takes them as flags, e.g. --checkpoint-every) or use a fresh workdir"
        )


def initialize_distributed(**kwargs: Any) -> None:
    """Join a multi-host run (TPU pod, multi-node GPU) before training: a thin wrapper of
    `jax.distributed.initialize` (coordinator address, process count and id come from the
    cluster environment or `kwargs`). `fit` then shards each global batch over every
    device of every host, each host feeding its own slice."""
    jax.distributed.initialize(**kwargs)
