"""`ToyScoreConfig`: the toy family's MLP score model and its Langevin sampler settings."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._config import AbstractConfig
from .._errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ToyScoreConfig(AbstractConfig):
    """An MLP score model on R^dim."""

    family: ClassVar[str] = "toy"
    type_name: ClassVar[str] = "toy.ToyScoreConfig"

    dim: int = 2
    width: int = 64
    depth: int = 2
    sigma: float = 0.1  # denoising score matching noise level
    langevin_steps: int = 500
    langevin_step_size: float = 1e-3
    init_scale: float = 3.0  # std of the Langevin initialisation
    # Training objective at noise level sigma: "dsm", or sliced score matching "ssm" / "ssm-vr" on
    # x + sigma z (sigma = 0: on the data), with "gaussian" or "rademacher" projections.
    objective: str = "dsm"
    projection: str = "gaussian"

    def __post_init__(self) -> None:
        if self.objective not in ("dsm", "ssm", "ssm-vr"):
            raise ConfigError(f"objective must be 'dsm', 'ssm' or 'ssm-vr', not {self.objective!r}")
        if self.projection not in ("gaussian", "rademacher"):
            raise ConfigError(f"projection must be 'gaussian' or 'rademacher', not {self.projection!r}")
