"""Estimators by name, for configs and command lines: one table filled by a decorator.

Each entry is a builder ``(num_samples, *, key, control_width) -> AbstractEstimator``;
register another with ``@zoo.estimators.ESTIMATORS.register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jaxtyping import PRNGKeyArray

from .._registry import Registry
from ._arms import ARMS
from ._base import AbstractEstimator
from ._disarm import DisARM
from ._double_cv import DoubleCV
from ._reinforce import RLOO, Reinforce, ReinforceBaseline
from ._rodeo import RODEO


EstimatorBuilder = Callable[..., AbstractEstimator]

#: Estimator builders by name (``"rodeo"``, ``"disarm"``, ...); iterating yields the names.
ESTIMATORS: Registry[EstimatorBuilder] = Registry("estimator")


@ESTIMATORS.register("reinforce")
def _reinforce(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return Reinforce(num_samples)


@ESTIMATORS.register("reinforce_baseline")
def _reinforce_baseline(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return ReinforceBaseline(num_samples)


@ESTIMATORS.register("rloo")
def _rloo(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return RLOO(num_samples)


@ESTIMATORS.register("disarm")
def _disarm(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return DisARM(num_samples)


@ESTIMATORS.register("arms")
def _arms(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return ARMS(num_samples)


@ESTIMATORS.register("double_cv")
def _double_cv(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return DoubleCV(num_samples)


@ESTIMATORS.register("rodeo")
def _rodeo(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return RODEO(num_samples, width=control_width, key=key)


@ESTIMATORS.register("rodeo_taylor")
def _rodeo_taylor(num_samples: int, *, key: PRNGKeyArray, control_width: int) -> AbstractEstimator:
    return RODEO(num_samples, control="taylor")


def make_estimator(
    name: str, num_samples: int, *, key: PRNGKeyArray | None = None, control_width: int = 100
) -> AbstractEstimator:
    """The estimator called `name` (one of `ESTIMATORS`) with ``num_samples`` evaluations of f
    (``control_width``: hidden units of RODEO's control network, initialised from `key`)."""
    build = ESTIMATORS.get(name)
    return build(num_samples, key=key if key is not None else jax.random.key(0), control_width=control_width)
