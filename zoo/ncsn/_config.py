"""`NCSNConfig`: the score network, its noise ladder and its sampler, as one frozen config."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from jaxtyping import PRNGKeyArray

from .._config import AbstractConfig
from .._errors import ConfigError
from ._sigmas import geometric_sigmas


if TYPE_CHECKING:
    from ._model import NCSN


@dataclasses.dataclass(frozen=True)
class NCSNConfig(AbstractConfig):
    """A noise-conditional score network (NCSN, Song & Ermon 2019) and its sampler.

    * ``variant="v1"``: every norm is a CondInstanceNorm++ with one (gamma, alpha, beta)
      per noise level; the network output is the score (the paper).
    * ``variant="v2"``: unconditional InstanceNorm++ and the output divided by sigma
      (NCSNv2's noise conditioning); train with EMA (``TrainConfig.ema_decay``).

    The noise ladder is geometric, ``sigma_begin`` down to ``sigma_end`` in
    ``num_scales`` levels (v1: 1 -> 0.01, L = 10; v2 rules: `zoo.ncsn.v2_sigmas`).
    Sampling: annealed Langevin with ``steps_per_level`` steps of size
    ``step_lr * sigma_i^2 / sigma_L^2`` (``sampling_rule="v1"``), or with step_lr chosen by
    NCSNv2's Technique 4 (``"v2"``), optionally ending with one denoising step.
    """

    family: ClassVar[str] = "ncsn"
    type_name: ClassVar[str] = "ncsn.NCSNConfig"

    image_size: int = 28
    channels: int = 1
    ngf: int = 64
    variant: str = "v1"  # "v1" | "v2"
    sigma_begin: float = 1.0
    sigma_end: float = 0.01
    num_scales: int = 10
    centered: bool = True  # the network sees 2x - 1
    dequantize: bool = True  # x * 255/256 + U(0, 1/256) in training
    sampling_rule: str = "v1"  # "v1" | "v2"
    steps_per_level: int = 100
    step_lr: float = 2e-5
    denoise: bool = False

    def __post_init__(self) -> None:
        if self.variant not in ("v1", "v2"):
            raise ConfigError(f"variant must be 'v1' or 'v2', not {self.variant!r}")
        if self.sampling_rule not in ("v1", "v2"):
            raise ConfigError(f"sampling_rule must be 'v1' or 'v2', not {self.sampling_rule!r}")
        if self.image_size % 2 or self.image_size < 8:
            raise ConfigError(f"image_size must be even and >= 8 (one 2x down/up-sampling), got {self.image_size}")
        if self.ngf < 2 or self.channels < 1:
            raise ConfigError(f"need ngf >= 2 and channels >= 1, got ngf={self.ngf}, channels={self.channels}")
        geometric_sigmas(self.sigma_begin, self.sigma_end, self.num_scales)  # validates

    @property
    def sigmas(self) -> np.ndarray:
        return geometric_sigmas(self.sigma_begin, self.sigma_end, self.num_scales)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    def build(self, *, key: PRNGKeyArray) -> NCSN:
        from ._model import NCSN

        return NCSN(self, key=key)
