"""A 2-D (or d-D) score model: the small example family that proves the foundation.

An MLP ``s(x) ~ grad log p_sigma(x)`` trained by denoising score matching at one noise
level ``sigma`` and sampled with the shared `zoo.samplers.Langevin`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import samplers
from .._config import AbstractConfig
from .._model import AbstractModel


@dataclasses.dataclass(frozen=True)
class ToyScoreConfig(AbstractConfig):
    """An MLP score model on R^dim."""

    family: ClassVar[str] = "toy"
    type_name: ClassVar[str] = "toy.ToyScoreConfig"

    dim: int = 2
    width: int = 64
    depth: int = 2
    sigma: float = 0.1  # denoising score matching noise level
    langevin_steps: int = 500
    langevin_step_size: float = 1e-3
    init_scale: float = 3.0  # std of the Langevin initialisation

    def build(self, *, key: PRNGKeyArray) -> ToyScore:
        return ToyScore(self, key=key)


class ToyScore(AbstractModel):
    """``score(x)``: an estimate of grad log p(x) at noise level ``config.sigma``."""

    config: ToyScoreConfig = eqx.field(static=True)
    mlp: eqx.nn.MLP

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

    def loss(
        self, batch: Float[Array, "n dim"], state: None, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], tuple[None, dict[str, Array]]]:
        loss = self._dsm(batch, key)
        return loss, (state, {})

    def sample(self, n: int, *, key: PRNGKeyArray) -> Float[Array, "n dim"]:
        k0, k1 = jax.random.split(key)
        x0 = self.config.init_scale * jax.random.normal(k0, (n, self.config.dim))
        sampler = samplers.Langevin(self.config.langevin_step_size)
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

    def to_images(self, samples: Array) -> np.ndarray:
        from .._images import scatter

        return scatter(np.asarray(samples))[None]
