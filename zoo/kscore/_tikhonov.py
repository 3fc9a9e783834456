"""Tikhonov regularisation: the kernel exponential family estimator (KEF) and its truncated form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy as jsp

from .._errors import ConfigError
from ._base import AbstractScoreEstimator
from ._fitted import KernelExpansion
from ._kernels import AbstractKernel, CurlFreeIMQ


DIRECT_MAX = 3000  # "auto" uses a dense Cholesky solve up to this many unknowns, CG above


class Tikhonov(AbstractScoreEstimator):
    """Tikhonov-regularised score: ``(L + lam) s = -zeta``, ``L s = (1/M) sum_m K(., x_m) s(x_m)``.

    Solution: ``s(x) = K(x, X) c - zeta(x) / lam`` with ``c = (K + M lam I)^{-1} zeta(X) / lam``.

    * `solver`: ``"direct"`` (Cholesky of the dense Gram: (M, M) for diagonal kernels,
      (M d, M d) for curl-free), ``"cg"`` (matrix-free conjugate gradients, O(M^2 d) per
      iteration, never a dense curl-free Gram), or ``"auto"`` (direct up to 3000 unknowns).
    * `truncated=True` (Nystrom KEF): ``s(x) = -K(x, Z) c`` with
      ``c = (K_ZX K_XZ / M + lam K_ZZ + jitter)^{-1} zeta(Z)`` on ``Z`` = the first
      `num_inducing` samples (default all). Unlike kscore's ``truncated_tikhonov`` branch,
      the right-hand side is *not* divided by lam (kscore's output is 1/lam times too large);
      with ``Z = X`` its in-sample values equal the untruncated ones. Direct solver only.
    """

    kernel: AbstractKernel = CurlFreeIMQ()
    lam: float = 1e-4
    solver: str = "auto"
    cg_tol: float = 1e-6
    cg_maxiter: int | None = None
    truncated: bool = False
    num_inducing: int | None = None

    def __check_init__(self):
        if self.solver not in ("auto", "direct", "cg"):
            raise ConfigError(f"solver must be 'auto', 'direct' or 'cg', not {self.solver!r}")
        if self.lam <= 0:
            raise ConfigError(f"lam must be > 0, got {self.lam}")
        if self.num_inducing is not None and not self.truncated:
            raise ConfigError("num_inducing needs truncated=True (Nystrom KEF)")

    def fit(self, samples):
        x = samples
        m, d = x.shape
        sigma = self.kernel.select_bandwidth(x)
        lam = jnp.asarray(self.lam, x.dtype)
        if self.truncated:
            return self._fit_truncated(x, sigma, lam)
        zeta = self.kernel.zeta(x, x, sigma)
        p = m * d if self.kernel.curl_free else m
        solver = self.solver if self.solver != "auto" else ("direct" if p <= DIRECT_MAX else "cg")
        if solver == "direct":
            a = self.kernel.dense(x, x, sigma) + m * lam * jnp.eye(p, dtype=x.dtype)
            rhs = zeta.reshape(-1, 1) if self.kernel.curl_free else zeta
            c = jsp.linalg.cho_solve(jsp.linalg.cho_factor(a), rhs / lam).reshape(m, d)
        else:
            op = self.kernel.operator(x, x, sigma)
            maxiter = 10 * m * d if self.cg_maxiter is None else self.cg_maxiter
            c = _cg(lambda v: op.mv(v) + m * lam * v, zeta / lam, self.cg_tol, maxiter)
        return KernelExpansion(self.kernel, x, c, -1.0 / lam, sigma)

    def _fit_truncated(self, x, sigma, lam):
        m, d = x.shape
        n = m if self.num_inducing is None else min(self.num_inducing, m)
        z = x[:n]
        k_zx = self.kernel.dense(z, x, sigma)
        k_zz = k_zx[:, : n * d] if self.kernel.curl_free else k_zx[:, :n]
        zeta = self.kernel.zeta(z, x, sigma)
        rhs = zeta.reshape(-1, 1) if self.kernel.curl_free else zeta
        a = k_zx @ k_zx.T / m + lam * k_zz
        jitter = 10 * jnp.finfo(x.dtype).eps * jnp.max(jnp.diag(a)) * a.shape[0]
        a = a + jitter * jnp.eye(a.shape[0], dtype=x.dtype)
        c = jnp.linalg.solve(a, rhs)
        return KernelExpansion(self.kernel, z, -c.reshape(n, d), jnp.zeros((), x.dtype), sigma)


def _cg(mv, b, tol: float, maxiter: int):
    """Conjugate gradients for ``mv(x) = b`` from ``x = 0``, stopping when ``||r|| <= tol ||b||``.

    A plain `lax.while_loop` (not `jax.scipy.sparse.linalg.cg`: with jax/jaxlib 0.10.2 on CPU its
    jitted result came back NaN or garbage, depending on the compiled program, in the benchmark)."""
    bb = jnp.vdot(b, b)
    stop = (tol**2) * bb

    def cond(state):
        i, _, _, _, rr = state
        return (i < maxiter) & (rr > stop)

    def body(state):
        i, x, r, p, rr = state
        ap = mv(p)
        alpha = rr / jnp.vdot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = jnp.vdot(r, r)
        p = r + (rr_new / rr) * p
        return i + 1, x, r, p, rr_new

    _, x, _, _, _ = jax.lax.while_loop(cond, body, (0, jnp.zeros_like(b), b, b, bb))
    return x
