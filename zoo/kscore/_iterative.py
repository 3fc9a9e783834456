"""Shared pieces of the iterative (Landweber, nu-method) estimators."""

from __future__ import annotations

import jax.numpy as jnp

from .._errors import ConfigError
from ._linalg import max_eigenvalue


def check_lam_iternum(name: str, lam: float | None, iternum: int | None) -> None:
    if (lam is None) == (iternum is None):
        raise ConfigError(f"{name} needs exactly one of lam and iternum")
    if lam is not None and lam <= 0:
        raise ConfigError(f"{name}: lam must be > 0, got {lam}")
    if iternum is not None and iternum < 1:
        raise ConfigError(f"{name}: iternum must be >= 1, got {iternum}")


def step_size(op, m: int, x, stepsize: float | None):
    """The step on the normalised operator ``L = K / M``: given, or ``1 / lambda_up`` with
    ``lambda_up = min(Gershgorin bound, 1.5 * power-iteration estimate) >= lambda_max(K / M)``
    (the power estimate approaches lambda_max from below; 1.5 covers its shortfall, the
    Gershgorin bound caps it), so ``eta * L`` has its spectrum in [0, 1]."""
    if stepsize is not None:
        return jnp.asarray(stepsize, x.dtype)
    power = max_eigenvalue(lambda v: op.mv(v) / m, x.shape, x.dtype)
    return 1.0 / jnp.minimum(op.row_bound() / m, 1.5 * power)
