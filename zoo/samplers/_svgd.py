"""Stein variational gradient descent (Liu & Wang, NeurIPS 2016).

The state is the whole particle set ``x`` (n, ...) (run it with ``batched=False``: the particles
interact). One step moves every particle along the kernelised Stein direction

    phi(x_i) = 1/n sum_j [ k(x_j, x_i) grad log p(x_j) + grad_{x_j} k(x_j, x_i) ],

with the RBF kernel ``k(x, y) = exp(-||x - y||^2 / (2 h^2))``. The bandwidth ``h`` is given, or
(``bandwidth=None``) the median rule of the authors' code, recomputed every step:
``h^2 = med / (2 log(n + 1))``, ``med`` the median of the n x n squared distances (zero diagonal
included, as ``numpy.median`` of ``squareform(pdist(x))**2``).

Step sizes: fixed (``x <- x + step_size * phi``) or, with ``adagrad=True`` (the default, as the
authors' ``svgd.py``), "AdaGrad with momentum": ``G <- phi^2`` at the first step and
``G <- alpha G + (1 - alpha) phi^2`` after, ``x <- x + step_size * phi / (fudge + sqrt(G))``.

The target is a score function or a log-density on one example (see `zoo.samplers.as_score`): an
NCSN score at a fixed level, an EBM log-density, a fitted kscore estimator (SVGD with an estimated
score). Particles of any shape (n, ...) are flattened for the kernel.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._distances import sq_distances
from .._order import median
from ._base import SAMPLERS, AbstractSampler
from ._score import as_score


class SVGDState(eqx.Module):
    """The AdaGrad accumulator ``G`` (zeros with a fixed step) and the step counter."""

    sq_grad: Float[Array, "n ..."]
    count: Int[Array, ""]


def svgd_bandwidth(x: Float[Array, "n d"]) -> Float[Array, ""]:
    """The median rule of Liu & Wang's code: ``h = sqrt(med / (2 log(n + 1)))``, ``med`` the median of
    all n^2 squared pairwise distances; 1 when every particle coincides (the code would divide by 0)."""
    n = x.shape[0]
    med = median(sq_distances(x))  # exact, without XLA's slow sort (zoo._order)
    h = jnp.sqrt(0.5 * med / jnp.log(jnp.asarray(n + 1.0, x.dtype)))
    return jax.lax.stop_gradient(jnp.where(med > 0, h, jnp.ones_like(h)))


@SAMPLERS.register("svgd")
class SVGD(AbstractSampler[SVGDState]):
    """SVGD on a particle set; see the module docstring.

    - `step_size`: the (master) step size; the authors' default 1e-3.
    - `bandwidth`: the RBF ``h`` (a float), or None for the median rule at every step.
    - `adagrad`: AdaGrad-with-momentum step sizes (`alpha`, `fudge`) as the original code, or a fixed step.

    `step` reports the bandwidth used and ``phi_norm``, the root mean square of the Stein direction
    (it goes to zero as the particles settle).
    """

    step_size: float = 1e-3
    bandwidth: float | None = None
    adagrad: bool = True
    alpha: float = 0.9
    fudge: float = 1e-6

    def __check_init__(self):
        if not self.step_size > 0:
            raise ValueError(f"SVGD step_size must be > 0, got {self.step_size}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"SVGD bandwidth must be > 0 or None (median rule), got {self.bandwidth}")
        if not 0 <= self.alpha < 1 or not self.fudge > 0:
            raise ValueError(f"need 0 <= alpha < 1 and fudge > 0, got alpha={self.alpha}, fudge={self.fudge}")

    def _check(self, x: Array) -> None:
        if x.ndim < 2 or x.shape[0] < 2:
            raise ValueError(
                f"SVGD moves a set of particles (n, ...) with n >= 2, got shape {x.shape}; "
                "run it with `zoo.samplers.run(..., batched=False)` on the whole set"
            )

    def init(self, target: Any, x: Float[Array, "n ..."]) -> SVGDState:
        del target
        self._check(x)
        return SVGDState(jnp.zeros_like(x), jnp.zeros((), jnp.int32))

    def direction(
        self, x: Float[Array, "n ..."], scores: Float[Array, "n ..."]
    ) -> tuple[Float[Array, "n ..."], Float[Array, ""]]:
        """``(phi(x), h)``: the Stein direction at every particle and the bandwidth used."""
        n = x.shape[0]
        flat = x.reshape(n, -1)
        h = svgd_bandwidth(flat) if self.bandwidth is None else jnp.asarray(self.bandwidth, x.dtype)
        k = jnp.exp(-sq_distances(flat) / (2.0 * h * h))  # symmetric
        # sum_j grad_{x_j} k(x_j, x_i) = sum_j k_ij (x_i - x_j) / h^2
        repulsion = (flat * jnp.sum(k, axis=1, keepdims=True) - k @ flat) / (h * h)
        phi = (k @ scores.reshape(n, -1) + repulsion) / n
        return phi.reshape(x.shape), h

    def step(
        self, target: Any, x: Float[Array, "n ..."], state: SVGDState, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, "n ..."], SVGDState, dict[str, Array]]:
        del key  # deterministic
        scores = jax.vmap(as_score(target))(x)
        phi, h = self.direction(x, scores)
        step_size = jnp.asarray(self.step_size, x.dtype)
        if self.adagrad:
            sq = jnp.where(state.count == 0, phi * phi, self.alpha * state.sq_grad + (1 - self.alpha) * phi * phi)
            x = x + step_size * phi / (self.fudge + jnp.sqrt(sq))
        else:
            sq = state.sq_grad
            x = x + step_size * phi
        info = {"bandwidth": h, "phi_norm": jnp.sqrt(jnp.mean(phi * phi))}
        return x, SVGDState(sq, state.count + 1), info
