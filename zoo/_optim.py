"""Optimisers as optax chains: the optimiser table, `make_optimizer`, and an exponential moving
average of the parameters (`ema_params`) whose state is read and written by name with
`optax.tree_utils`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import PyTree

from ._errors import ConfigError


if TYPE_CHECKING:
    from ._train import TrainConfig


OptimizerFactory = Callable[[optax.ScalarOrSchedule, "TrainConfig"], optax.GradientTransformation]

_OPTIMIZERS: dict[str, OptimizerFactory] = {}


def register_optimizer(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Decorator: file ``factory(learning_rate, train_config) -> GradientTransformation`` under
    `name`, the value `TrainConfig.optimizer` takes."""

    def register(factory: OptimizerFactory) -> OptimizerFactory:
        if name in _OPTIMIZERS:
            raise ValueError(f"an optimizer named {name!r} is already registered")
        _OPTIMIZERS[name] = factory
        return factory

    return register


def optimizer_names() -> tuple[str, ...]:
    """The registered optimizer names."""
    return tuple(sorted(_OPTIMIZERS))


def get_optimizer(name: str) -> OptimizerFactory:
    """The factory registered as `name`; a `ConfigError` listing the known names otherwise."""
    try:
        return _OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown optimizer {name!r}; choose one of {', '.join(optimizer_names())} "
            "(or register another with zoo._optim.register_optimizer)"
        ) from None


@register_optimizer("adam")
def _adam(lr: optax.ScalarOrSchedule, config: TrainConfig) -> optax.GradientTransformation:
    return optax.adam(lr, b1=config.b1, b2=config.b2, eps=config.eps)


@register_optimizer("adamw")
def _adamw(lr: optax.ScalarOrSchedule, config: TrainConfig) -> optax.GradientTransformation:
    return optax.adamw(lr, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay)


@register_optimizer("sgd")
def _sgd(lr: optax.ScalarOrSchedule, config: TrainConfig) -> optax.GradientTransformation:
    del config
    return optax.sgd(lr)


def make_optimizer(
    config: TrainConfig,
    optimizer: optax.GradientTransformation | None = None,
    *,
    leaf_scales: tuple[float, ...] | None = None,
) -> optax.GradientTransformation:
    """The optax chain for a `TrainConfig`: clipping, the named optimiser with warm-up (or
    `optimizer`, an optax object used as it is), each parameter's step scaled by its entry of
    `leaf_scales` (`scale_leaves`; per-parameter learning rates), then EMA."""
    parts = []
    if optimizer is None:
        lr: optax.ScalarOrSchedule = config.learning_rate
        if config.warmup_steps > 0:
            lr = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
        if config.grad_clip is not None:
            parts.append(optax.clip_by_global_norm(config.grad_clip))
        optimizer = get_optimizer(config.optimizer)(lr, config)
    parts.append(optimizer)
    if leaf_scales is not None:
        parts.append(scale_leaves(leaf_scales))
    if config.ema_decay is not None:
        parts.append(ema_params(config.ema_decay))
    return optax.chain(*parts)


def scale_leaves(scales: tuple[float, ...]) -> optax.GradientTransformation:
    """Multiply the updates' i-th array leaf (in `jax.tree.leaves` order) by ``scales[i]``: one
    `optax.masked` `optax.scale` per distinct factor other than 1. Stateless (its state has no
    arrays), so adding it leaves a saved optimiser state's arrays as they are."""
    scales = tuple(float(s) for s in scales)

    def mask(value: float) -> Callable[[PyTree], PyTree[bool]]:
        def fn(updates: PyTree) -> PyTree[bool]:
            leaves, treedef = jax.tree.flatten(updates)
            if len(leaves) != len(scales):
                raise ValueError(f"scale_leaves has {len(scales)} scales for {len(leaves)} parameter arrays")
            return jax.tree.unflatten(treedef, [s == value for s in scales])

        return fn

    factors = sorted({s for s in scales if s != 1.0})
    return optax.chain(*(optax.masked(optax.scale(f), mask(f)) for f in factors))


class EmaParamsState(NamedTuple):
    """The state of `ema_params`, found in an optimiser state by this class's name."""

    ema: PyTree


def ema_params(decay: float) -> optax.GradientTransformationExtraArgs:
    """An optax transformation that leaves the updates alone and tracks
    ``ema <- decay * ema + (1 - decay) * (params + updates)``: an EMA of the parameters
    after each step. Put it last in a chain; read the average with `get_ema`."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")

    def init(params: PyTree) -> EmaParamsState:
        return EmaParamsState(ema=jax.tree.map(jnp.asarray, params))

    def update(updates: PyTree, state: EmaParamsState, params: PyTree = None, **extra: Any):
        del extra
        if params is None:
            raise ValueError("ema_params needs `params` in update()")
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: (decay * e + (1 - decay) * p).astype(e.dtype), state.ema, new)
        return updates, EmaParamsState(ema=ema)

    return optax.GradientTransformationExtraArgs(init, update)


def get_ema(opt_state: PyTree) -> PyTree | None:
    """The EMA parameters inside an optimiser state built with `ema_params` (else None)."""
    state = optax.tree_utils.tree_get(opt_state, EmaParamsState.__name__)
    return None if state is None else state.ema


def set_ema(opt_state: PyTree, ema: PyTree) -> PyTree:
    """`opt_state` with the EMA parameters of its `ema_params` replaced by `ema` (e.g. a loaded
    checkpoint's EMA weights, to continue averaging from them)."""
    if optax.tree_utils.tree_get(opt_state, EmaParamsState.__name__) is None:
        raise ValueError("the optimiser state has no ema_params state to set")
    return optax.tree_utils.tree_set(opt_state, **{EmaParamsState.__name__: EmaParamsState(ema=ema)})
