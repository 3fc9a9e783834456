"""The paper's deep EBM on 28x28 binary images: a Swish ResNet, trained by PCD with GWG.

``f(x) = net(x) + log Bernoulli(x; data mean)`` (the base term is optional, frozen, and
makes the AIS base distribution the EBM at beta = 0 up to the network term).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import samplers
from .._conv import Conv2d
from .._errors import DataError
from .._model import clip_images, model_for
from ._config import ResNetEBMConfig
from ._pcd import AbstractPCDModel, PCDState, data_mean_logits, pcd_loss


class _Block(eqx.Module):
    conv1: Conv2d
    conv2: Conv2d
    shortcut: Conv2d | None

    def __init__(self, channels: int, stride: int, *, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = Conv2d(channels, channels, 3, stride=stride, padding=1, key=k1)
        self.conv2 = Conv2d(channels, channels, 3, padding=1, key=k2)
        self.shortcut = Conv2d(channels, channels, 1, stride=stride, key=k3) if stride != 1 else None

    def __call__(self, h: Float[Array, "c h w"]) -> Float[Array, "c h2 w2"]:
        out = self.conv2(jax.nn.silu(self.conv1(h)))
        out = out + (self.shortcut(h) if self.shortcut is not None else h)
        return jax.nn.silu(out)


@eqx.filter_jit
def _run(model: ResNetEBM, sampler: samplers.AbstractSampler, x: Array, steps: int, key: PRNGKeyArray) -> Array:
    return samplers.run(sampler, model.target(), x, num_steps=steps, key=key, batched=True).final


@model_for(ResNetEBMConfig)
class ResNetEBM(AbstractPCDModel):
    """``log_prob(x)`` on flat binary images (D = image_size**2)."""

    config: ResNetEBMConfig = eqx.field(static=True)
    proj: Conv2d
    blocks: tuple[_Block, ...]
    head: eqx.nn.Linear
    base_logits: Float[Array, " D"]  # frozen: set from the data mean before training

    def __init__(self, config: ResNetEBMConfig, *, key: PRNGKeyArray):
        self.config = config
        c = config.channels
        keys = jax.random.split(key, config.num_blocks + 4)
        self.proj = Conv2d(1, c, 3, padding=1, key=keys[0])
        self.blocks = tuple(
            _Block(c, 2 if i < 2 else 1, key=keys[i + 1]) for i in range(config.num_blocks + 2)
        )
        self.head = eqx.nn.Linear(c, "scalar", key=keys[-1])
        self.base_logits = jnp.zeros((config.image_size**2,), jnp.float32)

    @property
    def dim(self) -> int:
        return self.config.image_size**2

    def with_base(self, data: np.ndarray) -> ResNetEBM:
        """This model with its base distribution set to the data mean of `data`."""
        return eqx.tree_at(lambda m: m.base_logits, self, jnp.asarray(data_mean_logits(data)))

    def fits_base(self) -> bool:
        return self.config.base_dist

    def base_log_prob(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        logits = jax.lax.stop_gradient(self.base_logits)
        return jnp.sum(x * logits - jax.nn.softplus(logits))

    def net(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        s = self.config.image_size
        h = self.proj(x.reshape(1, s, s))
        for block in self.blocks:
            h = block(h)
        return self.head(jnp.mean(h, axis=(1, 2)))

    def log_prob(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        """Unnormalised log-density of one flat binary image."""
        f = self.net(x)
        return f + self.base_log_prob(x) if self.config.base_dist else f

    def target(self) -> samplers.LogDensity:
        return samplers.LogDensity(self.log_prob)

    def default_sampler(self) -> samplers.GWG:
        """GWG with ``config.num_flips`` flips per step (also what PCD and AIS run)."""
        return samplers.GWG(num_flips=self.config.num_flips)

    def train_sampler(self) -> samplers.GWG:
        return self.default_sampler()

    def ais_sampler(self) -> samplers.GWG:
        return self.default_sampler()

    def _flat(self, batch: Array) -> Float[Array, "B D"]:
        x = jnp.asarray(batch)
        if x.ndim < 2 or x[0].size != self.dim:
            raise DataError(f"expected binary images with {self.dim} pixels each, got shape {x.shape}")
        return x.reshape(x.shape[0], self.dim).astype(jnp.float32)

    def loss(self, batch: Array, state: PCDState, *, key: PRNGKeyArray):
        c = self.config
        return pcd_loss(
            self, self._flat(batch), state, sampler=self.train_sampler(), num_steps=c.sampling_steps,
            reinit_freq=c.reinit_freq, l2=c.l2, reg_fn=self.net, key=key,
        )

    def sample(
        self, n: int, *, sampler: samplers.AbstractSampler | None = None, num_steps: int | None = None,
        key: PRNGKeyArray,
    ) -> Float[Array, "n h w 1"]:
        """`n` images: `num_steps` (default ``config.sample_steps``) steps of `sampler` (default:
        GWG) from the base distribution."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        x0 = jax.random.bernoulli(k0, jax.nn.sigmoid(self.base_logits)[None, :], (n, self.dim)).astype(jnp.float32)
        out = _run(self, sampler, x0, num_steps or self.config.sample_steps, k1)
        s = self.config.image_size
        return out.reshape(n, s, s, 1)

    def to_images(self, samples: Array) -> np.ndarray:
        return clip_images(samples, type(self).__name__)
