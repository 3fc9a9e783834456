"""Fitted score estimators: `eqx.Module`s mapping a point to an estimate of grad log q."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._kernels import AbstractKernel


class AbstractFittedScore(eqx.Module):
    """A fitted estimator: ``fitted(x)`` is the score estimate at one point ``x`` (d,).

    Jit- and vmap-able and defined out of sample; `batch` evaluates (n, d) points at once.
    """

    @abc.abstractmethod
    def batch(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """Score estimates at the rows of `x`."""

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.batch(x[None, :])[0]


class KernelExpansion(AbstractFittedScore):
    """``s(x) = sum_m K(x, x_m) c_m + a * zeta(x)``, ``zeta(x) = (1/M) sum_m div_y K(x, x_m)``.

    Every estimator except Stein predicts in this form: the spectral ones (SSGE, spectral
    cut-off) and truncated Tikhonov with ``a = 0``, Tikhonov with ``a = -1/lambda``,
    Landweber and the nu-method with the ``a`` their iteration produced. `centers`,
    `coef`, `zeta_weight` and `bandwidth` are the array leaves (what a checkpoint stores).
    """

    kernel: AbstractKernel
    centers: Float[Array, "m d"]
    coef: Float[Array, "m d"]
    zeta_weight: Float[Array, ""]
    bandwidth: Float[Array, ""]

    def batch(self, x):
        x = jnp.asarray(x, self.centers.dtype)
        out = self.kernel.apply(x, self.centers, self.coef, self.bandwidth)
        zeta = self.kernel.zeta(x, self.centers, self.bandwidth)
        return out + self.zeta_weight * zeta


class SteinFitted(AbstractFittedScore):
    """The Stein gradient estimator (Li & Turner 2018) with its out-of-sample extension.

    In sample, ``g(X) = -(K + eta I)^{-1} sum_n grad_y k(x_m, y)|_{y = x_n}``. At a new point
    ``x`` the estimate is the last row of the same estimator (same ridge ``eta``) fitted on the
    M + 1 points ``X u {x}`` (Li & Turner, Sec. 3.4), in closed form by a Schur complement:
    ``g(x) = -[M zeta(x) + k_xX g(X) - k_xX Kinv D(x)] / (k(x, x) + eta - k_xX Kinv k_Xx)``,
    ``D(x)_m = grad_y k(x_m, y)|_{y = x}``. Cost O(M^2) per query.
    """

    kernel: AbstractKernel
    centers: Float[Array, "m d"]
    g_in: Float[Array, "m d"]  # in-sample estimates
    kinv: Float[Array, "m m"]  # (K + eta I)^{-1}
    ridge: Float[Array, ""]
    bandwidth: Float[Array, ""]

    def batch(self, x):
        x = jnp.asarray(x, self.centers.dtype)
        m = self.centers.shape[0]
        sigma = self.bandwidth
        k = self.kernel.dense(x, self.centers, sigma)  # (n, m)
        kk = k @ self.kinv  # (n, m)
        # D(x)_m = grad_y k(x_m, y)|_{y=x} = f(s) (x_m - x); sum_m kk_nm D_nm without (n, m, d):
        f = self.kernel._div_factor(_sq(x, self.centers), sigma, x.shape[-1])  # (n, m)
        w = kk * f
        kinv_d = w @ self.centers - x * jnp.sum(w, axis=1, keepdims=True)
        mzeta = m * self.kernel.zeta(x, self.centers, sigma)
        schur = self.kernel.diag_value(sigma) + self.ridge - jnp.sum(kk * k, axis=1, keepdims=True)
        return -(mzeta + k @ self.g_in - kinv_d) / schur


def _sq(x, y):
    from ._bandwidth import sq_distances

    return sq_distances(x, y)


def divergence(fn, x: Float[Array, " d"]) -> Float[Array, ""]:
    """``trace(d fn / d x)`` at one point, by forward-mode Jacobian."""
    return jnp.trace(jax.jacfwd(fn)(x))
