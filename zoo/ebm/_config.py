"""The EBM family's configs: `RBMConfig` and `ResNetEBMConfig` (model, PCD, sampling and AIS settings)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from .._config import AbstractConfig
from .._errors import ConfigError
from ..samplers import GWG, SAMPLERS, BlockGibbs, RandomScanGibbs, UniformMH


#: The sampler classes that PCD can run on a binary target.
BINARY_SAMPLERS = (BlockGibbs, GWG, RandomScanGibbs, UniformMH)


@dataclasses.dataclass(frozen=True)
class RBMConfig(AbstractConfig):
    """A Bernoulli RBM and its PCD / sampling / AIS settings."""

    family: ClassVar[str] = "ebm"
    type_name: ClassVar[str] = "ebm.RBMConfig"

    visible: int = 784
    hidden: int = 500
    image_shape: tuple[int, ...] | None = (28, 28, 1)  # how samples are reshaped (None: flat)
    init_std: float = 0.01
    # PCD
    train_sampler: str = "block_gibbs"  # a name in zoo.samplers.SAMPLERS: "block_gibbs" | "gwg" | ...
    sampling_steps: int = 10
    buffer_size: int = 1000
    reinit_freq: float = 0.0
    l2: float = 0.0
    # sampling / evaluation
    sample_steps: int = 1000  # block-Gibbs sweeps for `sample`
    ais_steps: int = 20000
    ais_chains: int = 100

    def __post_init__(self) -> None:
        cls = SAMPLERS.get(self.train_sampler)  # a ConfigError naming the samplers for an unknown name
        if not issubclass(cls, BINARY_SAMPLERS):
            raise ConfigError(
                f"train_sampler {self.train_sampler!r} does not sample binary vectors; use 'block_gibbs' or 'gwg'"
            )
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.visible:
            raise ConfigError(f"image_shape {self.image_shape} does not have {self.visible} pixels")


@dataclasses.dataclass(frozen=True)
class ResNetEBMConfig(AbstractConfig):
    """A ResNet EBM on binary images and its PCD / sampling / AIS settings."""

    family: ClassVar[str] = "ebm"
    type_name: ClassVar[str] = "ebm.ResNetEBMConfig"

    channels: int = 64
    num_blocks: int = 6  # stride-1 blocks after the two stride-2 blocks (the paper: 6)
    image_size: int = 28
    base_dist: bool = True
    # PCD
    sampling_steps: int = 40  # GWG steps per parameter update
    num_flips: int = 1
    buffer_size: int = 10000
    reinit_freq: float = 0.0
    l2: float = 0.0  # penalty on the squared network output (not the base term)
    # sampling / evaluation
    sample_steps: int = 2000
    ais_steps: int = 10000
    ais_chains: int = 100
