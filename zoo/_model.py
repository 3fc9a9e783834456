"""The contract every model family implements.

A family is a set of `eqx.Module` models, each built from a frozen config
(`zoo.AbstractConfig`). Every model has the same four operations, identical across
families:

* ``model.loss(batch, state, *, key)``: the training objective (or a surrogate whose
  gradient is the estimator the family uses), plus an auxiliary training state such as
  a persistent-chain buffer. The shared driver `zoo.train` minimises it.
* ``model.train(data, train_config, *, key, ...)``: defaults to the shared driver;
  families whose "training" is not gradient descent (e.g. fitting a nonparametric
  estimator) override it. Passing a loaded model fine-tunes it.
* ``model.sample(n, *, key)``: ``n`` samples, as a batch.
* ``model.evaluate(data, *, key)``: a ``dict[str, float]`` of metrics on held-out data.

The free functions `zoo.sample`, `zoo.evaluate` and `zoo.train` call these methods.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._config import AbstractConfig


if TYPE_CHECKING:
    from ._train import TrainConfig, TrainResult


class AbstractModel(eqx.Module):
    """Base class of every zoo model. Concrete subclasses are final."""

    config: eqx.AbstractVar[AbstractConfig]

    def prepare_data(self, dataset: Any) -> PyTree[np.ndarray]:
        """The arrays `loss`/`evaluate` take, from a `zoo.data.Dataset` (default: ``dataset.x``;
        e.g. a classifier returns ``(x, y)``). Used by the CLI and scripts."""
        return dataset.x

    def init_state(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> PyTree:
        """Auxiliary training state (e.g. a replay buffer); `None` by default."""
        del data, key
        return None

    def trainable(self) -> PyTree[bool]:
        """Which leaves the training driver optimises, as a filter spec for `eqx.partition`
        (default: every inexact array). Families with frozen arrays (e.g. a fixed base
        distribution) set those leaves to False; `zoo.num_params` counts the rest."""
        return jax.tree.map(eqx.is_inexact_array, self)

    @abc.abstractmethod
    def loss(
        self, batch: PyTree[Array], state: PyTree, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], tuple[PyTree, dict[str, Array]]]:
        """Training objective on a batch: ``(loss, (new_state, metrics))``."""

    def train(
        self,
        data: PyTree[np.ndarray],
        config: TrainConfig,
        *,
        key: PRNGKeyArray,
        **kwargs: Any,
    ) -> TrainResult:
        """Train (or fine-tune) this model on `data` with the shared driver."""
        from ._train import fit

        return fit(self, data, config, key=key, **kwargs)

    @abc.abstractmethod
    def sample(self, n: int, *, key: PRNGKeyArray) -> Array:
        """Draw `n` samples as a batch."""

    @abc.abstractmethod
    def evaluate(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
        """Metrics on held-out `data`."""

    def to_images(self, samples: Array) -> np.ndarray:
        """Samples as images (N, H, W, C) in [0, 1], for PNG grids.

        Image models return their samples; others (e.g. 2-D point clouds) override this
        to render a picture.
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 4:
            raise TypeError(
                f"{type(self).__name__} samples have shape {x.shape}, not (N, H, W, C); "
                "override `to_images` to render them."
            )
        return np.clip(x, 0.0, 1.0)


def sample(model: AbstractModel, n: int, *, key: PRNGKeyArray) -> Array:
    """``model.sample(n, key=key)``."""
    return model.sample(n, key=key)


def evaluate(model: AbstractModel, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
    """``model.evaluate(data, key=key)``, with values converted to Python floats."""
    return {k: float(v) for k, v in model.evaluate(data, key=key).items()}


def train(
    model: AbstractModel, data: PyTree[np.ndarray], config: TrainConfig, *, key: PRNGKeyArray, **kwargs: Any
) -> TrainResult:
    """``model.train(data, config, key=key, ...)``: from scratch or fine-tuning."""
    return model.train(data, config, key=key, **kwargs)


def num_params(model: eqx.Module) -> int:
    """Number of trainable parameters of `model`: the leaves `model.trainable()` selects
    (what `zoo.fit` optimises) for zoo models, every inexact array for other modules."""
    spec = model.trainable() if isinstance(model, AbstractModel) else eqx.is_inexact_array
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, spec))
    return int(sum(x.size for x in leaves))
