"""The estimator interface: ``estimator.fit(samples) -> fitted``, ``fitted(x) -> score``."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._errors import ConfigError
from ._fitted import AbstractFittedScore
from ._kernels import AbstractKernel


class AbstractScoreEstimator(eqx.Module):
    """A nonparametric estimator of ``grad log q`` from samples of ``q``.

    An estimator is an immutable object holding its hyperparameters (kernel, regulariser);
    `fit` maps samples (M, d) to an `AbstractFittedScore`, evaluated out of sample.
    `fit` is pure and traceable: wrap it in `eqx.filter_jit` (or call `zoo.kscore.fit`).
    Computation happens in the dtype of the samples (float32 or float64).
    """

    kernel: eqx.AbstractVar[AbstractKernel]

    @abc.abstractmethod
    def fit(self, samples: Float[Array, "m d"]) -> AbstractFittedScore:
        """Fit to `samples`; returns the fitted estimator."""


@eqx.filter_jit
def _fit_jit(estimator: AbstractScoreEstimator, samples: Array) -> AbstractFittedScore:
    return estimator.fit(samples)


def fit(estimator: AbstractScoreEstimator, samples: Float[Array, "m d"]) -> AbstractFittedScore:
    """``estimator.fit(samples)`` under `jit`, after checking the input."""
    samples = jnp.asarray(samples)
    if samples.ndim != 2:
        raise ConfigError(f"samples must be (M, d), got shape {samples.shape}; flatten or vmap over extra axes")
    if not jnp.issubdtype(samples.dtype, jnp.floating):
        raise ConfigError(f"samples must be floating point, got {samples.dtype}")
    if samples.shape[0] < 2:
        raise ConfigError(f"need at least 2 samples, got {samples.shape[0]}")
    return _fit_jit(estimator, samples)
