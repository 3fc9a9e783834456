"""Kernel score estimators by name, for `KernelScoreConfig`: one table filled by a decorator.

Each entry is a builder ``(kernel, *, lam, n_eigen, threshold, iternum, max_eigen,
eigensolver) -> AbstractScoreEstimator`` that takes the hyperparameters it uses (``None``:
the estimator's default) and ignores the rest; register another with
``@zoo.kscore.ESTIMATORS.register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._registry import Registry
from ._base import AbstractScoreEstimator
from ._kernels import AbstractKernel
from ._landweber import Landweber
from ._nu_method import NuMethod
from ._spectral_cutoff import SpectralCutoff
from ._ssge import SSGE
from ._stein import Stein
from ._tikhonov import Tikhonov


#: Kernel score estimator builders by name (``"ssge"``, ``"nu"``, ...); iterating yields the names.
ESTIMATORS: Registry[Callable[..., AbstractScoreEstimator]] = Registry("kernel score estimator")


@ESTIMATORS.register("ssge")
def _ssge(kernel: AbstractKernel, *, n_eigen, threshold, max_eigen, eigensolver, **_: Any) -> SSGE:
    return SSGE(kernel, n_eigen=n_eigen, threshold=threshold, max_eigen=max_eigen, eigensolver=eigensolver)


@ESTIMATORS.register("spectral_cutoff")
def _spectral_cutoff(
    kernel: AbstractKernel, *, n_eigen, threshold, lam, max_eigen, eigensolver, **_: Any
) -> SpectralCutoff:
    return SpectralCutoff(kernel, n_eigen=n_eigen, threshold=threshold, lam=lam, max_eigen=max_eigen,
                          eigensolver=eigensolver)


@ESTIMATORS.register("tikhonov")
def _tikhonov(kernel: AbstractKernel, *, lam, **_: Any) -> Tikhonov:
    return Tikhonov(kernel, lam=1e-4 if lam is None else lam)


@ESTIMATORS.register("landweber")
def _landweber(kernel: AbstractKernel, *, lam, iternum, **_: Any) -> Landweber:
    return Landweber(kernel, lam=lam, iternum=iternum)


@ESTIMATORS.register("nu")
def _nu(kernel: AbstractKernel, *, lam, iternum, **_: Any) -> NuMethod:
    return NuMethod(kernel, lam=lam, iternum=iternum)


@ESTIMATORS.register("stein")
def _stein(kernel: AbstractKernel, *, lam, **_: Any) -> Stein:
    return Stein(kernel, lam=1e-3 if lam is None else lam)


def make_score_estimator(
    name: str,
    kernel: AbstractKernel,
    *,
    lam: float | None = None,
    n_eigen: int | None = None,
    threshold: float | None = None,
    iternum: int | None = None,
    max_eigen: int | None = None,
    eigensolver: str = "auto",
) -> AbstractScoreEstimator:
    """The kernel score estimator called `name` (one of `ESTIMATORS`) with `kernel` and the
    hyperparameters it uses."""
    return ESTIMATORS.get(name)(kernel, lam=lam, n_eigen=n_eigen, threshold=threshold, iternum=iternum,
                                max_eigen=max_eigen, eigensolver=eigensolver)
