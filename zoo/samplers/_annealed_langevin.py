"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), and its inpainting mode.

For levels ``i = 0..L-1`` (sigma largest first) and ``T`` steps per level:

    alpha_i = eps * sigma_i^2 / sigma_L^2
    x <- x + alpha_i * s(x, i) + sqrt(2 alpha_i) z

optionally followed by one denoising step ``x <- x + sigma_L^2 s(x, L-1)`` (Tweedie;
score_sde's ``noise_removal``; the original NCSN code has none). The state is never
clipped. One `step` is one transition of one chain: `zoo.samplers.run` drives the
``num_steps`` transitions as one `lax.scan` (``thin``/``save`` give trajectory snapshots).

Step rules: v1 uses ``T = 100, eps = 2e-5`` (the NCSN paper); v2 (NCSNv2, Technique 4)
picks ``eps`` for a given ``T`` (5 in the paper) from ``gamma = sigma_1/sigma_2`` and
``sigma_L`` so that the last level's sample variance matches; see `v2_step_size`.

The target is a noise-conditional score ``(x, level_index) -> score`` on one example.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._base import SAMPLERS, AbstractSampler


NoiseScoreFn = Callable[[Float[Array, "..."], Int[Array, ""]], Float[Array, "..."]]


def v2_step_size(gamma: float, sigma_end: float, steps_per_level: int) -> float:
    """NCSNv2 Technique 4: the eps that brings
    ``(1 - eps/s^2)^(2T) (gamma^2 - 2eps/(s^2 - s^2(1 - eps/s^2)^2)) + 2eps/(s^2 - s^2(1 - eps/s^2)^2)``
    (``s = sigma_L``) maximally close to 1."""
    s2 = float(sigma_end) ** 2

    def f(eps: float) -> float:
        r = 1.0 - eps / s2
        c = 2.0 * eps / (s2 - s2 * r * r)
        return abs(r ** (2 * steps_per_level) * (gamma**2 - c) + c - 1.0)

    grid = s2 * np.logspace(-12, -1e-6, 4001)
    j = int(np.argmin([f(float(e)) for e in grid]))
    fine = np.geomspace(grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)], 2001)
    return float(fine[int(np.argmin([f(float(e)) for e in fine]))])


class _AnnealedBase(eqx.Module):
    sigmas: tuple[float, ...] = eqx.field(static=True)
    steps_per_level: int = eqx.field(static=True)
    step_lr: float = eqx.field(static=True)
    denoise: bool = eqx.field(static=True)

    def __check_init__(self):
        s = self.sigmas
        if len(s) < 1 or any(a <= 0 for a in s) or any(a < b for a, b in zip(s, s[1:])):
            raise ValueError(f"sigmas must be positive and non-increasing (largest first), got {s}")
        if self.steps_per_level < 1 or not self.step_lr > 0:
            raise ValueError(f"need steps_per_level >= 1 and step_lr > 0, got {self.steps_per_level}, {self.step_lr}")

    @classmethod
    def v1(cls, sigmas, *, steps_per_level: int = 100, step_lr: float = 2e-5, denoise: bool = False):
        """The NCSN paper's rule: T = 100, eps = 2e-5, no denoising step."""
        return cls(tuple(float(s) for s in sigmas), steps_per_level, step_lr, denoise)

    @classmethod
    def v2(cls, sigmas, *, steps_per_level: int = 5, denoise: bool = True):
        """NCSNv2's rule: eps from `v2_step_size` with gamma = sigma_1/sigma_2, T = 5, denoising."""
        s = tuple(float(v) for v in sigmas)
        return cls(s, steps_per_level, v2_step_size(s[0] / s[1], s[-1], steps_per_level), denoise)

    @property
    def num_steps(self) -> int:
        """Transitions of one full run: ``L * T`` plus one for the denoising step."""
        return len(self.sigmas) * self.steps_per_level + int(self.denoise)

    def _schedule(self, counter: Int[Array, ""], dtype) -> tuple[Array, Array, Array, Array]:
        sig = jnp.asarray(self.sigmas, dtype)
        n_levels = len(self.sigmas)
        level = jnp.minimum(counter // self.steps_per_level, n_levels - 1)
        sigma, sigma_l = sig[level], sig[-1]
        alpha = self.step_lr * jnp.square(sigma / sigma_l)
        final = counter >= n_levels * self.steps_per_level
        coef = jnp.where(final, jnp.square(sigma_l), alpha)
        noise = jnp.where(final, jnp.zeros_like(alpha), jnp.sqrt(2.0 * alpha))
        return level, sigma, coef, noise


@SAMPLERS.register("annealed_langevin")
class AnnealedLangevin(_AnnealedBase, AbstractSampler[Int[Array, ""]]):
    """Annealed Langevin dynamics on a noise-conditional score ``(x, i) -> s(x, i)``.

    Run it for ``sampler.num_steps`` transitions (``L * T``, plus one with ``denoise``);
    further transitions repeat the final one."""

    def init(self, target: NoiseScoreFn, x: Array) -> Int[Array, ""]:
        del target, x
        return jnp.zeros((), jnp.int32)

    def step(
        self, target: NoiseScoreFn, x: Array, state: Int[Array, ""], *, key: PRNGKeyArray
    ) -> tuple[Array, Int[Array, ""], dict[str, Array]]:
        level, sigma, coef, noise = self._schedule(state, x.dtype)
        s = target(x, level)
        x = x + coef * s + noise * jax.random.normal(key, x.shape, x.dtype)
        return x, state + 1, {}


@SAMPLERS.register("annealed_langevin_inpainting")
class AnnealedLangevinInpainting(_AnnealedBase, AbstractSampler[tuple[Int[Array, ""], Array]]):
    """Inpainting with annealed Langevin (the NCSN paper's Figure 6 demo).

    The chain state is a tuple ``(x, observed, mask)`` (mask 1 where pixels are
    observed). At the start of each level the observed pixels are replaced by
    ``observed + sigma_i z`` (redrawn once per level, as ``anneal_Langevin_dynamics_inpainting``)
    and held there before and after every step; the optional denoising step ends with
    the exact observed pixels. Only ``x`` moves."""

    def init(self, target: NoiseScoreFn, x: tuple[Array, Array, Array]) -> tuple[Int[Array, ""], Array]:
        del target
        return jnp.zeros((), jnp.int32), x[1]

    def step(
        self,
        target: NoiseScoreFn,
        x: tuple[Array, Array, Array],
        state: tuple[Int[Array, ""], Array],
        *,
        key: PRNGKeyArray,
    ) -> tuple[tuple[Array, Array, Array], tuple[Int[Array, ""], Array], dict[str, Array]]:
        img, observed, mask = x
        counter, corrupted = state
        level, sigma, coef, noise = self._schedule(counter, img.dtype)
        k1, k2 = jax.random.split(key)
        new_level = (counter % self.steps_per_level == 0) & (counter < len(self.sigmas) * self.steps_per_level)
        corrupted = jnp.where(new_level, observed + sigma * jax.random.normal(k1, img.shape, img.dtype), corrupted)
        final = counter >= len(self.sigmas) * self.steps_per_level
        fixed = jnp.where(final, observed, corrupted)
        img = mask * corrupted + (1 - mask) * img
        img = img + coef * target(img, level) + noise * jax.random.normal(k2, img.shape, img.dtype)
        img = mask * fixed + (1 - mask) * img
        return (img, observed, mask), (counter + 1, corrupted), {}

