"""Structure learning of pairwise Markov random fields by persistent contrastive divergence
(the GWG paper's Ising / Potts inference experiments, the official `pcd.py` / `pcd_potts.py`).

`PairwiseMRF` learns a symmetric zero-diagonal coupling matrix ``J`` (and optionally fields)
of an Ising model on {0,1}^D (``num_values=2``, target `IsingTarget`) or a Potts model on
one-hot ``(D, K)`` states (``num_values=K > 2``, target `PottsTarget`) from samples. Each update
advances every persistent chain of the buffer ``sampling_steps`` steps of the configured
sampler on the current (frozen) model and minimises

    -(mean f(data) - mean f(chains)) + l1 * sum_ij |J_ij|,

through the shared driver `zoo.fit`. `coupling_rmse` measures the result against a known ``J``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import samplers
from .._config import AbstractConfig
from .._errors import ConfigError, DataError
from .._model import AbstractModel, all_inexact, model_for
from .._trainer import AbstractTrainer, GradientTrainer
from ._ising import IsingTarget
from ._pcd import frozen
from ._potts import PottsTarget


#: Samplers that run on binary states (``num_values=2``) and on one-hot states (``num_values > 2``).
BINARY_STATE_SAMPLERS = ("gwg", "random_scan_gibbs", "uniform_mh", "dmala", "hamming_ball", "enumerated_block_gibbs")
ONE_HOT_SAMPLERS = (
    "categorical_gwg", "categorical_gibbs", "categorical_uniform_mh", "dmala", "hamming_ball", "enumerated_block_gibbs",
)


@dataclasses.dataclass(frozen=True)
class PairwiseMRFConfig(AbstractConfig):
    """An Ising (``num_values=2``) or Potts (``num_values=K``) model with learned couplings, and its PCD settings."""

    family: ClassVar[str] = "ebm"
    type_name: ClassVar[str] = "ebm.PairwiseMRFConfig"

    num_nodes: int = 100
    num_values: int = 2
    learn_bias: bool = False
    init_std: float = 0.01
    # PCD
    train_sampler: str = "gwg"  # a name in zoo.samplers.SAMPLERS that fits the state kind
    sampling_steps: int = 50  # sampler steps per update, on every chain of the buffer
    buffer_size: int = 256
    l1: float = 0.0
    # sampling
    sample_steps: int = 5000

    def __post_init__(self) -> None:
        if self.num_nodes < 2 or self.num_values < 2:
            raise ConfigError(f"need num_nodes >= 2 and num_values >= 2, got {self.num_nodes}, {self.num_values}")
        samplers.SAMPLERS.get(self.train_sampler)  # a ConfigError naming the samplers for an unknown name
        allowed = BINARY_STATE_SAMPLERS if self.num_values == 2 else ONE_HOT_SAMPLERS
        if self.train_sampler not in allowed:
            kind = "binary (num_values=2)" if self.num_values == 2 else "one-hot (num_values > 2)"
            raise ConfigError(
                f"train_sampler {self.train_sampler!r} does not sample {kind} states; use one of {', '.join(allowed)}"
            )


@model_for(PairwiseMRFConfig)
class PairwiseMRF(AbstractModel):
    """Couplings ``J`` (used symmetrised, zero diagonal) and fields ``b`` ((D,) Ising, (D, K) Potts)."""

    config: PairwiseMRFConfig = eqx.field(static=True)
    J: Float[Array, "D D"]
    b: Array
    trainer: ClassVar[AbstractTrainer] = GradientTrainer()

    def __init__(self, config: PairwiseMRFConfig, *, key: PRNGKeyArray):
        self.config = config
        d, k = config.num_nodes, config.num_values
        self.J = config.init_std * jax.random.normal(key, (d, d), jnp.float32)
        self.b = jnp.zeros((d,) if k == 2 else (d, k), jnp.float32)

    # -- the model ---------------------------------------------------------------------
    def couplings(self) -> Float[Array, "D D"]:
        """The symmetric zero-diagonal coupling matrix the model uses."""
        d = self.J.shape[0]
        return (self.J + self.J.T) / 2 * (1 - jnp.eye(d, dtype=self.J.dtype))

    def target(self) -> IsingTarget | PottsTarget:
        """The sampler target: `IsingTarget` on binary states or `PottsTarget` on one-hot ones."""
        return IsingTarget(self.couplings(), self.b) if self.config.num_values == 2 else PottsTarget(
            self.couplings(), self.b
        )

    def log_prob(self, x: Array) -> Float[Array, ""]:
        """Unnormalised log-density of one state ((D,) binary or (D, K) one-hot)."""
        return self.target()(x)

    def random_states(self, n: int, *, key: PRNGKeyArray) -> Array:
        """`n` uniformly random states (the chains' initialisation)."""
        d, k = self.config.num_nodes, self.config.num_values
        if k == 2:
            return jax.random.bernoulli(key, 0.5, (n, d)).astype(jnp.float32)
        return jax.nn.one_hot(jax.random.randint(key, (n, d), 0, k), k, dtype=jnp.float32)

    def _states(self, batch: Any) -> Array:
        x = jnp.asarray(batch, jnp.float32)
        d, k = self.config.num_nodes, self.config.num_values
        want = (d,) if k == 2 else (d, k)
        if x.shape[1:] != want:
            hint = "; encode values with jax.nn.one_hot" if k > 2 else ""
            raise DataError(
                f"expected a batch of {'binary vectors' if k == 2 else 'one-hot arrays'} of shape (N, "
                f"{', '.join(map(str, want))}), got {x.shape}{hint}"
            )
        return x

    # -- training ----------------------------------------------------------------------
    def prepare_data(self, dataset: Any) -> np.ndarray:
        return dataset.x

    def init_state(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> Array:
        """The persistent chains: ``buffer_size`` uniformly random states."""
        return self.random_states(self.config.buffer_size, key=key)

    def trainable(self) -> PyTree[bool]:
        spec = all_inexact(self)
        return spec if self.config.learn_bias else eqx.tree_at(lambda m: m.b, spec, False)

    def loss(self, batch: Array, state: Array, *, key: PRNGKeyArray):
        c = self.config
        x_data = self._states(batch)
        fixed = frozen(self)
        chains = samplers.run(self.default_sampler(), fixed.target(), state, num_steps=c.sampling_steps, key=key,
                              batched=True)
        x_fake = jax.lax.stop_gradient(chains.final)
        f_real = jax.vmap(self.log_prob)(x_data)
        f_fake = jax.vmap(self.log_prob)(x_fake)
        gap = jnp.mean(f_real) - jnp.mean(f_fake)
        loss = -gap + c.l1 * jnp.sum(jnp.abs(self.couplings()))
        metrics = {"gap": gap, **{f"sampler_{k}": jnp.mean(v) for k, v in chains.info.items()}}
        return loss, (x_fake, metrics)

    # -- sampling ----------------------------------------------------------------------
    def default_sampler(self) -> samplers.AbstractSampler:
        """The config's ``train_sampler`` with its default settings."""
        return samplers.SAMPLERS.get(self.config.train_sampler)()

    def sample(self, n: int, *, sampler: samplers.AbstractSampler | None = None, key: PRNGKeyArray) -> Array:
        """`n` states: ``config.sample_steps`` steps of `sampler` from uniformly random states."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        x0 = self.random_states(n, key=k0)
        return samplers.run(sampler, self.target(), x0, num_steps=self.config.sample_steps, key=k1, batched=True).final

    def to_images(self, samples: Array) -> np.ndarray:
        """States of a square lattice as grey images (value / (K - 1))."""
        d, k = self.config.num_nodes, self.config.num_values
        side = math.isqrt(d)
        if side * side != d:
            raise TypeError(f"{d} nodes are not a square lattice; these samples are not images")
        x = np.asarray(samples, np.float32)
        v = x if k == 2 else np.argmax(x, -1).astype(np.float32)
        return (v / (k - 1)).reshape(len(v), side, side, 1)

    # -- evaluation --------------------------------------------------------------------
    def pseudo_log_likelihood(self, x: Array) -> Float[Array, ""]:
        """``sum_i log p(x_i | x_-i)`` of one state (exact: each conditional enumerates K values)."""
        t = self.target()
        cache = t.init(x)
        d = self.config.num_nodes
        if self.config.num_values == 2:
            gibbs = samplers.RandomScanGibbs()
            p_flip = jax.vmap(lambda i: gibbs.flip_prob(t, x, cache, i)[0])(jnp.arange(d))
            return jnp.sum(jnp.log1p(-p_flip))
        cat = samplers.CategoricalGibbs()
        log_p = jax.vmap(lambda i: cat.conditional(t, x, cache, i)[0])(jnp.arange(d))
        return jnp.sum(log_p * x)

    def evaluate(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
        """The mean pseudo-log-likelihood of `data` (per state and per node)."""
        x = self._states(data)
        pll = eqx.filter_jit(lambda m, xs: jnp.mean(jax.vmap(m.pseudo_log_likelihood)(xs)))(self, x)
        return {"pseudo_log_likelihood": float(pll), "pseudo_log_likelihood_per_node": float(pll) / x.shape[1]}


def coupling_rmse(model: PairwiseMRF, J_true: Array) -> float:
    """``sqrt(mean((J - J_true)^2))`` over all ``D^2`` entries (the official `pcd.py` metric,
    in zoo's convention ``f = 1/2 s^T J s``: twice the official ``J``, so twice its RMSE)."""
    J_true = jnp.asarray(J_true)
    if J_true.shape != model.J.shape:
        raise ValueError(f"J_true has shape {J_true.shape}, the model's couplings {model.J.shape}")
    return float(jnp.sqrt(jnp.mean((model.couplings() - J_true) ** 2)))
