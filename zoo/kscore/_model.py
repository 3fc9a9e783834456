"""The kscore family model: a fitted nonparametric score estimator, optionally in a PCA basis."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import samplers
from .._model import AbstractStatelessModel, model_for
from .._trainer import AbstractTrainer
from ._config import KernelScoreConfig
from ._fitted import AbstractFittedScore, KernelExpansion, SteinFitted
from ._objective import score_error, score_matching_objective
from ._stein import Stein
from ._targets import known_target
from ._trainer import KernelScoreFit


@model_for(KernelScoreConfig)
class KernelScore(AbstractStatelessModel):
    """``score(z)``: the fitted estimate of ``grad log q`` (in PCA coordinates when `data_dim` is set)."""

    config: KernelScoreConfig = eqx.field(static=True)
    fitted: AbstractFittedScore
    pca_mean: Float[Array, " D"] | None
    pca_basis: Float[Array, "D d"] | None
    trainer: ClassVar[AbstractTrainer] = KernelScoreFit()

    def __init__(self, config: KernelScoreConfig, *, key: PRNGKeyArray | None = None,
                 fitted: AbstractFittedScore | None = None, pca: tuple[Array, Array] | None = None):
        del key  # nothing random: the skeleton is zeros until `train` fits it
        self.config = config
        dt = config.jnp_dtype
        m, d = config.num_samples, config.dim
        if fitted is None:
            estimator = config.make_estimator()
            kernel = estimator.kernel
            zeros = jnp.zeros((m, d), dt)
            if isinstance(estimator, Stein):
                fitted = SteinFitted(kernel, zeros, zeros, jnp.zeros((m, m), dt), jnp.ones((), dt), jnp.ones((), dt))
            else:
                fitted = KernelExpansion(kernel, zeros, zeros, jnp.zeros((), dt), jnp.ones((), dt))
        self.fitted = fitted
        if config.data_dim is None:
            self.pca_mean = self.pca_basis = None
        elif pca is None:
            self.pca_mean = jnp.zeros((config.data_dim,), dt)
            self.pca_basis = jnp.zeros((config.data_dim, d), dt)
        else:
            self.pca_mean, self.pca_basis = (jnp.asarray(a, dt) for a in pca)

    # --- coordinates -----------------------------------------------------------------
    def project(self, data: Array) -> Float[Array, "n d"]:
        """Data (any trailing shape) to the estimator's coordinates (PCA scores when set)."""
        x = jnp.asarray(data, self.config.jnp_dtype).reshape(len(data), -1)
        if self.pca_basis is None:
            return x
        return (x - self.pca_mean[None, :]) @ self.pca_basis

    def reconstruct(self, z: Float[Array, "n d"]) -> Array:
        if self.pca_basis is None:
            return z
        x = self.pca_mean[None, :] + z @ self.pca_basis.T
        return x.reshape((z.shape[0], *self.config.image_shape)) if self.config.image_shape else x

    def score(self, z: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.fitted(z)

    # --- the family contract ------------------------------------------------------------
    def loss(self, batch, state, *, key):
        del key
        return score_matching_objective(self.fitted, self.project(batch)), (state, {})

    def default_sampler(self) -> samplers.Langevin:
        """Unadjusted Langevin with the config's ``langevin_step_size``."""
        return samplers.Langevin(self.config.langevin_step_size)

    def sample(self, n: int, *, sampler: samplers.AbstractSampler | None = None, key: PRNGKeyArray) -> Array:
        """``config.langevin_steps`` steps of `sampler` (default: unadjusted Langevin) with the
        estimated score, from a Gaussian matched to the fitted points."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        centers = self.fitted.centers
        mean, std = jnp.mean(centers, axis=0), jnp.std(centers, axis=0)
        noise = jax.random.normal(k0, (n, self.config.dim), centers.dtype)
        z0 = mean[None, :] + self.config.init_scale * std[None, :] * noise
        result = samplers.run(sampler, self.fitted, z0, num_steps=self.config.langevin_steps, key=k1, batched=True)
        return self.reconstruct(result.final)

    def evaluate(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
        """Held-out score-matching objective (always) and the score error against the exact
        score when `config.dataset` has one (``toy:gmm8``), on up to `num_valid` points of `data`."""
        del key
        z = self.project(np.asarray(data)[: self.config.num_valid])
        out = {"sm_objective": float(eqx.filter_jit(score_matching_objective)(self.fitted, z))}
        target = known_target(self.config.dataset) if self.config.data_dim is None else None
        if target is not None:
            out |= score_error(self.fitted, target.score, z.astype(jnp.float32))
            out["true_sm_objective"] = float(
                eqx.filter_jit(score_matching_objective)(target.score, z.astype(jnp.float32))
            )
        return out

    def to_images(self, samples: Array) -> np.ndarray:
        if self.config.image_shape:
            x = np.asarray(samples, np.float32).reshape((-1, *self.config.image_shape))
            return np.clip(x, 0.0, 1.0)
        from .._images import scatter

        return scatter(np.asarray(samples))[None]
