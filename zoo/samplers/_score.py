"""`as_score`: one continuous target, given as a score function or a log-density, as a score function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, Float


class Score(eqx.Module):
    """``x -> grad log p(x)`` on one example, from `fn`, which is either a score function (its output
    has the shape of ``x``) or an unnormalised log-density (its output is a scalar; it is then
    differentiated). Which one is decided from the output shape when first traced."""

    fn: Callable[[Float[Array, ...]], Array]

    def __call__(self, x: Float[Array, ...]) -> Float[Array, ...]:
        out = jax.eval_shape(self.fn, x)
        if out.shape == ():
            return jax.grad(self.fn)(x)
        if out.shape == x.shape:
            return self.fn(x)
        raise ValueError(
            f"the target maps one example of shape {x.shape} to shape {out.shape}: pass a score function "
            "(output of the example's shape) or a log-density (scalar output); for a noise-conditional "
            "score fix the level, e.g. `lambda x: model.score(x, level)`"
        )


def as_score(target: Any) -> Score:
    """`target` (a score function, a log-density, a model's bound ``score`` method, a fitted kscore
    estimator: any callable on one example) as a `Score`."""
    if isinstance(target, Score):
        return target
    if not callable(target):
        raise TypeError(f"a continuous target must be a callable (score or log-density), got {type(target).__name__}")
    return Score(target)
