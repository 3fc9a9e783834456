"""Estimators by name, for configs and command lines."""

from __future__ import annotations

import jax
from jaxtyping import PRNGKeyArray

from .._errors import ConfigError
from ._arms import ARMS
from ._base import AbstractEstimator
from ._disarm import DisARM
from ._double_cv import DoubleCV
from ._reinforce import RLOO, Reinforce, ReinforceBaseline
from ._rodeo import RODEO


ESTIMATORS: tuple[str, ...] = (
    "reinforce", "reinforce_baseline", "rloo", "disarm", "arms", "double_cv", "rodeo", "rodeo_taylor"
)


def make_estimator(
    name: str, num_samples: int, *, key: PRNGKeyArray | None = None, control_width: int = 100
) -> AbstractEstimator:
    """The estimator called `name` (one of `ESTIMATORS`) with ``num_samples`` evaluations of f
    (``control_width``: hidden units of RODEO's control network)."""
    if name == "reinforce":
        return Reinforce(num_samples)
    if name == "reinforce_baseline":
        return ReinforceBaseline(num_samples)
    if name == "rloo":
        return RLOO(num_samples)
    if name == "disarm":
        return DisARM(num_samples)
    if name == "arms":
        return ARMS(num_samples)
    if name == "double_cv":
        return DoubleCV(num_samples)
    if name == "rodeo":
        return RODEO(num_samples, width=control_width, key=key if key is not None else jax.random.key(0))
    if name == "rodeo_taylor":
        return RODEO(num_samples, control="taylor")
    raise ConfigError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
