"""Optimisers as optax chains, including an exponential moving average of the parameters."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import PyTree


class EmaState(NamedTuple):
    ema: PyTree


def ema_params(decay: float) -> optax.GradientTransformationExtraArgs:
    """An optax transformation that leaves the updates alone and tracks
    ``ema <- decay * ema + (1 - decay) * (params + updates)``: an EMA of the parameters
    after each step. Put it last in a chain; read the average with `get_ema`."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")

    def init(params: PyTree) -> EmaState:
        return EmaState(ema=jax.tree.map(jnp.asarray, params))

    def update(updates: PyTree, state: EmaState, params: PyTree = None, **extra: Any):
        del extra
        if params is None:
            raise ValueError("ema_params needs `params` in update()")
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: (decay * e + (1 - decay) * p).astype(e.dtype), state.ema, new)
        return updates, EmaState(ema=ema)

    return optax.GradientTransformationExtraArgs(init, update)


def get_ema(opt_state: Any) -> PyTree | None:
    """The EMA parameters inside an optimiser state built with `ema_params` (else None)."""
    found = [
        s
        for s in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda s: isinstance(s, EmaState))
        if isinstance(s, EmaState)
    ]
    return found[-1].ema if found else None
