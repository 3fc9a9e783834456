"""Bernoulli restricted Boltzmann machine, with the hidden units summed out.

``f(x) = b.x + sum_j softplus(c_j + x.W[:, j])`` (the negative free energy). As a sampler
target (`RBMTarget`) it caches the hidden pre-activations ``a = c + x W``: a flip of
coordinate ``i`` updates them in O(H), ``f`` costs O(D + H) and ``grad f = b + W sigmoid(a)``
one matrix-vector product, so a GWG step costs one ``D x H`` product per chain.
`RBMTarget.log_prob_and_grad` gets ``f`` and ``grad f`` from one sigmoid per hidden unit, and
`RBMTarget.with_grad_dtype` runs the product in bfloat16 (a proposal-only change).
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import samplers
from .._errors import DataError
from .._model import model_for
from ._config import RBMConfig
from ._pcd import AbstractPCDModel, PCDState, data_mean_logits, init_buffer, initial_chains, pcd_loss


class RBMTarget(samplers.AbstractBinaryTarget):
    """An RBM's marginal over the visible units as a binary sampler target (cache: ``a``)."""

    W: Float[Array, "D H"]
    b: Float[Array, " D"]
    c: Float[Array, " H"]
    # W^T in a lower precision for the gradient's product (`with_grad_dtype`); None: float32 W
    grad_weights: Float[Array, "H D"] | None = None

    def with_grad_dtype(self, dtype: jnp.dtype | None) -> RBMTarget:
        """This target with the product of ``grad f = b + W sigmoid(a)`` in `dtype` (``jnp.bfloat16``:
        inputs rounded to bfloat16, float32 accumulation; ``None`` or float32: exact float32).

        Only gradient-informed proposals (GWG, DMALA, path auxiliary) read the gradient; ``f``
        stays float32, so a Metropolis-Hastings sampler that evaluates its forward and reverse
        proposals with this same gradient is exactly as correct as with the float32 one. On CPUs
        with AVX512-BF16 the product, most of a GWG step, runs about twice as fast
        (scripts/bench_gwg.py)."""
        if dtype is None or jnp.dtype(dtype) == self.W.dtype:
            return eqx.tree_at(lambda t: t.grad_weights, self, None, is_leaf=lambda v: v is None)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"grad_dtype must be a floating dtype (e.g. jnp.bfloat16) or None, got {dtype}")
        return eqx.tree_at(lambda t: t.grad_weights, self, self.W.T.astype(dtype), is_leaf=lambda v: v is None)

    def _grad_product(self, s: Float[Array, " H"]) -> Float[Array, " D"]:
        """``W s``, in `grad_weights`' dtype if set."""
        if self.grad_weights is None:
            return self.W @ s
        return jnp.dot(s.astype(self.grad_weights.dtype), self.grad_weights, preferred_element_type=self.W.dtype)

    def hidden_logits(self, x: Float[Array, " D"]) -> Float[Array, " H"]:
        return x @ self.W + self.c

    def visible_logits(self, h: Float[Array, " H"]) -> Float[Array, " D"]:
        return self.W @ h + self.b

    def init(self, x: Float[Array, " D"]) -> Float[Array, " H"]:
        return self.hidden_logits(x)

    def log_prob(self, x: Float[Array, " D"], cache: Float[Array, " H"]) -> Float[Array, ""]:
        return x @ self.b + jnp.sum(jax.nn.softplus(cache))

    def grad(self, x: Float[Array, " D"], cache: Float[Array, " H"]) -> Float[Array, " D"]:
        return self.b + self._grad_product(jax.nn.sigmoid(cache))

    def log_prob_and_grad(
        self, x: Float[Array, " D"], cache: Float[Array, " H"]
    ) -> tuple[Float[Array, ""], Float[Array, " D"]]:
        """``(f(x), grad f(x))`` from one sigmoid per hidden unit: ``softplus(a) = max(a, 0) -
        log sigmoid(|a|)``, and ``sigmoid(|a|)`` is ``sigmoid(a)`` or ``1 - sigmoid(a)``, in [1/2, 1]
        (absolute error of each term ~1e-7, below the float32 rounding of the sum over H units).
        On XLA:CPU `jax.nn.softplus` (an exponential and a ``log1p``) costs several times a
        sigmoid; this agrees with `log_prob` to float32 rounding (tested)."""
        s = jax.nn.sigmoid(cache)
        softplus = jnp.maximum(cache, 0) - jnp.log(jnp.where(cache >= 0, s, 1 - s))
        return x @ self.b + jnp.sum(softplus), self.b + self._grad_product(s)

    def flip(self, x, cache, idx: Int[Array, " n"], first: Array):
        sign = jnp.where(first, 1 - 2 * x[idx], 0).astype(self.W.dtype)
        cache = cache + sign @ self.W[idx]
        return samplers.flip_indices(x, idx), cache

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        """``f(x)`` from scratch."""
        return self.log_prob(x, self.init(x))


def _log_marginal_visible(target: RBMTarget, x: Float[Array, " D"]) -> Float[Array, ""]:
    return target(x)


def _log_marginal_hidden(target: RBMTarget, h: Float[Array, " H"]) -> Float[Array, ""]:
    """``log sum_x exp(b.x + c.h + x.W h) = c.h + sum_i softplus(b_i + (W h)_i)``."""
    return h @ target.c + jnp.sum(jax.nn.softplus(target.visible_logits(h)))


@eqx.filter_jit
def _logsumexp_enumerated(target: RBMTarget, side: str, n: int, chunk: int) -> Float[Array, ""]:
    fn = _log_marginal_hidden if side == "hidden" else _log_marginal_visible
    bit = jnp.arange(n, dtype=jnp.int32)[None, :]

    def one_chunk(start):
        idx = start + jnp.arange(chunk, dtype=jnp.int32)[:, None]
        states = ((idx >> bit) & 1).astype(target.W.dtype)
        return jax.scipy.special.logsumexp(jax.vmap(lambda s: fn(target, s))(states))

    starts = jnp.arange(0, 2**n, chunk, dtype=jnp.int32)
    return jax.scipy.special.logsumexp(jax.lax.map(one_chunk, starts))


_MAX_UNITS = 20


def rbm_log_z_exact(
    target: RBMTarget, *, over: Literal["auto", "visible", "hidden"] = "auto", chunk_size: int = 2**14
) -> Float[Array, ""]:
    """Exact ``log Z = log sum_x exp f(x)`` of an RBM, by enumerating one layer's ``2^n`` states.

    - ``over="visible"``: ``sum_x exp f(x)`` over the ``2^D`` visible states.
    - ``over="hidden"``: ``sum_h exp(c.h) prod_i (1 + exp(b_i + (W h)_i))`` over the ``2^H``
      hidden states ("exact in h": any number of visible units).
    - ``over="auto"`` (default): the smaller layer. The enumerated layer may have at most 20 units.

    Float32 throughout; states are generated and reduced (log-sum-exp) `chunk_size` at a time,
    so ``2^20`` states need only ``chunk_size x max(D, H)`` floats of memory.
    """
    d, h = target.W.shape
    if over not in ("auto", "visible", "hidden"):
        raise ValueError(f"over must be 'auto', 'visible' or 'hidden', got {over!r}")
    side = ("hidden" if h < d else "visible") if over == "auto" else over
    n = h if side == "hidden" else d
    if n > _MAX_UNITS:
        hint = (
            "pass over='auto' to enumerate the smaller layer"
            if min(d, h) <= _MAX_UNITS
            else "estimate log Z with zoo.ebm.ais instead"
        )
        raise ValueError(
            f"exact log Z enumerates 2^{n} {side} states, but at most {_MAX_UNITS} units can be "
            f"enumerated and this RBM has {d} visible and {h} hidden units: {hint}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk = min(1 << (chunk_size.bit_length() - 1), 2**n)  # a power of two that divides 2^n
    return _logsumexp_enumerated(target, side, n, chunk)


@model_for(RBMConfig)
class RBM(AbstractPCDModel):
    """Bernoulli RBM with weights ``W`` (visible x hidden), biases ``b`` (visible), ``c`` (hidden)."""

    config: RBMConfig = eqx.field(static=True)
    W: Float[Array, "D H"]
    b: Float[Array, " D"]
    c: Float[Array, " H"]
    base_logits: Float[Array, " D"]  # frozen data-mean Bernoulli: AIS base and chain re-init

    def __init__(self, config: RBMConfig, *, key: PRNGKeyArray):
        self.config = config
        self.W = config.init_std * jax.random.normal(key, (config.visible, config.hidden), jnp.float32)
        self.b = jnp.zeros((config.visible,), jnp.float32)
        self.c = jnp.zeros((config.hidden,), jnp.float32)
        self.base_logits = jnp.zeros((config.visible,), jnp.float32)

    def with_base(self, data: np.ndarray) -> RBM:
        """Visible biases and base distribution set to the data-mean log-odds of `data`."""
        logits = jnp.asarray(data_mean_logits(data))
        return eqx.tree_at(lambda m: (m.b, m.base_logits), self, (logits, logits))

    def fits_base(self) -> bool:
        return True

    def init_state(self, data: object, *, key: PRNGKeyArray) -> PCDState:
        """The replay buffer: ``config.buffer_size`` draws from the base."""
        return init_buffer(self.base_logits, self.config.buffer_size, key=key)

    def target(self) -> RBMTarget:
        return RBMTarget(self.W, self.b, self.c)

    def log_prob(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        """Unnormalised log-density (negative free energy) of one flat binary vector."""
        return self.target()(x)

    def train_sampler(self) -> samplers.AbstractSampler:
        """The PCD sampler ``config.train_sampler`` names (block Gibbs or GWG)."""
        return samplers.SAMPLERS.get(self.config.train_sampler)()

    def default_sampler(self) -> samplers.BlockGibbs:
        """Block Gibbs sweeps (what `sample` runs by default)."""
        return samplers.BlockGibbs()

    def ais_sampler(self) -> samplers.GWG:
        return samplers.GWG()

    def ais(self, *, num_steps: int, num_chains: int, key: PRNGKeyArray):
        """AIS to this RBM: the geometric path with GWG, or (``ais_path="rbm"``) annealed block Gibbs."""
        from ._ais import ais
        from ._rbm_path import rbm_path_ais

        if self.config.ais_path == "rbm":
            return rbm_path_ais(self.target(), self.base_logits, num_steps=num_steps, num_chains=num_chains, key=key)
        return ais(self.target(), self.base_logits, num_steps=num_steps, num_chains=num_chains, key=key,
                   sampler=self.ais_sampler())

    def _flat(self, batch: Array) -> Float[Array, "B D"]:
        x = jnp.asarray(batch)
        if x.ndim < 2 or x[0].size != self.config.visible:
            raise DataError(f"expected examples with {self.config.visible} binary units, got shape {x.shape}")
        return x.reshape(x.shape[0], self.config.visible).astype(jnp.float32)

    def loss(self, batch: Array, state: PCDState, *, key: PRNGKeyArray):
        c = self.config
        return pcd_loss(
            self, self._flat(batch), state, sampler=self.train_sampler(), num_steps=c.sampling_steps,
            reinit_freq=c.reinit_freq, l2=c.l2, key=key,
        )

    def sample(
        self, n: int, *, sampler: samplers.AbstractSampler | None = None, num_steps: int | None = None,
        sharding: NamedSharding | None = None, key: PRNGKeyArray,
    ) -> Array:
        """`n` samples: `num_steps` (default ``config.sample_steps``) steps of `sampler` (default:
        block Gibbs) from ``config.sample_init`` (the base distribution, or noise); images if `image_shape`.
        `sharding`: the chains data-parallel over devices, the same samples (`zoo.samplers.run`)."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        x0 = initial_chains(self.base_logits, n, self.config.sample_init, key=k0)
        steps = num_steps or self.config.sample_steps
        x = samplers.run(sampler, self.target(), x0, num_steps=steps, key=k1, batched=True, sharding=sharding).final
        return x if self.config.image_shape is None else x.reshape(n, *self.config.image_shape)

    def to_images(self, samples: Array) -> np.ndarray:
        x = np.asarray(samples, np.float32)
        if self.config.image_shape is None or len(self.config.image_shape) != 3:
            raise TypeError("this RBM has no image_shape; its samples are not images")
        return np.clip(x.reshape(len(x), *self.config.image_shape), 0, 1)
