"""Held-out score matching and hyperparameter selection."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._errors import ConfigError
from ._base import AbstractScoreEstimator, fit
from ._fitted import AbstractFittedScore


ScoreFn = Callable[[Float[Array, " d"]], Float[Array, " d"]]


def score_matching_objective(score: ScoreFn, x: Float[Array, "n d"]) -> Float[Array, ""]:
    """Hyvarinen's objective ``mean_x [ ||s(x)||^2 / 2 + div s(x) ]`` on samples `x`.

    Equals ``E ||s - grad log q||^2 / 2`` minus a constant that does not depend on ``s``, so
    on held-out samples it ranks estimators by their (unknown) score error. The divergence is
    the exact trace of the forward-mode Jacobian.
    """

    def one(xi):
        jac, s = jax.jacfwd(lambda v: (score(v), score(v)), has_aux=True)(xi)
        return 0.5 * jnp.sum(s * s) + jnp.trace(jac)

    return jnp.mean(jax.vmap(one)(x))


@eqx.filter_jit
def _objective_jit(fitted: AbstractFittedScore, x: Array) -> Array:
    return score_matching_objective(fitted, x)


def score_error(fitted: AbstractFittedScore | ScoreFn, true_score: ScoreFn, x: Float[Array, "n d"]) -> dict:
    """Mean squared error ``E ||s - grad log q||^2`` and the relative error
    ``sqrt(E ||s - g||^2 / E ||g||^2)`` at the points `x`."""
    mse, rel = _score_error_jit(fitted, true_score, x)
    return {"score_mse": float(mse), "score_rel_error": float(rel)}


@eqx.filter_jit
def _score_error_jit(fitted, true_score, x):
    s = jax.vmap(fitted)(x)
    g = jax.vmap(true_score)(x)
    mse = jnp.mean(jnp.sum((s - g) ** 2, axis=-1))
    return mse, jnp.sqrt(mse / jnp.mean(jnp.sum(g**2, axis=-1)))


@dataclasses.dataclass(frozen=True)
class Selection:
    """What `select` returns: the chosen estimator, refitted on all samples."""

    index: int
    estimator: AbstractScoreEstimator
    fitted: AbstractFittedScore
    objectives: tuple[float, ...]  # held-out score-matching objective per candidate


def select(
    candidates: Sequence[AbstractScoreEstimator],
    samples: Float[Array, "m d"],
    *,
    valid_fraction: float = 0.2,
    valid: Float[Array, "n d"] | None = None,
    key: PRNGKeyArray,
) -> Selection:
    """Pick the candidate with the lowest held-out score-matching objective.

    Each candidate is fitted on a random ``1 - valid_fraction`` of `samples` (or on all of
    them when `valid` is given) and scored on the rest; the winner is refitted on all
    `samples`. Non-finite objectives never win.
    """
    if not candidates:
        raise ConfigError("select needs at least one candidate estimator")
    samples = jnp.asarray(samples)
    if valid is None:
        if not 0.0 < valid_fraction < 1.0:
            raise ConfigError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        perm = jax.random.permutation(key, samples.shape[0])
        n_valid = max(1, int(round(valid_fraction * samples.shape[0])))
        train, valid = samples[perm[n_valid:]], samples[perm[:n_valid]]
    else:
        train, valid = samples, jnp.asarray(valid, samples.dtype)
    objectives = []
    for est in candidates:
        value = float(_objective_jit(fit(est, train), valid))
        objectives.append(value if np.isfinite(value) else float("inf"))
    index = int(np.argmin(objectives))
    best = candidates[index]
    return Selection(index, best, fit(best, samples), tuple(objectives))
