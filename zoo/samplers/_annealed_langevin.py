"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), and its inpainting and interpolation modes.

For levels ``i = 0..L-1`` (sigma largest first) and ``T`` steps per level:

    alpha_i = eps * sigma_i^2 / sigma_L^2
    x <- x + alpha_i * s(x, i) + sqrt(2 alpha_i) z

optionally followed by one denoising step ``x <- x + sigma_L^2 s(x, L-1)`` (Tweedie;
score_sde's ``noise_removal``; the original NCSN code has none). The state is never
clipped. One `step` is one transition of one chain: `zoo.samplers.run` drives the
``num_steps`` transitions as one `lax.scan` (``thin``/``save`` give trajectory snapshots).

``eps`` is the sampler's ``step_lr``: both official codes (``ermongroup/ncsn``,
``ermongroup/ncsnv2``) run exactly this update with ``step_lr`` from their configs
(NCSN: ``T = 100, eps = 2e-5``; the NCSNv2 configs: e.g. ``T = 5, eps = 6.2e-6`` on CIFAR-10).
The constructors: ``AnnealedLangevin(sigmas, steps_per_level=T, step_lr=eps, denoise=...)``
takes them as given; `v1` is the NCSN paper's setting; `v2` picks ``eps`` for a given ``T``
by NCSNv2's Technique 4 (from ``gamma = sigma_1/sigma_2`` and ``sigma_L``, so that the last
level's sample variance matches; see `v2_step_size`).

Modes: `AnnealedLangevin` (sampling), `AnnealedLangevinInpainting` (the NCSN paper's
inpainting) and `AnnealedLangevinInterpolation` (NCSNv2's interpolation: chains sharing a
start, their noise interpolated on a quarter circle between two independent draws).

The target is a noise-conditional score ``(x, level_index) -> score`` on one example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._rows import take_row
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


def _float_tuple(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, np.float64).reshape(-1))


class _AnnealedBase(eqx.Module):
    sigmas: tuple[float, ...] = eqx.field(static=True, converter=_float_tuple)
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
        """The NCSN paper's setting by default (T = 100, eps = 2e-5, no denoising step); with
        `step_lr` and `denoise` given it is the plain constructor (e.g. an NCSNv2 config's
        ``n_steps_each``, ``step_lr``, ``denoise``: the same update, only the numbers differ)."""
        return cls(sigmas, steps_per_level, step_lr, denoise)

    @classmethod
    def v2(cls, sigmas, *, steps_per_level: int = 5, denoise: bool = True):
        """NCSNv2's Technique 4: eps from `v2_step_size` with gamma = sigma_1/sigma_2, T = 5, denoising."""
        s = _float_tuple(sigmas)
        if len(s) < 2:
            raise ValueError(f"Technique 4 needs at least two noise levels (gamma = sigma_1/sigma_2), got {s}")
        return cls(s, steps_per_level, v2_step_size(s[0] / s[1], s[-1], steps_per_level), denoise)

    @property
    def num_steps(self) -> int:
        """Transitions of one full run: ``L * T`` plus one for the denoising step."""
        return len(self.sigmas) * self.steps_per_level + int(self.denoise)

    def _schedule(self, counter: Int[Array, ""], dtype) -> tuple[Array, Array, Array, Array]:
        sig = np.asarray(self.sigmas, dtype)  # numpy's float32 arithmetic: the same roundings as XLA's
        n_levels = len(sig)
        level = jnp.minimum(counter // self.steps_per_level, n_levels - 1)
        alpha = self.step_lr * np.square(sig / sig[-1])
        # Per level (and a last row for the denoising step): sigma, the score's coefficient, the noise scale;
        # one materialised row (zoo._rows: XLA:CPU would redo the lookup for every pixel of the update).
        table = np.stack([np.append(sig, sig[-1]), np.append(alpha, np.square(sig[-1])),
                          np.append(np.sqrt(2.0 * alpha), 0.0).astype(dtype)], axis=1)
        final = counter >= n_levels * self.steps_per_level
        sigma, coef, noise = take_row(jnp.asarray(table), jnp.where(final, n_levels, level))
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



def _circle_weights(n: int, dtype: Any) -> tuple[Array, Array]:
    """``(cos, sin)`` of ``n`` angles evenly spaced on ``[0, pi/2]`` (``torch.linspace(0, pi/2, n)``
    in the official code), in `dtype`."""
    angles = jnp.linspace(0.0, np.pi / 2.0, n, dtype=dtype)
    return jnp.cos(angles), jnp.sin(angles)


@SAMPLERS.register("annealed_langevin_interpolation")
class AnnealedLangevinInterpolation(_AnnealedBase, AbstractSampler[Int[Array, ""]]):
    """NCSNv2's interpolation mode (``anneal_Langevin_dynamics_interpolation`` of ``ermongroup/ncsnv2``).

    One chain of the driver is one row of ``K`` images ``x`` of shape ``(K, *example_shape)``
    that start from the same point (the row's start repeated). Each step draws two independent
    normal noises ``p`` and ``q`` of one example's shape and moves image ``j`` with the noise
    ``cos(theta_j) p + sin(theta_j) q``, ``theta_j = j * (pi/2) / (K - 1)`` (``theta = 0`` when
    ``K = 1``), with the annealed Langevin update of `AnnealedLangevin` (the score evaluated on
    each image). Image 0 is thus an ordinary annealed Langevin chain driven by ``p``, image
    ``K - 1`` one driven by ``q`` (up to ``cos(pi/2)`` rounding, ~4e-8 in float32), and every
    image's noise is standard normal, so each is an exact annealed Langevin chain, the row
    sweeping between two independent ones. The official function has no denoising step (the
    ``denoise`` option adds one to every image). The step's key is split into the keys of
    ``p`` and ``q``, in that order."""

    def init(self, target: NoiseScoreFn, x: Array) -> Int[Array, ""]:
        del target
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(f"the state of one row must be (K, *example_shape) with K >= 1, got {x.shape}")
        return jnp.zeros((), jnp.int32)

    def step(
        self, target: NoiseScoreFn, x: Array, state: Int[Array, ""], *, key: PRNGKeyArray
    ) -> tuple[Array, Int[Array, ""], dict[str, Array]]:
        level, sigma, coef, noise = self._schedule(state, x.dtype)
        kp, kq = jax.random.split(key)
        p = jax.random.normal(kp, x.shape[1:], x.dtype)
        q = jax.random.normal(kq, x.shape[1:], x.dtype)
        cos, sin = _circle_weights(x.shape[0], x.dtype)
        expand = (slice(None),) + (None,) * (x.ndim - 1)
        z = cos[expand] * p[None] + sin[expand] * q[None]
        s = jax.vmap(target, in_axes=(0, None))(x, level)
        x = x + coef * s + noise * z
        return x, state + 1, {}
