"""Trainers: how a model's `train` turns data into a trained model (a strategy object).

Most families train by gradient descent on their `loss` with the shared driver
(`GradientTrainer`, which runs `zoo.fit`); a family whose "training" is something else
(fitting a nonparametric estimator, or setting a base distribution before gradient
descent) declares its own trainer. `AbstractModel.train` delegates to the class's
``trainer``, so no family overrides `train`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import equinox as eqx
from jaxtyping import PRNGKeyArray, PyTree


if TYPE_CHECKING:
    import numpy as np

    from ._model import AbstractModel
    from ._train import TrainConfig, TrainResult


class AbstractTrainer(eqx.Module):
    """Trains (or fine-tunes) a model on data: ``trainer.train(model, data, config, key=key)``."""

    @abc.abstractmethod
    def train(
        self,
        model: AbstractModel,
        data: PyTree[np.ndarray],
        config: TrainConfig | None,
        *,
        key: PRNGKeyArray,
        **kwargs: Any,
    ) -> TrainResult:
        """A `zoo.TrainResult` holding the trained model. `kwargs` are the driver's options
        (``workdir``, ``ema``, ``progress``, ...)."""


class GradientTrainer(AbstractTrainer):
    """Gradient descent on ``model.loss`` with the shared driver `zoo.fit`."""

    def train(
        self,
        model: AbstractModel,
        data: PyTree[np.ndarray],
        config: TrainConfig | None,
        *,
        key: PRNGKeyArray,
        **kwargs: Any,
    ) -> TrainResult:
        from ._errors import ConfigError
        from ._train import fit

        if config is None:
            raise ConfigError(f"{type(model).__name__} trains by gradient descent: pass a zoo.TrainConfig(steps=...)")
        return fit(model, data, config, key=key, **kwargs)
