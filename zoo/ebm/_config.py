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


def _check_ais_path(path: str) -> None:
    if path not in ("geometric", "rbm"):
        raise ConfigError(f"ais_path must be 'geometric' or 'rbm', got {path!r}")


def _check_sample_init(init: str) -> None:
    if init not in ("base", "noise"):
        raise ConfigError(f"sample_init must be 'base' or 'noise', got {init!r}")


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
    # where `sample` starts its chains: "base", the data-mean Bernoulli; "noise", independent pixels at the data's
    # mean pixel rate (the same for every pixel, so no digit-shaped start)
    sample_init: str = "base"
    ais_steps: int = 20000
    ais_chains: int = 100
    # "geometric": from the base to f with GWG transitions (`zoo.ebm.ais`); "rbm": the RBM's own path, scaled joint
    # energy, annealed block Gibbs (`zoo.ebm.rbm_path_ais`, Salakhutdinov & Murray 2008)
    ais_path: str = "geometric"

    def __post_init__(self) -> None:
        _check_ais_path(self.ais_path)
        _check_sample_init(self.sample_init)
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
    # > 0: add an RBM term with this many hidden units, ``b.x + sum_j softplus(c_j + x.W[:, j])``, to the energy
    # (a product of an RBM and the ResNet; warm-started from a trained RBM by `ResNetEBM.warm_start`). The RBM's
    # visible biases then play the base term's role, so `base_dist` must be False; the data-mean Bernoulli
    # (``base_logits``) stays the AIS base and the chains' re-initialisation.
    rbm_hidden: int = 0
    buffer_init_sweeps: int = 0  # block-Gibbs sweeps of the RBM term over the initial replay buffer (rbm_hidden > 0)
    # rbm_hidden > 0: each sampler step (PCD and `sample`) is a cycle of `gibbs_mh_steps` Metropolis-Hastings steps
    # proposing a block-Gibbs sweep of the RBM term (accepted by the network term alone) and `gwg_steps_per_cycle`
    # GWG steps; 0 gibbs_mh_steps: GWG alone
    gibbs_mh_steps: int = 0
    gwg_steps_per_cycle: int = 1
    # PCD
    sampling_steps: int = 40  # GWG steps per parameter update
    num_flips: int = 1
    buffer_size: int = 10000
    reinit_freq: float = 0.0
    l2: float = 0.0  # penalty on the squared network output (not the base term)
    # sampling / evaluation
    sample_steps: int = 2000
    sample_init: str = "base"  # "base" (data-mean Bernoulli) or "noise" (every pixel at the data's mean rate)
    ais_steps: int = 10000
    ais_chains: int = 100
    # "geometric": from the base to f with GWG transitions (`zoo.ebm.ais`); "rbm" (rbm_hidden > 0): the RBM term's
    # own path with the network term annealed alongside, block-Gibbs-proposal MH (`zoo.ebm.rbm_path_ais`)
    ais_path: str = "geometric"

    def __post_init__(self) -> None:
        _check_ais_path(self.ais_path)
        _check_sample_init(self.sample_init)
        if self.ais_path == "rbm" and not self.rbm_hidden:
            raise ConfigError("ais_path='rbm' anneals the RBM term: it needs rbm_hidden > 0 (else 'geometric')")
        if self.rbm_hidden < 0:
            raise ConfigError(f"rbm_hidden must be >= 0 (0: no RBM term), got {self.rbm_hidden}")
        if self.rbm_hidden and self.base_dist:
            raise ConfigError(
                "rbm_hidden > 0 adds an RBM whose visible biases replace the data-mean base term: set base_dist=False"
            )
        if self.gibbs_mh_steps and not self.rbm_hidden:
            raise ConfigError("gibbs_mh_steps proposes block-Gibbs sweeps of the RBM term: it needs rbm_hidden > 0")
        if self.gwg_steps_per_cycle < 1:
            raise ConfigError(f"gwg_steps_per_cycle must be >= 1, got {self.gwg_steps_per_cycle}")
        if self.buffer_init_sweeps and not self.rbm_hidden:
            raise ConfigError("buffer_init_sweeps runs block Gibbs on the RBM term: it needs rbm_hidden > 0")


@dataclasses.dataclass(frozen=True)
class CategoricalEBMConfig(AbstractConfig):
    """A deep EBM on categorical data (one-hot states: ``num_positions`` x ``num_values``) and its
    PCD / sampling / AIS settings."""

    family: ClassVar[str] = "ebm"
    type_name: ClassVar[str] = "ebm.CategoricalEBMConfig"

    num_positions: int = 784  # D
    num_values: int = 4  # K
    image_shape: tuple[int, ...] | None = (28, 28, 1)  # how states are shown as grey images (None: not images)
    hidden: int = 128  # width of the MLP's hidden layers
    num_layers: int = 2  # hidden layers (the first reads the one-hot input)
    base_dist: bool = True  # add the frozen data-marginal term sum_i log p0_i(x_i) to the energy
    # PCD
    sampling_steps: int = 20  # categorical GWG steps per parameter update
    num_changes: int = 1  # changes per GWG proposal
    buffer_size: int = 1000
    reinit_freq: float = 0.0
    l2: float = 0.0  # penalty on the squared network output (not the base term)
    # sampling / evaluation
    sample_steps: int = 2000
    ais_steps: int = 10000
    ais_chains: int = 100

    def __post_init__(self) -> None:
        if self.num_positions < 1 or self.num_values < 2:
            raise ConfigError(f"need num_positions >= 1 and num_values >= 2, got {self.num_positions}, "
                              f"{self.num_values}")
        if self.hidden < 1 or self.num_layers < 1:
            raise ConfigError(f"need hidden >= 1 and num_layers >= 1, got {self.hidden}, {self.num_layers}")
        if not 0.0 <= self.reinit_freq <= 1.0:
            raise ConfigError(f"reinit_freq is a probability, got {self.reinit_freq}")
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.num_positions:
            raise ConfigError(f"image_shape {self.image_shape} does not have {self.num_positions} pixels")
