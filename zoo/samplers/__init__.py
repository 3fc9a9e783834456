"""Markov chain samplers shared by every family: objects with `init`/`step`, one driver."""

from ._annealed_langevin import (
    AnnealedLangevin as AnnealedLangevin,
    AnnealedLangevinInpainting as AnnealedLangevinInpainting,
    AnnealedLangevinInterpolation as AnnealedLangevinInterpolation,
    v2_step_size as v2_step_size,
)
from ._base import SAMPLERS as SAMPLERS, AbstractSampler as AbstractSampler
from ._categorical import (
    BinaryAsCategorical as BinaryAsCategorical,
    CategoricalGibbs as CategoricalGibbs,
    CategoricalGWG as CategoricalGWG,
    CategoricalGWGState as CategoricalGWGState,
    CategoricalUniformMH as CategoricalUniformMH,
    as_categorical_target as as_categorical_target,
    as_discrete_target as as_discrete_target,
)
from ._dmala import DMALA as DMALA, DMALAState as DMALAState
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
from ._hamming_ball import (
    AbstractBlockSampler as AbstractBlockSampler,
    EnumeratedBlockGibbs as EnumeratedBlockGibbs,
    HammingBall as HammingBall,
)
from ._langevin import Langevin as Langevin
from ._mh import UniformMH as UniformMH
from ._path_auxiliary import PathAuxiliary as PathAuxiliary, PathAuxiliaryState as PathAuxiliaryState
from ._product import Cycle as Cycle, FactorBlockGibbsMH as FactorBlockGibbsMH, ProductTarget as ProductTarget
from ._score import Score as Score, as_score as as_score
from ._svgd import SVGD as SVGD, SVGDState as SVGDState, svgd_bandwidth as svgd_bandwidth
from ._target import (
    AbstractCategoricalTarget as AbstractCategoricalTarget,
    AbstractDiscreteTarget as AbstractDiscreteTarget,
    set_values as set_values,
)
