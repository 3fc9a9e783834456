"""The paper's deep EBM on 28x28 binary images: a Swish ResNet, trained by PCD with GWG.

``f(x) = net(x) + log Bernoulli(x; data mean)`` (the base term is optional, frozen, and
makes the AIS base distribution the EBM at beta = 0 up to the network term).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .. import samplers
from .._config import AbstractConfig
from .._errors import DataError
from ._pcd import AbstractPCDModel, PCDState, data_mean_logits, pcd_loss


@dataclasses.dataclass(frozen=True)
class ResNetEBMConfig(AbstractConfig):
    """A ResNet EBM on binary images and its PCD / sampling / AIS settings."""

    family: ClassVar[str] = "ebm"
    type_name: ClassVar[str] = "ebm.ResNetEBMConfig"

    channels: int = 64
    num_blocks: int = 6  # stride-1 blocks after the two stride-2 blocks (the paper: 6)
    image_size: int = 28
    base_dist: bool = True
    # PCD
    sampling_steps: int = 40  # GWG steps per parameter update
    num_flips: int = 1
    buffer_size: int = 10000
    reinit_freq: float = 0.0
    l2: float = 0.0  # penalty on the squared network output (not the base term)
    # sampling / evaluation
    sample_steps: int = 2000
    ais_steps: int = 10000
    ais_chains: int = 100

    def build(self, *, key: PRNGKeyArray) -> ResNetEBM:
        return ResNetEBM(self, key=key)


class _Block(eqx.Module):
    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    shortcut: eqx.nn.Conv2d | None

    def __init__(self, channels: int, stride: int, *, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(channels, channels, 3, stride=stride, padding=1, key=k1)
        self.conv2 = eqx.nn.Conv2d(channels, channels, 3, padding=1, key=k2)
        self.shortcut = eqx.nn.Conv2d(channels, channels, 1, stride=stride, key=k3) if stride != 1 else None

    def __call__(self, h: Float[Array, "c h w"]) -> Float[Array, "c h2 w2"]:
        out = self.conv2(jax.nn.silu(self.conv1(h)))
        out = out + (self.shortcut(h) if self.shortcut is not None else h)
        return jax.nn.silu(out)


# XLA:CPU runs these convolutions ~4x slower inside any compiled loop, even a partly
# unrolled one, than in straight-line code (scripts/bench_ebm_unroll.py). So PCD fully
# unrolls its few steps per update, and long runs (sampling, AIS) on CPU are a host loop
# over jitted chunks of `_CHUNK` fully unrolled steps of the shared driver; elsewhere one scan.
_CHUNK = 10


def _chunk() -> int | None:
    return _CHUNK if jax.default_backend() == "cpu" else None


@eqx.filter_jit
def _run(model: ResNetEBM, x: Array, steps: int, key: PRNGKeyArray, unroll: int) -> Array:
    return samplers.run(model.sampler(), model.target(), x, num_steps=steps, key=key, batched=True,
                        unroll=unroll).final


class ResNetEBM(AbstractPCDModel):
    """``log_prob(x)`` on flat binary images (D = image_size**2)."""

    config: ResNetEBMConfig = eqx.field(static=True)
    proj: eqx.nn.Conv2d
    blocks: tuple[_Block, ...]
    head: eqx.nn.Linear
    base_logits: Float[Array, " D"]  # frozen: set from the data mean before training

    def __init__(self, config: ResNetEBMConfig, *, key: PRNGKeyArray):
        self.config = config
        c = config.channels
        keys = jax.random.split(key, config.num_blocks + 4)
        self.proj = eqx.nn.Conv2d(1, c, 3, padding=1, key=keys[0])
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

    def sampler(self) -> samplers.GWG:
        return samplers.GWG(num_flips=self.config.num_flips)

    def _flat(self, batch: Array) -> Float[Array, "B D"]:
        x = jnp.asarray(batch)
        if x.ndim < 2 or x[0].size != self.dim:
            raise DataError(f"expected binary images with {self.dim} pixels each, got shape {x.shape}")
        return x.reshape(x.shape[0], self.dim).astype(jnp.float32)

    def loss(self, batch: Array, state: PCDState, *, key: PRNGKeyArray):
        c = self.config
        return pcd_loss(
            self, self._flat(batch), state, sampler=self.sampler(), num_steps=c.sampling_steps,
            reinit_freq=c.reinit_freq, l2=c.l2, unroll=c.sampling_steps, reg_fn=self.net, key=key,
        )

    def sample(self, n: int, *, key: PRNGKeyArray, num_steps: int | None = None) -> Float[Array, "n h w 1"]:
        """`n` images: GWG chains started from the base distribution."""
        k0, k1 = jax.random.split(key)
        x0 = jax.random.bernoulli(k0, jax.nn.sigmoid(self.base_logits)[None, :], (n, self.dim)).astype(jnp.float32)
        steps = num_steps or self.config.sample_steps
        chunk = _chunk()
        if chunk is None:
            out = _run(self, x0, steps, k1, 1)
        else:  # the GWG state restarts per chunk: one extra gradient, the same Markov chain
            out = x0
            for i, start in enumerate(range(0, steps, chunk)):
                m = min(chunk, steps - start)
                out = _run(self, out, m, jax.random.fold_in(k1, i), m)
        s = self.config.image_size
        return out.reshape(n, s, s, 1)

    def ais_sampler(self) -> samplers.GWG:
        return self.sampler()

    def ais_chunk(self) -> int | None:
        return _chunk()
