"""Markov chain samplers shared by every family: objects with `init`/`step`, one driver."""

from ._annealed_langevin import (
    AnnealedLangevin as AnnealedLangevin,
    AnnealedLangevinInpainting as AnnealedLangevinInpainting,
    v2_step_size as v2_step_size,
)
from ._base import AbstractSampler as AbstractSampler
from ._driver import ChainResult as ChainResult, run as run
from ._gibbs import BlockGibbs as BlockGibbs, RandomScanGibbs as RandomScanGibbs
from ._gwg import (
    GWG as GWG,
    AbstractBinaryTarget as AbstractBinaryTarget,
    GWGState as GWGState,
    LogDensity as LogDensity,
    as_binary_target as as_binary_target,
    flip_indices as flip_indices,
)
from ._langevin import Langevin as Langevin
from ._mh import UniformMH as UniformMH
