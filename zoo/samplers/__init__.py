"""Markov chain samplers shared by every family: objects with `init`/`step`, one driver."""

from ._base import AbstractSampler as AbstractSampler
from ._driver import ChainResult as ChainResult, run as run
from ._langevin import Langevin as Langevin
