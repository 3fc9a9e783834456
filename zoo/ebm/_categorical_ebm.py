"""A deep EBM on categorical data: an MLP energy on one-hot states ``(D, K)`` plus a frozen
product-of-categoricals base, trained by PCD with categorical Gibbs-with-Gradients (the GWG
paper's categorical EBM, official ``pcd_ebm_ema_cat.py``, with an MLP energy).

``f(x) = net(x) + sum_i log p0_i(x_i)``: ``p0`` is the data's per-position marginals (the
categorical analogue of the binary models' data-mean Bernoulli; `categorical_data_logits`), the
AIS base and the distribution chains are (re-)initialised from. With ``K = 2`` the base term is
exactly the binary data-mean Bernoulli. As a sampler target (`CategoricalMLPTarget`) the energy
caches the first layer's pre-activations: a change of position ``i`` to value ``v`` updates them
with two rows of the first-layer weights, so a GWG step costs one pass of the rest of the network
and one ``D K x H`` product for the gradient, as an RBM's does.

Data: one-hot arrays ``(N, D, K)``, integer levels, or grey values in [0, 1] (any shape with ``D``
entries per example, e.g. ``(N, 28, 28, 1)``), which are quantised into ``K`` equal-width bins as
`zoo.data.quantize` does: ``zoo.data.load("mnist_k4").x`` (stored as ``level / 3``) gives its levels
back, and grey ``mnist`` is quantised on the fly.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import samplers
from .._errors import DataError
from .._model import model_for
from ._config import CategoricalEBMConfig
from ._pcd import AbstractPCDModel, PCDState, pcd_loss


OneHot = Float[Array, "D K"]


def categorical_data_logits(levels: np.ndarray, num_values: int, eps: float = 1e-2) -> np.ndarray:
    """Log-probabilities ``(D, K)`` of each position's data marginal, squeezed into
    ``p (1 - K eps) + eps`` (so no value has probability 0). `levels`: integers ``(N, D)`` in
    ``0..K-1``. With ``K = 2`` the difference of the two columns is `data_mean_logits`."""
    v = np.asarray(levels).reshape(len(levels), -1)
    counts = np.stack([(v == j).sum(0) for j in range(num_values)], axis=-1).astype(np.float64)
    p = counts / len(v) * (1 - num_values * eps) + eps
    return np.log(p).astype(np.float32)


def base_draws(base_logits: Float[Array, "D K"], n: int, *, key: PRNGKeyArray) -> Float[Array, "n D K"]:
    """`n` one-hot draws from the product of categoricals with logits `base_logits`."""
    d, k = base_logits.shape
    v = jax.random.categorical(key, base_logits, axis=-1, shape=(n, d))
    return jax.nn.one_hot(v, k, dtype=jnp.float32)


class CategoricalMLP(eqx.Module):
    """``net(x) = head(silu(... silu(sum_i W[i, x_i] + b)))`` on one-hot ``(D, K)`` states."""

    weight: Float[Array, "D K H"]
    bias: Float[Array, " H"]
    layers: tuple[eqx.nn.Linear, ...]
    head: eqx.nn.Linear

    def __init__(self, d: int, k: int, hidden: int, num_layers: int, *, key: PRNGKeyArray):
        keys = jax.random.split(key, num_layers + 1)
        lim = 1 / math.sqrt(d)  # D inputs are 1 in a one-hot state: the pre-activations have variance ~1/3
        self.weight = jax.random.uniform(keys[0], (d, k, hidden), jnp.float32, -lim, lim)
        self.bias = jnp.zeros((hidden,), jnp.float32)
        self.layers = tuple(eqx.nn.Linear(hidden, hidden, key=kk) for kk in keys[1:-1])
        head = eqx.nn.Linear(hidden, "scalar", key=keys[-1])
        # A zero head: the network term starts at 0, so a fresh model is its base distribution.
        self.head = eqx.tree_at(lambda h: (h.weight, h.bias), head, (jnp.zeros_like(head.weight),
                                                                     jnp.zeros_like(head.bias)))

    def pre(self, x: OneHot) -> Float[Array, " H"]:
        """The first layer's pre-activations."""
        return jnp.einsum("dk,dkh->h", x, self.weight) + self.bias

    def rest(self, a: Float[Array, " H"]) -> Float[Array, ""]:
        """The network from the first pre-activations on."""
        h = jax.nn.silu(a)
        for layer in self.layers:
            h = jax.nn.silu(layer(h))
        return self.head(h)

    def __call__(self, x: OneHot) -> Float[Array, ""]:
        return self.rest(self.pre(x))


class CategoricalMLPTarget(samplers.AbstractCategoricalTarget):
    """``f(x) = net(x) + sum(x * base)`` on one-hot states, with cache ``(a, f(x), grad f(x))``
    (``a``: the first layer's pre-activations, updated incrementally by `change`)."""

    net: CategoricalMLP
    base: Float[Array, "D K"]  # the base's log-probabilities (zeros: no base term)

    def _at(self, x: OneHot, a: Float[Array, " H"]) -> tuple[Array, Array, OneHot]:
        r, da = jax.value_and_grad(self.net.rest)(a)
        g = jnp.einsum("dkh,h->dk", self.net.weight, da) + self.base
        return a, r + jnp.sum(x * self.base), g

    def init(self, x: OneHot) -> tuple[Array, Array, OneHot]:
        return self._at(x, self.net.pre(x))

    def log_prob(self, x: OneHot, cache: tuple[Array, Array, OneHot]) -> Float[Array, ""]:
        return cache[1]

    def grad(self, x: OneHot, cache: tuple[Array, Array, OneHot]) -> OneHot:
        return cache[2]

    def change(self, x, cache, idx: Int[Array, " n"], values: Int[Array, " n"], first: Array):
        old = jnp.argmax(x[idx], axis=-1)
        w = self.net.weight
        delta = jnp.sum(jnp.where(first[:, None], w[idx, values] - w[idx, old], 0.0), axis=0)
        x_new = samplers.set_values(x, idx, values, first)
        return x_new, self._at(x_new, cache[0] + delta)

    def __call__(self, x: OneHot) -> Float[Array, ""]:
        return self.log_prob(x, self.init(x))


def _is_concrete(x: Array) -> bool:
    return not isinstance(x, jax.core.Tracer)


@model_for(CategoricalEBMConfig)
class CategoricalEBM(AbstractPCDModel):
    """``log_prob(x)`` on one-hot states ``(D, K)`` (D = ``num_positions``, K = ``num_values``)."""

    config: CategoricalEBMConfig = eqx.field(static=True)
    net: CategoricalMLP
    base_logits: Float[Array, "D K"]  # frozen: the data marginals' log-probabilities, set before training

    def __init__(self, config: CategoricalEBMConfig, *, key: PRNGKeyArray):
        self.config = config
        d, k = config.num_positions, config.num_values
        self.net = CategoricalMLP(d, k, config.hidden, config.num_layers, key=key)
        self.base_logits = jnp.zeros((d, k), jnp.float32)

    # -- data --------------------------------------------------------------------------
    def _levels(self, data: object) -> np.ndarray:
        """Host data as integer levels ``(N, D)`` (see `_flat` for the formats)."""
        x = np.asarray(data)
        d, k = self.config.num_positions, self.config.num_values
        if x.ndim == 3 and x.shape[1:] == (d, k) and np.issubdtype(x.dtype, np.floating):
            _check_one_hot(x)
            return np.argmax(x, -1)
        if x.ndim >= 2 and x[0].size == d and np.issubdtype(x.dtype, np.integer):
            v = x.reshape(len(x), d)
            _check_levels(v, k)
            return v
        if x.ndim >= 2 and x[0].size == d and np.issubdtype(x.dtype, np.floating):
            from ..data import quantize

            return quantize(x, k).reshape(len(x), d)  # a DataError outside [0, 1]
        raise _data_error(x.shape, x.dtype, d, k)

    def _flat(self, batch: Array) -> Float[Array, "B D K"]:
        """`batch` as one-hot ``(B, D, K)`` float32. It may be one-hot ``(B, D, K)`` floats, integer
        levels or grey values in [0, 1] with D per example (any shape, e.g. ``(B, 28, 28, 1)``;
        quantised into K equal-width bins as `zoo.data.quantize` does, so a quantised data set such
        as ``mnist_k4``, stored as ``level / (K - 1)``, gives its levels back). A `DataError` for
        another shape or, outside `jit`, for values that fit none of these."""
        x = jnp.asarray(batch)
        d, k = self.config.num_positions, self.config.num_values
        if x.ndim == 3 and x.shape[1:] == (d, k) and jnp.issubdtype(x.dtype, jnp.floating):
            if _is_concrete(x):
                _check_one_hot(np.asarray(x))
            return x.astype(jnp.float32)
        if x.ndim < 2 or x[0].size != d:
            raise _data_error(x.shape, x.dtype, d, k)
        if _is_concrete(x):
            return jax.nn.one_hot(self._levels(np.asarray(x)), k, dtype=jnp.float32)
        x = x.reshape(x.shape[0], d)
        if jnp.issubdtype(x.dtype, jnp.floating):  # grey values: equal-width bins, as zoo.data.quantize
            x = jnp.minimum(jnp.floor(x.astype(jnp.float32) * k), k - 1)
        return jax.nn.one_hot(x.astype(jnp.int32), k, dtype=jnp.float32)

    def with_base(self, data: np.ndarray) -> CategoricalEBM:
        """This model with its base set to the data marginals of `data` (`categorical_data_logits`)."""
        logits = categorical_data_logits(self._levels(data), self.config.num_values)
        return eqx.tree_at(lambda m: m.base_logits, self, jnp.asarray(logits))

    def fits_base(self) -> bool:
        return True  # the base re-initialises chains and starts AIS even without the base term

    # -- the model ---------------------------------------------------------------------
    def base_log_prob(self, x: OneHot) -> Float[Array, ""]:
        """``sum_i log p0_i(x_i)``: the product-of-categoricals base, normalised."""
        return jnp.sum(x * jax.nn.log_softmax(jax.lax.stop_gradient(self.base_logits), axis=-1))

    def log_prob(self, x: OneHot) -> Float[Array, ""]:
        """Unnormalised log-density of one one-hot state ``(D, K)``."""
        d, k = self.config.num_positions, self.config.num_values
        if x.shape != (d, k):
            raise DataError(
                f"log_prob takes one one-hot state of shape ({d}, {k}), got {x.shape}; encode levels v with "
                f"jax.nn.one_hot(v, {k}) (and jax.vmap over a batch)"
            )
        if _is_concrete(x):
            _check_one_hot(np.asarray(x)[None])
        f = self.net(x)
        return f + self.base_log_prob(x) if self.config.base_dist else f

    def target(self) -> CategoricalMLPTarget:
        """What the samplers run on: the log-density with the first layer cached."""
        base = jax.nn.log_softmax(jax.lax.stop_gradient(self.base_logits), axis=-1)
        return CategoricalMLPTarget(self.net, base if self.config.base_dist else jnp.zeros_like(base))

    def default_sampler(self) -> samplers.CategoricalGWG:
        """Categorical GWG with ``config.num_changes`` changes per step (also what PCD and AIS run)."""
        return samplers.CategoricalGWG(num_changes=self.config.num_changes)

    def train_sampler(self) -> samplers.CategoricalGWG:
        return self.default_sampler()

    def ais_sampler(self) -> samplers.CategoricalGWG:
        return self.default_sampler()

    def ais(self, *, num_steps: int, num_chains: int, key: PRNGKeyArray):
        """AIS on the geometric path from the base (product of categoricals) to this model."""
        from ._ais import ais

        return ais(self.target(), self.base_logits, num_steps=num_steps, num_chains=num_chains, key=key,
                   sampler=self.ais_sampler())

    # -- training ----------------------------------------------------------------------
    def init_state(self, data: object, *, key: PRNGKeyArray) -> PCDState:
        """The replay buffer: ``config.buffer_size`` one-hot draws ``(N, D, K)`` from the base."""
        return PCDState(buffer=base_draws(self.base_logits, self.config.buffer_size, key=key))

    def loss(self, batch: Array, state: PCDState, *, key: PRNGKeyArray):
        """`zoo.ebm.pcd_loss` with chains re-initialised from the categorical base and the l2 penalty on the
        network term alone: ``-(mean f(data) - mean f(chains)) + l2 (mean net(data)^2 + mean net(chains)^2)``."""
        c = self.config
        logits = jax.lax.stop_gradient(self.base_logits)
        return pcd_loss(self, self._flat(batch), state, sampler=self.train_sampler(), num_steps=c.sampling_steps,
                        reinit_freq=c.reinit_freq, l2=c.l2, reg_fn=self.net,
                        reinit_draws=lambda n, *, key: base_draws(logits, n, key=key), key=key)

    # -- sampling ----------------------------------------------------------------------
    def sample(
        self, n: int, *, sampler: samplers.AbstractSampler | None = None, num_steps: int | None = None,
        key: PRNGKeyArray,
    ) -> Float[Array, "n D K"]:
        """`n` one-hot states ``(n, D, K)``: `num_steps` (default ``config.sample_steps``) steps of
        `sampler` (default: the default sampler) from draws of the base. `to_images` shows them."""
        sampler = self.resolve_sampler(sampler)
        k0, k1 = jax.random.split(key)
        x0 = base_draws(self.base_logits, n, key=k0)
        # samplers.run jits the chain itself (cached), with the model's compiler options
        return samplers.run(sampler, self.target(), x0, num_steps=num_steps or self.config.sample_steps, key=k1,
                            batched=True, compiler_options=dict(self.compiler_options()) or None).final

    def to_images(self, samples: Array) -> np.ndarray:
        """One-hot states (or integer levels) as grey images: level ``v`` is ``v / (K - 1)``."""
        shape, k = self.config.image_shape, self.config.num_values
        if shape is None or len(shape) != 3:
            raise TypeError("this CategoricalEBM has no image_shape; its samples are not images")
        v = self._levels(samples).astype(np.float32)
        return (v / (k - 1)).reshape(len(v), *shape)


def _check_one_hot(x: np.ndarray) -> None:
    """A `DataError` unless every row of `x` ``(..., K)`` is one-hot."""
    if not (np.all((x == 0) | (x == 1)) and np.all(x.sum(-1) == 1)):
        bad = np.argwhere(~np.all((x == 0) | (x == 1), -1) | (x.sum(-1) != 1))[0]
        raise DataError(
            f"expected one-hot states (every row a single 1 among 0s), but the row at index {tuple(bad.tolist())} "
            f"is {x[tuple(bad)].tolist()}; encode levels v with jax.nn.one_hot(v, K)"
        )


def _check_levels(v: np.ndarray, k: int) -> None:
    if v.size and (v.min() < 0 or v.max() >= k):
        raise DataError(f"expected integer levels in 0..{k - 1}, got values in [{v.min()}, {v.max()}]")


def _data_error(shape: tuple[int, ...], dtype: object, d: int, k: int) -> DataError:
    return DataError(
        f"expected one-hot states (N, {d}, {k}) (float), or integer levels in 0..{k - 1} or grey values in [0, 1] "
        f"with {d} per example (e.g. (N, {d})); got shape {tuple(shape)} of {dtype}"
    )
