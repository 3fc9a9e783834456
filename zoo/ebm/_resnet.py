"""The paper's deep EBM on 28x28 binary images: a Swish ResNet, trained by PCD with GWG.

``f(x) = net(x) + log Bernoulli(x; data mean)`` (the base term is optional, frozen, and
makes the AIS base distribution the EBM at beta = 0 up to the network term), or, with
``config.rbm_hidden > 0``, ``f(x) = net(x) + rbm(x)``: the product of the ResNet and a
Bernoulli RBM (its negative free energy), warm-started from a trained RBM by `warm_start`.
"""

from __future__ import annotations

from typing import ClassVar

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
from ._pcd import AbstractPCDModel, PCDState, data_mean_logits, init_buffer, initial_chains, pcd_loss
from ._rbm import RBM, RBMTarget


class _Block(eqx.Module):
    conv1: Conv2d
    conv2: Conv2d
    shortcut: Conv2d | None

    def __init__(self, channels: int, stride: int, *, key: PRNGKeyArray):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = Conv2d(channels, channels, 3, stride=stride, padding=1, key=k1)
        self.conv2 = Conv2d(channels, channels, 3, padding=1, key=k2)
        self.shortcut = Conv2d(channels, channels, 1, stride=stride, key=k3) if stride != 1 else None

    def __call__(self, h: Float[Array, "h w c"]) -> Float[Array, "h2 w2 c"]:
        """On a channels-last feature map (see `ResNetEBM.net`)."""
        out = self.conv2.hwc(jax.nn.silu(self.conv1.hwc(h)))
        out = out + (self.shortcut.hwc(h) if self.shortcut is not None else h)
        return jax.nn.silu(out)


@model_for(ResNetEBMConfig)
class ResNetEBM(AbstractPCDModel):
    """``log_prob(x)`` on flat binary images (D = image_size**2)."""

    # its PCD chains run the convolutional energy in a `lax.scan`: `compiler_options` keep XLA:CPU's
    # YNNPACK fusions to reductions (`zoo._conv.conv_compiler_options`)
    convolutional: ClassVar[bool] = True
    config: ResNetEBMConfig = eqx.field(static=True)
    proj: Conv2d
    blocks: tuple[_Block, ...]
    head: eqx.nn.Linear
    base_logits: Float[Array, " D"]  # frozen: set from the data mean before training
    rbm: RBMTarget | None  # the RBM term (``config.rbm_hidden > 0``), else None

    def __init__(self, config: ResNetEBMConfig, *, key: PRNGKeyArray):
        self.config = config
        c = config.channels
        keys = jax.random.split(key, config.num_blocks + 5)
        self.proj = Conv2d(1, c, 3, padding=1, key=keys[0])
        self.blocks = tuple(
            _Block(c, 2 if i < 2 else 1, key=keys[i + 1]) for i in range(config.num_blocks + 2)
        )
        self.head = eqx.nn.Linear(c, "scalar", key=keys[-2])
        d = config.image_size**2
        self.base_logits = jnp.zeros((d,), jnp.float32)
        if config.rbm_hidden:
            # A zero head: the network term starts at 0, so a warm-started model starts as the RBM.
            self.head = eqx.tree_at(lambda h: (h.weight, h.bias), self.head,
                                    (jnp.zeros_like(self.head.weight), jnp.zeros_like(self.head.bias)))
            w = 0.01 * jax.random.normal(keys[-1], (d, config.rbm_hidden), jnp.float32)
            self.rbm = RBMTarget(w, jnp.zeros((d,), jnp.float32), jnp.zeros((config.rbm_hidden,), jnp.float32))
        else:
            self.rbm = None

    @property
    def dim(self) -> int:
        return self.config.image_size**2

    def with_base(self, data: np.ndarray) -> ResNetEBM:
        """This model with its base distribution set to the data mean of `data` (and, with an
        RBM term, its visible biases too, as `RBM.with_base` does)."""
        logits = jnp.asarray(data_mean_logits(data))
        if self.rbm is not None:
            return eqx.tree_at(lambda m: (m.base_logits, m.rbm.b), self, (logits, logits))  # pyright: ignore
        return eqx.tree_at(lambda m: m.base_logits, self, logits)

    def fits_base(self) -> bool:
        return self.config.base_dist or self.rbm is not None

    def warm_start(self, other: object) -> ResNetEBM:
        """This model with its RBM term (and base distribution) copied from a trained `RBM`
        of the same size; the network term is untouched (zero-initialised head: it starts at 0).
        What ``zoo train PRESET --init-from RBM_NAME`` calls."""
        from .._errors import ConfigError

        if self.rbm is None or not isinstance(other, RBM):
            raise ConfigError(
                f"a ResNetEBM warm-starts only its RBM term, from a zoo RBM (e.g. rbm-mnist) and with "
                f"rbm_hidden > 0; got {type(other).__name__} for rbm_hidden={self.config.rbm_hidden}"
            )
        if other.W.shape != self.rbm.W.shape:
            raise ConfigError(
                f"the RBM has W of shape {tuple(other.W.shape)}, this model's RBM term "
                f"{tuple(self.rbm.W.shape)}: set rbm_hidden={other.W.shape[1]} (and image_size to match)"
            )
        return eqx.tree_at(
            lambda m: (m.rbm, m.base_logits), self, (other.target(), other.base_logits)
        )

    def base_log_prob(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        logits = jax.lax.stop_gradient(self.base_logits)
        return jnp.sum(x * logits - jax.nn.softplus(logits))

    def net(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        # Channels-last throughout (`Conv2d.hwc`): the same numbers as the (C, H, W) layers, without
        # the transposes XLA:CPU would copy the activations through around every convolution.
        s = self.config.image_size
        h = self.proj.hwc(x.reshape(s, s, 1))
        for block in self.blocks:
            h = block(h)
        return self.head(jnp.mean(h, axis=(0, 1)))

    def log_prob(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        """Unnormalised log-density of one flat binary image."""
        if self.rbm is not None:
            return self.rbm(x) + self.net(x)
        f = self.net(x)
        return f + self.base_log_prob(x) if self.config.base_dist else f

    def init_state(self, data: object, *, key: PRNGKeyArray) -> PCDState:
        """The replay buffer: draws from the base, then ``config.buffer_init_sweeps``
        block-Gibbs sweeps of the RBM term (its samples: the warm-started model's at step 0)."""
        k0, k1 = jax.random.split(key)
        state = init_buffer(self.base_logits, self.config.buffer_size, key=k0)
        if self.rbm is None or not self.config.buffer_init_sweeps:
            return state
        x = samplers.run(samplers.BlockGibbs(), self.rbm, state.buffer, num_steps=self.config.buffer_init_sweeps,
                         key=k1, batched=True).final
        return PCDState(buffer=x)

    def target(self) -> samplers.LogDensity | samplers.ProductTarget:
        """What the samplers run on: the log-density, or with an RBM term the product
        ``rbm(x) + net(x)`` (which `FactorBlockGibbsMH` also samples)."""
        if self.rbm is not None:
            return samplers.ProductTarget(self.rbm, self.net)
        return samplers.LogDensity(self.log_prob)

    def default_sampler(self) -> samplers.GWG | samplers.Cycle:
        """GWG with ``config.num_flips`` flips per step (also what PCD runs). With an RBM term
        and ``config.gibbs_mh_steps > 0``: a `Cycle` of that many block-Gibbs-proposal MH
        steps and ``config.gwg_steps_per_cycle`` GWG steps."""
        gwg = samplers.GWG(num_flips=self.config.num_flips)
        c = self.config
        if self.rbm is not None and c.gibbs_mh_steps:
            return samplers.Cycle((samplers.FactorBlockGibbsMH(), gwg), (c.gibbs_mh_steps, c.gwg_steps_per_cycle))
        return gwg

    def train_sampler(self) -> samplers.GWG | samplers.Cycle:
        return self.default_sampler()

    def ais_sampler(self) -> samplers.GWG:
        return samplers.GWG(num_flips=self.config.num_flips)

    def ais(self, *, num_steps: int, num_chains: int, key: PRNGKeyArray):
        """AIS to this model: the geometric path with GWG, or (``ais_path="rbm"``) the RBM
        term's path with the network term annealed alongside."""
        from ._ais import ais
        from ._rbm_path import rbm_path_ais

        if self.config.ais_path == "rbm" and self.rbm is not None:
            return rbm_path_ais(self.rbm, self.base_logits, rest=self.net, num_steps=num_steps,
                                num_chains=num_chains, key=key)
        return ais(self.target(), self.base_logits, num_steps=num_steps, num_chains=num_chains, key=key,
                   sampler=self.ais_sampler())

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
        the default sampler) from ``config.sample_init``: the data-mean Bernoulli ("base") or noise at
        the data's mean pixel rate ("noise")."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        x0 = initial_chains(self.base_logits, n, self.config.sample_init, key=k0)
        # samplers.run jits the chain itself (cached), with the model's compiler options (zoo._conv).
        out = samplers.run(sampler, self.target(), x0, num_steps=num_steps or self.config.sample_steps, key=k1,
                           batched=True, compiler_options=dict(self.compiler_options())).final
        s = self.config.image_size
        return out.reshape(n, s, s, 1)

    def to_images(self, samples: Array) -> np.ndarray:
        return clip_images(samples, type(self).__name__)
