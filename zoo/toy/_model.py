"""A 2-D (or d-D) score model: the small example family that proves the foundation.

An MLP ``s(x) ~ grad log p_sigma(x)`` trained by denoising score matching at one noise
level ``sigma`` and sampled with the shared `zoo.samplers.Langevin`.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import samplers
from .._model import AbstractPointModel, AbstractStatelessModel, model_for
from .._score_matching import ssm_loss
from .._trainer import AbstractTrainer, GradientTrainer
from ._config import ToyScoreConfig


@model_for(ToyScoreConfig)
class ToyScore(AbstractPointModel, AbstractStatelessModel):
    """``score(x)``: an estimate of grad log p(x) at noise level ``config.sigma``."""

    config: ToyScoreConfig = eqx.field(static=True)
    mlp: eqx.nn.MLP
    trainer: ClassVar[AbstractTrainer] = GradientTrainer()

    def __init__(self, config: ToyScoreConfig, *, key: PRNGKeyArray):
        self.config = config
        self.mlp = eqx.nn.MLP(config.dim, config.dim, config.width, config.depth, activation=jax.nn.silu, key=key)

    def score(self, x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        return self.mlp(x)

    def _dsm(self, x: Float[Array, "n dim"], key: PRNGKeyArray) -> Float[Array, ""]:
        sigma = self.config.sigma
        z = jax.random.normal(key, x.shape, x.dtype)
        s = jax.vmap(self.score)(x + sigma * z)
        # sigma^2-weighted DSM: 1/2 || sigma s(x + sigma z) + z ||^2
        return 0.5 * jnp.mean(jnp.sum((sigma * s + z) ** 2, axis=-1))

    def _ssm(self, x: Float[Array, "n dim"], key: PRNGKeyArray) -> Float[Array, ""]:
        # sliced score matching (config.objective "ssm" / "ssm-vr") on x + sigma z
        kz, kv = jax.random.split(key)
        noisy = x + self.config.sigma * jax.random.normal(kz, x.shape, x.dtype)
        vr = self.config.objective == "ssm-vr"
        return ssm_loss(self.score, noisy, key=kv, projection=self.config.projection, variance_reduction=vr)

    def loss(
        self, batch: Float[Array, "n dim"], state: None, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], tuple[None, dict[str, Array]]]:
        loss = self._dsm(batch, key) if self.config.objective == "dsm" else self._ssm(batch, key)
        return loss, (state, {})

    def default_sampler(self) -> samplers.Langevin:
        """Unadjusted Langevin with the config's ``langevin_step_size``."""
        return samplers.Langevin(self.config.langevin_step_size)

    def sample(
        self, n: int, *, sampler: samplers.AbstractSampler | None = None, key: PRNGKeyArray
    ) -> Float[Array, "n dim"]:
        """`n` points: ``config.langevin_steps`` steps of `sampler` (default: `default_sampler`)
        on the score, from N(0, init_scale^2)."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        x0 = self.config.init_scale * jax.random.normal(k0, (n, self.config.dim))
        result = samplers.run(sampler, self.score, x0, num_steps=self.config.langevin_steps, key=k1, batched=True)
        return result.final

    def evaluate(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
        x = jnp.asarray(data)
        k0, k1 = jax.random.split(key)
        samples = eqx.filter_jit(lambda m, k: m.sample(min(len(x), 2000), key=k))(self, k1)
        return {
            "dsm_loss": float(eqx.filter_jit(lambda m, d, k: m._dsm(d, k))(self, x, k0)),
            "mean_error": float(jnp.linalg.norm(samples.mean(0) - x.mean(0))),
            "std_error": float(jnp.linalg.norm(samples.std(0) - x.std(0))),
        }
