"""Persistent contrastive divergence with a replay buffer, as a model's `loss`/`init_state`,
and `AbstractPCDModel`, the base of the EBMs trained by it (`PCDTrainer`).

Each update draws ``batch`` persistent chains from the buffer (re-initialising each from
the data-mean Bernoulli base with probability ``reinit_freq``), advances them ``k`` steps
of an MCMC sampler on the (frozen) current model, writes them back, and returns the
surrogate ``-(mean f(data) - mean f(fake)) + l2 * (mean r(data)^2 + mean r(fake)^2)`` (``r = f``
unless a regularised part ``reg_fn`` is given, e.g. the network term of ``f`` without its base),
whose gradient is the maximum-likelihood gradient estimate.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import samplers
from .._model import AbstractModel, all_inexact
from .._trainer import AbstractTrainer


class PCDState(eqx.Module):
    """The replay buffer of persistent chains, ``(buffer_size, D)`` in {0, 1}."""

    buffer: Float[Array, "N D"]


def data_mean_logits(data: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    """Logits of the data-mean Bernoulli, with the mean squeezed into [eps, 1 - eps]."""
    x = np.asarray(data, np.float64).reshape(len(data), -1)
    m = x.mean(0) * (1 - 2 * eps) + eps
    return np.log(m / (1 - m)).astype(np.float32)


def init_buffer(base_logits: Array, size: int, *, key: PRNGKeyArray) -> PCDState:
    """A buffer of `size` draws from the Bernoulli with logits `base_logits`."""
    return PCDState(buffer=initial_chains(base_logits, size, "base", key=key))


def initial_chains(base_logits: Float[Array, " D"], n: int, init: str, *, key: PRNGKeyArray) -> Float[Array, "n D"]:
    """`n` chain starts for sampling: draws from the Bernoulli with logits `base_logits` (``init="base"``,
    the data-mean image's shape), or independent pixels all at its mean rate (``"noise"``)."""
    p = jax.nn.sigmoid(jnp.asarray(base_logits, jnp.float32))
    if init == "noise":
        p = jnp.full_like(p, jnp.mean(p))
    elif init != "base":
        raise ValueError(f"init must be 'base' or 'noise', got {init!r}")
    return jax.random.bernoulli(key, p[None, :], (n, p.shape[0])).astype(jnp.float32)


def frozen(model: Any) -> Any:
    """`model` with `stop_gradient` on every inexact array (for sampling inside a loss)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    return eqx.combine(jax.lax.stop_gradient(params), static)


def pcd_loss(
    model: Any,
    x_data: Float[Array, "B D"],
    state: PCDState,
    *,
    sampler: samplers.AbstractSampler,
    num_steps: int,
    reinit_freq: float,
    l2: float,
    reg_fn: Any = None,
    reinit_draws: Callable[..., Array] | None = None,
    key: PRNGKeyArray,
) -> tuple[Float[Array, ""], tuple[PCDState, dict[str, Array]]]:
    """The PCD surrogate loss ``-(mean f(data) - mean f(chains)) + l2 (mean r(data)^2 + mean r(chains)^2)``
    (``r = reg_fn``, default f). `model` provides ``log_prob(x)`` (one example), ``target()`` (what
    `sampler` runs on) and ``base_logits``. A fraction `reinit_freq` of the buffer chains restarts from
    ``reinit_draws(n, key=key)`` (default: independent Bernoulli draws from ``base_logits``; a categorical
    model passes its own). The chains run in one `lax.scan` of the shared driver."""
    b = x_data.shape[0]
    n = state.buffer.shape[0]
    if b > n:
        raise ValueError(f"batch size {b} exceeds the replay buffer size {n}")
    k_idx, k_re, k_init, k_run = jax.random.split(key, 4)
    idx = jax.random.choice(k_idx, n, (b,), replace=False)
    x_buf = state.buffer[idx]
    fixed = frozen(model)
    reinit = jax.random.bernoulli(k_re, reinit_freq, (b,) + (1,) * (x_buf.ndim - 1))
    draws = reinit_draws or (lambda n, *, key: initial_chains(fixed.base_logits, n, "base", key=key))
    x_new = draws(b, key=k_init).astype(x_buf.dtype)
    x0 = jnp.where(reinit, x_new, x_buf)
    result = samplers.run(sampler, fixed.target(), x0, num_steps=num_steps, key=k_run, batched=True)
    x_fake, info = result.final, result.info
    x_fake = jax.lax.stop_gradient(x_fake)
    buffer = state.buffer.at[idx].set(x_fake)

    f_real = jax.vmap(model.log_prob)(x_data)
    f_fake = jax.vmap(model.log_prob)(x_fake)
    gap = jnp.mean(f_real) - jnp.mean(f_fake)
    if l2 > 0 and reg_fn is not None:  # penalise e.g. only the network part of f
        r_real, r_fake = jax.vmap(reg_fn)(x_data), jax.vmap(reg_fn)(x_fake)
    else:
        r_real, r_fake = f_real, f_fake
    loss = -gap + l2 * (jnp.mean(r_real**2) + jnp.mean(r_fake**2))
    metrics = {
        "logp_real": jnp.mean(f_real),
        "logp_fake": jnp.mean(f_fake),
        "gap": gap,
        **{f"sampler_{k}": jnp.mean(v) for k, v in info.items()},
    }
    return loss, (PCDState(buffer=buffer), metrics)


class PCDTrainer(AbstractTrainer):
    """The shared driver `zoo.fit`, after setting a fresh model's base distribution from the
    data mean (``model.fits_base()`` and all-zero ``base_logits``; a loaded model keeps its own)."""

    def train(self, model: Any, data: Any, config: Any, *, key: PRNGKeyArray, **kwargs: Any) -> Any:
        from .._errors import ConfigError
        from .._train import fit

        if config is None:
            raise ConfigError(f"{type(model).__name__} trains by PCD: pass a zoo.TrainConfig(steps=...)")
        if model.fits_base() and not bool(jnp.any(model.base_logits != 0)):
            model = model.with_base(np.asarray(data))
        return fit(model, data, config, key=key, **kwargs)


class AbstractPCDModel(AbstractModel):
    """A model trained by `pcd_loss` from a frozen data-mean Bernoulli base.

    ``base_logits`` (frozen: not trained, not counted by `zoo.num_params`) re-initialises
    chains and is the AIS base; the replay buffer holds ``config.buffer_size`` chains. A
    fresh model (all-zero ``base_logits``) gets its base from the training data first.
    """

    if TYPE_CHECKING:  # a field of each concrete class (an `AbstractVar` here would move it
        # first in the field order, which is the checkpoints' leaf order)
        base_logits: Float[Array, " D"]

    trainer: ClassVar[AbstractTrainer] = PCDTrainer()

    @abc.abstractmethod
    def target(self) -> Any:
        """What the samplers run on: a `zoo.samplers` log-density of one flat example."""

    @abc.abstractmethod
    def log_prob(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        """Unnormalised log-density of one flat binary vector."""

    @abc.abstractmethod
    def _flat(self, batch: Array) -> Float[Array, "B D"]:
        """`batch` as ``(B, D)`` float vectors; a `DataError` for the wrong size."""

    @abc.abstractmethod
    def with_base(self, data: np.ndarray) -> Any:
        """This model with its base distribution set from the data mean of `data`."""

    @abc.abstractmethod
    def fits_base(self) -> bool:
        """Whether training a fresh model sets the base from the data first."""

    @abc.abstractmethod
    def train_sampler(self) -> samplers.AbstractSampler:
        """The MCMC transition PCD runs on the persistent chains."""

    @abc.abstractmethod
    def ais_sampler(self) -> samplers.AbstractSampler:
        """The MCMC transition of AIS in `evaluate`."""

    def prepare_data(self, dataset: Any) -> np.ndarray:
        return dataset.x

    def trainable(self) -> Any:
        """Every inexact array except the frozen ``base_logits``."""
        return eqx.tree_at(lambda m: m.base_logits, all_inexact(self), False)

    @abc.abstractmethod
    def ais(self, *, num_steps: int, num_chains: int, key: PRNGKeyArray) -> Any:
        """AIS from the base distribution to this model (an `AISResult`), on the path and with
        the transitions that ``config.ais_path`` names."""

    def evaluate(
        self, data: PyTree[np.ndarray], *, key: PRNGKeyArray, num_steps: int | None = None,
        num_chains: int | None = None,
    ) -> dict[str, float]:
        """AIS from the base distribution: log Z and the mean log-likelihood of `data` (checked before
        the AIS run, so bad data fails at once rather than after it)."""
        from ._ais import log_likelihood_summary

        c: Any = self.config
        x = self._flat(data)
        steps = num_steps or c.ais_steps
        result = self.ais(num_steps=steps, num_chains=num_chains or c.ais_chains, key=key)
        return log_likelihood_summary(result, x, self.log_prob, num_steps=steps)
