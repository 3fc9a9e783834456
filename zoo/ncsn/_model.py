"""`NCSN`: the score model, its DSM loss, annealed Langevin sampling, inpainting and evaluation."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import samplers
from .._errors import ConfigError, DataError
from .._model import AbstractModel
from ._config import NCSNConfig
from ._loss import dsm_loss, dsm_terms
from ._network import RefineNet


def dequantize(x: Float[Array, "n ..."], *, key: PRNGKeyArray) -> Float[Array, "n ..."]:
    """Uniform dequantisation of [0, 1] images with 256 levels: ``x * 255/256 + U(0, 1/256)``."""
    return x * (255.0 / 256.0) + jax.random.uniform(key, x.shape, x.dtype) / 256.0


class NCSN(AbstractModel):
    """A noise-conditional score network ``s(x, i) ~ grad log p_{sigma_i}(x)`` on images in [0, 1]."""

    config: NCSNConfig = eqx.field(static=True)
    net: RefineNet

    def __init__(self, config: NCSNConfig, *, key: PRNGKeyArray):
        self.config = config
        num_classes = config.num_scales if config.variant == "v1" else None
        self.net = RefineNet(config.channels, config.ngf, num_classes, centered=config.centered, key=key)

    # -- the score -------------------------------------------------------------------
    @property
    def sigmas(self) -> np.ndarray:
        """The noise levels, largest first (float32 numpy)."""
        return self.config.sigmas

    def score(self, x: Float[Array, "h w c"], level: Int[Array, ""]) -> Float[Array, "h w c"]:
        """The score at noise level index `level` (0 = largest sigma) of one image."""
        out = self.net(x, level)
        if self.config.variant == "v2":
            out = out / jnp.asarray(self.sigmas, out.dtype)[level]
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
        loss = dsm_loss(self.score, x, jnp.asarray(self.sigmas), key=kl)
        return loss, (state, {})

    # -- sampling --------------------------------------------------------------------
    _SAMPLER_FIELDS = ("sampling_rule", "steps_per_level", "step_lr", "denoise")

    def with_sampler(self, **changes) -> NCSN:
        """The same weights with other sampler settings (``sampling_rule``, ``steps_per_level``,
        ``step_lr``, ``denoise``); the network is untouched."""
        bad = sorted(set(changes) - set(self._SAMPLER_FIELDS))
        if bad:
            raise ConfigError(f"with_sampler changes only {self._SAMPLER_FIELDS}, not {bad}")
        config = self.config.replace(**changes)
        skeleton = eqx.filter_eval_shape(config.build, key=jax.random.key(0))
        leaves = jax.tree_util.tree_leaves(self)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(skeleton), leaves)

    def sampler(self, *, inpainting: bool = False) -> samplers.AnnealedLangevin | samplers.AnnealedLangevinInpainting:
        """The annealed Langevin sampler the config describes."""
        c = self.config
        cls = samplers.AnnealedLangevinInpainting if inpainting else samplers.AnnealedLangevin
        if c.sampling_rule == "v2":
            return cls.v2(self.sigmas, steps_per_level=c.steps_per_level, denoise=c.denoise)
        return cls.v1(self.sigmas, steps_per_level=c.steps_per_level, step_lr=c.step_lr, denoise=c.denoise)

    def sample(self, n: int, *, key: PRNGKeyArray) -> Float[Array, "n h w c"]:
        """`n` images by annealed Langevin from U[0, 1] (the state is not clipped;
        `to_images` clips for display)."""
        return self.sample_chain(n, key=key).final

    def sample_chain(self, n: int, *, key: PRNGKeyArray, snapshots: int | None = None) -> samplers.ChainResult:
        """The full chain; with ``snapshots=k`` also k evenly spaced states ``(k, n, h, w, c)``
        (``num_steps`` must then be a multiple of k)."""
        k0, k1 = jax.random.split(key)
        x0 = jax.random.uniform(k0, (n, *self.config.shape))
        sampler = self.sampler()
        thin = sampler.num_steps // snapshots if snapshots else 1
        return samplers.run(sampler, self.score, x0, num_steps=sampler.num_steps, key=k1, batched=True,
                            thin=thin, save=bool(snapshots))

    def inpaint(
        self, observed: Float[Array, "n h w c"], mask: Float[Array, "n h w c"], *, key: PRNGKeyArray
    ) -> Float[Array, "n h w c"]:
        """Fill the pixels where ``mask == 0`` given `observed` where ``mask == 1``."""
        self._check(observed)
        k0, k1 = jax.random.split(key)
        mask = jnp.broadcast_to(mask, observed.shape).astype(observed.dtype)
        x0 = mask * observed + (1 - mask) * jax.random.uniform(k0, observed.shape)
        sampler = self.sampler(inpainting=True)
        out = samplers.run(sampler, self.score, (x0, observed, mask), num_steps=sampler.num_steps, key=k1,
                           batched=True)
        return out.final[0]

    # -- evaluation ------------------------------------------------------------------
    def dsm_per_level(self, data: np.ndarray, *, key: PRNGKeyArray, batch_size: int = 250) -> np.ndarray:
        """Mean sigma^2-weighted DSM loss at each noise level on `data` (dequantised like training)."""
        x = np.asarray(data, np.float32)
        self._check(x)
        n_levels = self.config.num_scales

        @eqx.filter_jit
        def chunk(model, xb, k):
            kq, kn = jax.random.split(k)
            xb = dequantize(xb, key=kq) if model.config.dequantize else xb
            sig = jnp.asarray(model.sigmas)

            def one(i, kk):
                labels = jnp.full((xb.shape[0],), i, jnp.int32)
                return jnp.sum(dsm_terms(model.score, xb, labels, sig, key=kk))

            return jax.lax.map(lambda a: one(*a), (jnp.arange(n_levels), jax.random.split(kn, n_levels)))

        total = np.zeros(n_levels)
        for j, start in enumerate(range(0, len(x), batch_size)):
            total += np.asarray(chunk(self, jnp.asarray(x[start : start + batch_size]), jax.random.fold_in(key, j)))
        return total / len(x)

    def evaluate(self, data: np.ndarray, *, key: PRNGKeyArray) -> dict[str, float]:
        """Test-set DSM: the mean over levels (the training objective) and each level's value."""
        per = self.dsm_per_level(data, key=key)
        out = {"dsm_loss": float(per.mean())}
        for i, (s, v) in enumerate(zip(self.sigmas, per)):
            out[f"dsm_loss_level{i:02d}_sigma{s:.4g}"] = float(v)
        return out
