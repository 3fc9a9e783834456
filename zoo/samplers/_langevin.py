"""Unadjusted Langevin dynamics on a score function."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import SAMPLERS, AbstractSampler


ScoreFn = Callable[[Float[Array, "..."]], Float[Array, "..."]]


@SAMPLERS.register("langevin")
class Langevin(AbstractSampler[None]):
    """``x <- x + step_size * score(x) + sqrt(2 * step_size) * z``, z ~ N(0, I).

    The target is a score function ``x -> grad log p(x)`` on a single example.
    """

    step_size: float

    def init(self, target: ScoreFn, x: Array) -> None:
        del target, x
        return None

    def step(
        self, target: ScoreFn, x: Float[Array, ...], state: None, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ...], None, dict[str, Array]]:
        noise = jax.random.normal(key, x.shape, x.dtype)
        step_size = jnp.asarray(self.step_size, x.dtype)
        x = x + step_size * target(x) + jnp.sqrt(2 * step_size) * noise
        return x, state, {}
