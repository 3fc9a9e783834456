"""`NCSN`: the score model, its DSM loss, annealed Langevin sampling, inpainting and evaluation."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import samplers
from .._batch_map import batch_map
from .._errors import ConfigError, DataError
from .._model import AbstractImageModel, AbstractStatelessModel, model_for
from .._rows import take_row
from .._score_matching import anneal_ssm_loss
from .._trainer import AbstractTrainer, GradientTrainer
from ._config import NCSNConfig
from ._loss import dsm_loss, dsm_terms
from ._ncsnv2 import NCSNV2_NETWORKS, AbstractNCSNv2Net
from ._network import RefineNet, conv_weights_as


def dequantize(x: Float[Array, "n ..."], *, key: PRNGKeyArray) -> Float[Array, "n ..."]:
    """Uniform dequantisation of [0, 1] images with 256 levels: ``x * 255/256 + U(0, 1/256)``."""
    return x * (255.0 / 256.0) + jax.random.uniform(key, x.shape, x.dtype) / 256.0


@model_for(NCSNConfig)
class NCSN(AbstractImageModel, AbstractStatelessModel):
    """A noise-conditional score network ``s(x, i) ~ grad log p_{sigma_i}(x)`` on images in [0, 1]."""

    config: NCSNConfig = eqx.field(static=True)
    net: RefineNet | AbstractNCSNv2Net
    trainer: ClassVar[AbstractTrainer] = GradientTrainer()
    convolutional: ClassVar[bool] = True  # `compiler_options`: YNNPACK for reductions only (zoo._conv)

    def __init__(self, config: NCSNConfig, *, key: PRNGKeyArray):
        self.config = config
        if config.variant in NCSNV2_NETWORKS:  # the NCSNv2 paper's networks
            self.net = NCSNV2_NETWORKS[config.variant](config.channels, config.ngf, centered=config.centered, key=key)
        else:  # NCSN's RefineNet, with per-level (v1) or unconditional norms
            num_classes = config.num_scales if config.variant == "v1" else None
            self.net = RefineNet(config.channels, config.ngf, num_classes, centered=config.centered, key=key)

    # -- the score -------------------------------------------------------------------
    @property
    def sigmas(self) -> np.ndarray:
        """The noise levels, largest first (float32 numpy)."""
        return self.config.sigmas

    def score(self, x: Float[Array, "h w c"], level: Int[Array, ""]) -> Float[Array, "h w c"]:
        """The score at noise level index `level` (0 = largest sigma) of one image."""
        net = self.net
        if self.config.compute_dtype != "float32":  # mixed precision: the convolutions in that dtype
            net = conv_weights_as(net, jnp.dtype(self.config.compute_dtype))
        out = net(x, level)
        if self.config.variant != "v1":  # unconditional networks: divide by sigma (NCSNv2)
            out = out / take_row(jnp.asarray(self.sigmas, out.dtype), level)  # materialised (zoo._rows)
        return out

    # -- training --------------------------------------------------------------------
    def _check(self, x: Array) -> None:
        if tuple(x.shape[1:]) != self.config.shape:
            raise DataError(
                f"NCSN expects images of shape (N, {', '.join(map(str, self.config.shape))}) in [0, 1], "
                f"got {tuple(x.shape)}; load a matching data set or change the config's image_size/channels"
            )

    def loss(
        self, batch: Float[Array, "n h w c"], state: None, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], tuple[None, dict[str, Array]]]:
        """sigma^2-weighted denoising score matching over the noise ladder (one level per example)."""
        self._check(batch)
        kq, kl = jax.random.split(key)
        x = dequantize(batch, key=kq) if self.config.dequantize else batch
        objective = anneal_ssm_loss if self.config.objective == "ssm" else dsm_loss
        loss = objective(self.score, x, jnp.asarray(self.sigmas), key=kl)
        return loss, (state, {})

    # -- sampling --------------------------------------------------------------------
    def _annealed(self, cls: Any, *, denoise: bool | None = None) -> Any:
        c = self.config
        denoise = c.denoise if denoise is None else denoise
        if c.sampling_rule == "technique4":
            return cls.v2(self.sigmas, steps_per_level=c.steps_per_level, denoise=denoise)
        return cls(self.sigmas, steps_per_level=c.steps_per_level, step_lr=c.step_lr, denoise=denoise)

    def default_sampler(self) -> samplers.AnnealedLangevin:
        """The annealed Langevin sampler the config describes (``sampling_rule``,
        ``steps_per_level``, ``step_lr``, ``denoise``)."""
        return self._annealed(samplers.AnnealedLangevin)

    def inpainting_sampler(self) -> samplers.AnnealedLangevinInpainting:
        """The config's annealed Langevin settings in inpainting mode (what `inpaint` runs)."""
        return self._annealed(samplers.AnnealedLangevinInpainting)

    def interpolation_sampler(self) -> samplers.AnnealedLangevinInterpolation:
        """The config's annealed Langevin settings in NCSNv2's interpolation mode (what
        `interpolate` runs), without the denoising step, as the official
        ``anneal_Langevin_dynamics_interpolation``."""
        return self._annealed(samplers.AnnealedLangevinInterpolation, denoise=False)

    def sample(
        self, n: int, *, sampler: samplers.AnnealedLangevin | None = None, progress: bool = False,
        sharding: NamedSharding | None = None, key: PRNGKeyArray,
    ) -> Float[Array, "n h w c"]:
        """`n` images by annealed Langevin from U[0, 1] with `sampler` (default: the config's;
        the state is not clipped, `to_images` clips for display). `progress`: a progress bar
        (`zoo.samplers.run`; called outside `jit`, the chain then runs step by step from the host).
        `sharding`: the chains data-parallel over devices, same values (`zoo.samplers.run`)."""
        return self.sample_chain(n, sampler=sampler, progress=progress, sharding=sharding, key=key).final

    def sample_chain(
        self, n: int, *, sampler: samplers.AnnealedLangevin | None = None, snapshots: int | None = None,
        progress: bool = False, sharding: NamedSharding | None = None, key: PRNGKeyArray,
    ) -> samplers.ChainResult:
        """The full chain (``sampler.num_steps`` transitions); with ``snapshots=k`` also k evenly
        spaced states ``(k, n, h, w, c)`` (``num_steps`` must then be a multiple of k)."""
        k0, k1 = jax.random.split(key)
        x0 = jax.random.uniform(k0, (n, *self.config.shape))
        sampler = self.resolve_sampler(sampler)
        if not isinstance(sampler, samplers.AnnealedLangevin):
            raise ConfigError(
                f"NCSN samples with a zoo.samplers.AnnealedLangevin (a noise-conditional score), not "
                f"{type(sampler).__name__}; e.g. AnnealedLangevin.v1(model.sigmas, steps_per_level=...)"
            )
        thin = sampler.num_steps // snapshots if snapshots else 1
        return samplers.run(sampler, self.score, x0, num_steps=sampler.num_steps, key=k1, batched=True,
                            thin=thin, save=bool(snapshots), progress=progress,
                            compiler_options=dict(self.compiler_options()), sharding=sharding)

    def inpaint(
        self, observed: Float[Array, "n h w c"], mask: Float[Array, "n h w c"], *,
        sampler: samplers.AnnealedLangevinInpainting | None = None, key: PRNGKeyArray,
    ) -> Float[Array, "n h w c"]:
        """Fill the pixels where ``mask == 0`` given `observed` where ``mask == 1``, with `sampler`
        (default: `inpainting_sampler`)."""
        self._check(observed)
        k0, k1 = jax.random.split(key)
        mask = jnp.broadcast_to(mask, observed.shape).astype(observed.dtype)
        x0 = mask * observed + (1 - mask) * jax.random.uniform(k0, observed.shape)
        sampler = self.inpainting_sampler() if sampler is None else sampler
        out = samplers.run(sampler, self.score, (x0, observed, mask), num_steps=sampler.num_steps, key=k1,
                           batched=True, compiler_options=dict(self.compiler_options()))
        return out.final[0]

    def interpolate(
        self, n_pairs: int, n_interpolations: int, *,
        sampler: samplers.AnnealedLangevinInterpolation | None = None, key: PRNGKeyArray,
    ) -> Float[Array, "n_pairs n_interpolations h w c"]:
        """NCSNv2's interpolation samples: `n_pairs` rows of `n_interpolations` images. The
        images of a row start from one U[0, 1] draw and are driven by noise interpolated on a
        quarter circle between two independent draws (`zoo.samplers.AnnealedLangevinInterpolation`),
        so each row's first and last images are independent samples and the others sweep
        between them. `sampler` defaults to `interpolation_sampler`."""
        if n_pairs < 1 or n_interpolations < 2:
            raise ConfigError(
                f"interpolate needs n_pairs >= 1 and n_interpolations >= 2 (the two ends of each row), "
                f"got {n_pairs} and {n_interpolations}"
            )
        sampler = self.interpolation_sampler() if sampler is None else sampler
        if not isinstance(sampler, samplers.AnnealedLangevinInterpolation):
            raise ConfigError(
                f"interpolate runs a zoo.samplers.AnnealedLangevinInterpolation, not {type(sampler).__name__}; "
                "e.g. model.interpolation_sampler() or AnnealedLangevinInterpolation.v1(model.sigmas, ...)"
            )
        k0, k1 = jax.random.split(key)
        start = jax.random.uniform(k0, (n_pairs, 1, *self.config.shape))
        x0 = jnp.broadcast_to(start, (n_pairs, n_interpolations, *self.config.shape))
        return samplers.run(sampler, self.score, x0, num_steps=sampler.num_steps, key=k1, batched=True,
                            compiler_options=dict(self.compiler_options())).final

    # -- evaluation ------------------------------------------------------------------
    def dsm_terms_per_level(self, x: Float[Array, "b h w c"], *, key: PRNGKeyArray) -> Float[Array, "b levels"]:
        """Each example's sigma^2-weighted DSM term at every noise level (`x` dequantised like training)."""
        kq, kn = jax.random.split(key)
        x = dequantize(x, key=kq) if self.config.dequantize else x
        sigmas, n_levels = jnp.asarray(self.sigmas), self.config.num_scales

        def level(i, k):
            return dsm_terms(self.score, x, jnp.full((x.shape[0],), i, jnp.int32), sigmas, key=k)

        return jax.lax.map(lambda a: level(*a), (jnp.arange(n_levels), jax.random.split(kn, n_levels))).T

    def dsm_per_level(self, data: np.ndarray, *, key: PRNGKeyArray, batch_size: int = 250) -> np.ndarray:
        """Mean sigma^2-weighted DSM loss at each noise level on `data` (dequantised like training),
        `batch_size` images at a time (`zoo.batch_map`: batch ``j`` uses ``fold_in(key, j)``)."""
        x = np.asarray(data, np.float32)
        self._check(x)
        if len(x) == 0:
            raise DataError("dsm_per_level needs at least one image; got an empty array")
        terms = batch_map(self.dsm_terms_per_level, x, batch_size=min(batch_size, len(x)), key=key, progress="DSM",
                          compiler_options=dict(self.compiler_options()))
        return terms.mean(axis=0, dtype=np.float64)

    def evaluate(self, data: np.ndarray, *, key: PRNGKeyArray) -> dict[str, float]:
        """Test-set DSM: the mean over levels (the training objective) and each level's value."""
        per = self.dsm_per_level(data, key=key)
        out = {"dsm_loss": float(per.mean())}
        for i, (s, v) in enumerate(zip(self.sigmas, per)):
            out[f"dsm_loss_level{i:02d}_sigma{s:.4g}"] = float(v)
        return out
