"""The Stein gradient estimator (Li & Turner, ICLR 2018)."""

from __future__ import annotations

import jax.numpy as jnp
import jax.scipy as jsp

from .._errors import ConfigError
from ._base import AbstractScoreEstimator
from ._fitted import SteinFitted
from ._kernels import AbstractKernel, DiagonalIMQ


class Stein(AbstractScoreEstimator):
    """``g(X) = -(K + eta I)^{-1} sum_n grad_y k(x_m, y)|_{y = x_n}`` with ridge ``eta = M lam``.

    The ridge is ``M lam`` so that `lam` regularises ``K / M`` like Tikhonov's (the SSGE repo
    uses an absolute ``eta``; kscore uses ``M^2 lam``, which shrinks every estimate to ~0 at
    large M). Out of sample: see `SteinFitted`. Diagonal kernels only.
    """

    kernel: AbstractKernel = DiagonalIMQ()
    lam: float = 1e-3

    def __check_init__(self):
        if self.kernel.curl_free:
            raise ConfigError("Stein needs a diagonal (scalar) kernel, e.g. DiagonalIMQ()")
        if self.lam <= 0:
            raise ConfigError(f"lam must be > 0, got {self.lam}")

    def fit(self, samples):
        x = samples
        m = x.shape[0]
        sigma = self.kernel.select_bandwidth(x)
        ridge = jnp.asarray(m * self.lam, x.dtype)
        a = self.kernel.dense(x, x, sigma) + ridge * jnp.eye(m, dtype=x.dtype)
        chol = jsp.linalg.cho_factor(a)
        kinv = jsp.linalg.cho_solve(chol, jnp.eye(m, dtype=x.dtype))
        kinv = 0.5 * (kinv + kinv.T)
        g = -m * (kinv @ self.kernel.zeta(x, x, sigma))
        return SteinFitted(self.kernel, x, g, kinv, ridge, sigma)
