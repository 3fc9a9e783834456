"""Configuration of the binary-latent VAE."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._config import AbstractConfig
from .._errors import ConfigError
from ..estimators import ESTIMATORS


@dataclasses.dataclass(frozen=True)
class DVAEConfig(AbstractConfig):
    """A VAE with ``latent_dim`` Bernoulli latents, a Bernoulli(0.5) prior and a Bernoulli decoder.

    - `architecture`: ``"linear"`` (784 -> D, D -> 784) or ``"nonlinear"``
      (784-200-200-D and D-200-200-784 with LeakyReLU(0.3)).
    - `estimator`: encoder-gradient estimator, one of `zoo.estimators.ESTIMATORS`, with
      `num_samples` (K) evaluations of the negative ELBO per data point.
    - `dynamic_binarization`: resample binary pixels ~ Bernoulli(grey value) every step
      (Fashion-MNIST, dynamic MNIST); evaluation binarizes held-out data once with its key.
    - `iw_samples`, `iw_chunk`: importance samples for the IWAE bound in `evaluate`, and how many
      are decoded at once; `variance_replicates`, `variance_batch`: gradient estimates and data
      points used to measure the encoder-gradient variance.
    - `estimator_learning_rate`: the rate the estimator's own parameters (control network,
      RODEO's alpha and beta) train at, whatever the run's `TrainConfig.learning_rate`, as the
      official RODEO code trains them (its own Adam at ``control_lr = hyper_lr = 1e-3``; with Adam,
      zoo's per-parameter rate is exactly that optimiser); ``None`` trains them at the run's rate.
    - `combine_chunk`: data points per chunk when combining samples into estimates (keeps RODEO's
      per-neighbour work in cache; on the 2-core CPU chunks of 5 were as fast as or slightly faster
      than the whole batch of 100 at once); ``None`` for one pass.
    """

    family: ClassVar[str] = "dvae"
    type_name: ClassVar[str] = "dvae.DVAEConfig"

    architecture: str = "nonlinear"
    data_dim: int = 784
    image_shape: tuple[int, int, int] = (28, 28, 1)
    latent_dim: int = 200
    hidden: int = 200
    negative_slope: float = 0.3
    estimator: str = "rodeo"
    num_samples: int = 2
    control_width: int = 100
    estimator_learning_rate: float | None = 1e-3
    dynamic_binarization: bool = False
    combine_chunk: int | None = 5  # data points per chunk in the estimator's combination step
    iw_samples: int = 1000
    iw_chunk: int = 250
    elbo_samples: int = 100
    variance_replicates: int = 100
    variance_batch: int = 100

    def __post_init__(self) -> None:
        if self.architecture not in ("linear", "nonlinear"):
            raise ConfigError(f"architecture must be 'linear' or 'nonlinear', not {self.architecture!r}")
        ESTIMATORS.get(self.estimator)  # a ConfigError with the known names for an unknown one
        if self.estimator == "disarm" and self.num_samples % 2:
            from ..estimators import DisARM

            DisARM(self.num_samples)  # raises the ConfigError that explains the fix
        if self.estimator_learning_rate is not None and not self.estimator_learning_rate > 0:
            rate = self.estimator_learning_rate
            raise ConfigError(f"estimator_learning_rate must be positive (or None for the run's rate), not {rate}")
        shape = tuple(self.image_shape)
        if shape[0] * shape[1] * shape[2] != self.data_dim:
            raise ConfigError(f"image_shape {shape} does not hold data_dim={self.data_dim} pixels")
        if self.iw_samples % self.iw_chunk:
            raise ConfigError(f"iw_samples ({self.iw_samples}) must be a multiple of iw_chunk ({self.iw_chunk})")
        if self.elbo_samples > self.iw_samples:
            raise ConfigError("elbo_samples must not exceed iw_samples (the ELBO reuses the importance samples)")
