"""Block samplers that enumerate a block's configurations, for binary ``(D,)`` and one-hot
``(D, K)`` states: the Hamming-ball sampler (Titsias & Yau, 2017) and block Gibbs.

Each step picks a block of `block_size` distinct positions uniformly at random. The
Hamming-ball sampler then draws an auxiliary state ``u`` uniformly from the states that
differ from ``x`` in at most `radius` positions of the block, and draws the new state from
``p`` restricted to the same ball around ``u``:

    u ~ Uniform(H(x)),   x' ~ p(x') 1[x' in H(u)] / Z(u).

As ``|H(x)|`` is the same for every ``x``, ``p(x) K(x, x')`` is symmetric: the kernel is
reversible for ``p``. With ``radius >= block_size`` the ball is the whole block and the step
is block Gibbs (`EnumeratedBlockGibbs`). A ball is enumerated as a fixed table of value
offsets (``x'_i = (x_i + o_i) mod K`` for the block's positions), so a step evaluates ``f`` at
``sum_{r <= radius} C(b, r) (K - 1)^r`` states.
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._base import SAMPLERS, AbstractSampler
from ._categorical import as_discrete_target
from ._target import from_values, num_values, state_values


#: The most states a block step may enumerate.
MAX_BALL = 1 << 16


@functools.lru_cache(maxsize=64)
def ball_offsets(block_size: int, radius: int, k: int) -> np.ndarray:
    """``(M, block_size)`` value offsets in ``0..K-1`` with at most `radius` non-zeros (row 0:
    all zeros), i.e. the Hamming ball of `radius` in a block of `block_size` ``K``-ary positions."""
    rows = []
    for r in range(min(radius, block_size) + 1):
        for pos in itertools.combinations(range(block_size), r):
            for vals in itertools.product(range(1, k), repeat=r):
                row = np.zeros(block_size, np.int32)
                row[list(pos)] = vals
                rows.append(row)
    return np.stack(rows)


def ball_size(block_size: int, radius: int, k: int) -> int:
    return sum(math.comb(block_size, r) * (k - 1) ** r for r in range(min(radius, block_size) + 1))


class AbstractBlockSampler(AbstractSampler[None]):
    """A block of `block_size` random positions, a Hamming ball of ``ball_radius()`` within it."""

    block_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def ball_radius(self) -> int:
        """The Hamming radius of the ball within a block (``block_size``: block Gibbs)."""

    def init(self, target: Any, x: Array) -> None:
        k = num_values(x)
        if not 1 <= self.block_size <= x.shape[0]:
            raise ValueError(f"block_size must be in 1..{x.shape[0]} (the number of positions), got {self.block_size}")
        m = ball_size(self.block_size, self.ball_radius(), k)
        if m > MAX_BALL:
            raise ValueError(
                f"{type(self).__name__} would enumerate {m} states per step (block_size={self.block_size}, "
                f"radius={self.ball_radius()}, K={k}); the limit is {MAX_BALL}: use a smaller block or radius"
            )
        as_discrete_target(target)
        return None

    def offsets(self, x: Array) -> Int[Array, "M b"]:
        return jnp.asarray(ball_offsets(self.block_size, self.ball_radius(), num_values(x)))

    def apply(self, x: Array, block: Int[Array, " b"], offset: Int[Array, " b"]) -> Array:
        """`x` with the block's values shifted by `offset` (mod K)."""
        v = state_values(x)
        return from_values(x, v.at[block].set((v[block] + offset) % num_values(x)))

    def conditional(self, target: Any, u: Array, block: Int[Array, " b"]) -> tuple[Float[Array, " M"], Array]:
        """The states of the ball around `u` in `block` and their normalised log-probabilities under ``p``."""
        t = as_discrete_target(target)
        ys = jax.vmap(lambda o: self.apply(u, block, o))(self.offsets(u))
        lp = jax.vmap(lambda y: t.log_prob(y, t.init(y)))(ys)
        return jax.nn.log_softmax(lp), ys

    def step(self, target: Any, x: Array, state: None, *, key: PRNGKeyArray):
        k_b, k_u, k_y = jax.random.split(key, 3)
        block = jax.random.choice(k_b, x.shape[0], (self.block_size,), replace=False)
        offsets = self.offsets(x)
        if self.ball_radius() < self.block_size:
            u = self.apply(x, block, offsets[jax.random.randint(k_u, (), 0, offsets.shape[0])])
        else:
            u = x
        log_p, ys = self.conditional(target, u, block)
        x_new = ys[jax.random.categorical(k_y, log_p)]
        hops = jnp.sum(state_values(x_new) != state_values(x)).astype(jnp.float32)
        return x_new, state, {"hops": hops}


@SAMPLERS.register("hamming_ball")
class HammingBall(AbstractBlockSampler):
    """The Hamming-ball sampler: random blocks of `block_size` positions, balls of `radius`."""

    block_size: int = 10
    radius: int = 1

    def __check_init__(self):
        if self.block_size < 1 or self.radius < 1:
            raise ValueError(f"need block_size >= 1 and radius >= 1, got {self.block_size}, {self.radius}")

    def ball_radius(self) -> int:
        return self.radius


@SAMPLERS.register("enumerated_block_gibbs")
class EnumeratedBlockGibbs(AbstractBlockSampler):
    """Block Gibbs: a random block of `block_size` positions drawn from its exact conditional
    by enumerating its ``K ** block_size`` configurations."""

    block_size: int = 3

    def __check_init__(self):
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")

    def ball_radius(self) -> int:
        return self.block_size
