"""Spectral cut-off regularisation (Zhou, Shi & Zhu, ICML 2020)."""

from __future__ import annotations

import jax.numpy as jnp

from .._errors import ConfigError
from ._base import AbstractScoreEstimator
from ._fitted import KernelExpansion
from ._kernels import AbstractKernel, DiagonalIMQ
from ._linalg import spectral_filter
from ._ssge import _check_solver


class SpectralCutoff(AbstractScoreEstimator):
    """``s(x) = -K(x, X) c`` with ``c = V_J mu_J^{-2} V_J^T zeta(X) / M``, ``(mu, V) = eig(K / M)``.

    Keep the top `n_eigen` eigenpairs, those with mass fraction below `threshold`, or those
    with ``mu > lam`` (exactly one rule). The coefficient is formed as ``V_J (mu_J^{-2} *
    (V_J^T zeta))``: O(M J) memory, never kscore's (M, M, J) tensor. Works with diagonal
    kernels (eig of the (M, M) Gram) and curl-free ones (eig of the (M d, M d) Gram: small
    M d only). `eigensolver`, `max_eigen` and `power_iters` as in `SSGE` (default: the top
    eigenpairs by randomized subspace iteration with an exact fallback). With the diagonal
    Gaussian kernel this is SSGE.

    Departure: kscore's ``keep_rate`` (a fraction of the eigenvalue *count*, which keeps
    float32 round-off eigenvalues and blows up) is replaced by `n_eigen`, and eigenvalues
    below the numerical rank floor are never inverted.
    """

    kernel: AbstractKernel = DiagonalIMQ()
    n_eigen: int | None = None
    threshold: float | None = None
    lam: float | None = None
    eigensolver: str = "auto"
    max_eigen: int | None = None
    power_iters: int = 4

    def __check_init__(self):
        if sum(v is not None for v in (self.n_eigen, self.threshold, self.lam)) != 1:
            raise ConfigError("SpectralCutoff needs exactly one of n_eigen, threshold, lam")
        _check_solver(self.eigensolver, self.max_eigen, self.n_eigen)

    def fit(self, samples):
        x = samples
        m, d = x.shape
        sigma = self.kernel.select_bandwidth(x)
        gram = self.kernel.dense(x, x, sigma) / m
        zeta = self.kernel.zeta(x, x, sigma)
        rhs = zeta.reshape(-1, 1) if self.kernel.curl_free else zeta
        c, _ = spectral_filter(
            gram, rhs, lambda w: 1.0 / w**2, n_eigen=self.n_eigen, threshold=self.threshold, lam=self.lam,
            total=jnp.trace(gram) if self.threshold is not None else None,
            solver=self.eigensolver, max_eigen=self.max_eigen, power_iters=self.power_iters,
        )
        c = c / m
        return KernelExpansion(self.kernel, x, -c.reshape(m, d), jnp.zeros((), x.dtype), sigma)
