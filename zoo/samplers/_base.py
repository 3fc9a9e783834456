"""The sampler interface (the Diffrax solver pattern).

A sampler is a small immutable object holding its hyperparameters. It never loops:
`init` builds its per-chain state and `step` advances one chain by one transition.
The target (a log-density, a score function, a model...) is passed to both, never
stored, so one sampler object serves every family. `zoo.samplers.run` owns the loop.
"""

from __future__ import annotations

import abc
from typing import Any, Generic, TypeVar

import equinox as eqx
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._registry import Registry


_State = TypeVar("_State")


class AbstractSampler(eqx.Module, Generic[_State]):
    """One Markov transition kernel, for a single chain (vmap for many)."""

    @abc.abstractmethod
    def init(self, target: Any, x: PyTree[Array]) -> _State:
        """Per-chain sampler state at position `x` (e.g. a cached gradient)."""

    @abc.abstractmethod
    def step(
        self, target: Any, x: PyTree[Array], state: _State, *, key: PRNGKeyArray
    ) -> tuple[PyTree[Array], _State, dict[str, Array]]:
        """One transition: ``(new_x, new_state, info)``; `info` holds scalars such
        as ``accept_prob`` that the driver averages over the chain."""


#: Sampler classes by name, for configs and command lines (``SAMPLERS.get("gwg")()``);
#: each sampler class registers itself with ``@SAMPLERS.register(name)``.
SAMPLERS: Registry[type[AbstractSampler]] = Registry("sampler")
