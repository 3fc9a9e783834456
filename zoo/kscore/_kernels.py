"""Kernels: Gaussian and IMQ radial profiles, as diagonal (scalar) or curl-free matrix-valued kernels.

A radial profile ``psi(s)`` of the squared distance ``s = ||x - y||^2`` with bandwidth
``sigma`` gives

* the **diagonal** kernel ``K(x, y) = psi(s) I_d``;
* the **curl-free** kernel ``K(x, y) = -Hess_x psi(||x - y||^2) = -2 psi'(s) I_d - 4 psi''(s) r r^T``,
  ``r = x - y``, whose RKHS holds gradient fields only.

Every kernel offers, for sample sets ``x`` (m, d) and ``y`` (n, d) and coefficients ``c`` (n, d):
`operator` (the Gram matrix as a linear map on (n, d) coefficient arrays, memory O(m n),
never an (m, n, d) tensor), `zeta` (``(1/n) sum_n div_y K(x, y_n)``, the quantity all
kernel score estimators regress), `dense` (the flattened Gram matrix, for direct solvers
and eigendecompositions: (m, n) for diagonal kernels, acting on the columns of ``c``;
(m d, n d) for curl-free ones, acting on ``c.reshape(-1)``) and `diag_value` (``K(x, x)``
as a scalar times ``I``).

The bandwidth is an argument of every method: an estimator fixes it at fit time (given,
or the median heuristic times `bandwidth_scale`) and stores it in the fitted estimator.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._bandwidth import median_heuristic, sq_distances


Profile = tuple[Array, Array, Array, Array]


class AbstractKernel(eqx.Module):
    """A translation-invariant kernel from a radial profile; see the module docstring.

    Fields: ``bandwidth`` (a fixed sigma, or None for the median heuristic) and
    ``bandwidth_scale`` (multiplies the median heuristic, as kscore's tests use 1.5x).
    """

    bandwidth: eqx.AbstractVar[float | None]
    bandwidth_scale: eqx.AbstractVar[float]

    @abc.abstractmethod
    def profile(self, s: Array, sigma: Array) -> Profile:
        """``(psi, psi', psi'', psi''')`` at squared distances `s`."""

    def select_bandwidth(self, samples: Float[Array, "m d"]) -> Float[Array, ""]:
        if self.bandwidth is not None:
            return jnp.asarray(self.bandwidth, samples.dtype)
        return jnp.asarray(self.bandwidth_scale, samples.dtype) * median_heuristic(samples)

    @property
    @abc.abstractmethod
    def curl_free(self) -> bool: ...

    @abc.abstractmethod
    def _div_factor(self, s: Array, sigma: Array, d: int) -> Array:
        """``f(s)`` with ``div_y K(x, y) = f(s) (x - y)``."""

    def zeta(self, x: Float[Array, "m d"], y: Float[Array, "n d"], sigma: Array) -> Float[Array, "m d"]:
        """``(1/n) sum_n div_y K(x_m, y)|_{y = y_n}`` (row-wise divergence), O(m n) memory."""
        f = self._div_factor(sq_distances(x, y), sigma, x.shape[-1])
        n = y.shape[0]
        return (x * jnp.sum(f, axis=1, keepdims=True) - f @ y) / n

    @abc.abstractmethod
    def operator(self, x: Float[Array, "m d"], y: Float[Array, "n d"], sigma: Array) -> GramOperator:
        """``c -> K(x, y) c`` for coefficient arrays ``c`` (n, d)."""

    def apply(self, x: Float[Array, "m d"], y: Float[Array, "n d"], c: Float[Array, "n d"], sigma: Array):
        """``sum_n K(x_m, y_n) c_n``, shape (m, d)."""
        return self.operator(x, y, sigma).mv(c)

    @abc.abstractmethod
    def dense(self, x: Float[Array, "m d"], y: Float[Array, "n d"], sigma: Array) -> Array:
        """The flattened Gram matrix; see the module docstring."""

    @abc.abstractmethod
    def diag_value(self, sigma: Array) -> Array:
        """``K(x, x) = diag_value * I``."""


class GramOperator(eqx.Module):
    """``K(x, y)`` as a linear map on (n, d) coefficient arrays (precomputed (m, n) factors)."""

    a: Float[Array, "m n"]  # diagonal part: psi (diagonal kernel) or -2 psi' (curl-free)
    b: Float[Array, "m n"] | None  # curl-free only: -4 psi''
    x: Float[Array, "m d"]
    y: Float[Array, "n d"]

    def row_bound(self) -> Float[Array, ""]:
        """``max_m sum_n ||K(x_m, y_n)||_op`` >= the largest eigenvalue (block Gershgorin), using
        ``||a I + b r r^T|| <= |a| + |b| ||r||^2``."""
        rows = jnp.abs(self.a)
        if self.b is not None:
            rows = rows + jnp.abs(self.b) * sq_distances(self.x, self.y)
        return jnp.max(jnp.sum(rows, axis=1))

    def mv(self, c: Float[Array, "n d"]) -> Float[Array, "m d"]:
        out = self.a @ c
        if self.b is not None:
            # sum_n b_mn (r_mn . c_n) r_mn with r_mn = x_m - y_n, by matrix products only.
            w = self.b * (self.x @ c.T - jnp.sum(self.y * c, axis=-1)[None, :])
            out = out + self.x * jnp.sum(w, axis=1, keepdims=True) - w @ self.y
        return out


class AbstractDiagonalKernel(AbstractKernel):
    """``K(x, y) = psi(||x - y||^2) I_d``."""

    @property
    def curl_free(self) -> bool:
        return False

    def _div_factor(self, s, sigma, d):
        del d
        _, d1, _, _ = self.profile(s, sigma)
        return -2.0 * d1

    def operator(self, x, y, sigma):
        psi, _, _, _ = self.profile(sq_distances(x, y), sigma)
        return GramOperator(psi, None, x, y)

    def dense(self, x, y, sigma):
        return self.profile(sq_distances(x, y), sigma)[0]

    def diag_value(self, sigma):
        return self.profile(jnp.zeros((), sigma.dtype), sigma)[0]


class AbstractCurlFreeKernel(AbstractKernel):
    """``K(x, y) = -2 psi'(s) I - 4 psi''(s) r r^T`` (the negative Hessian of ``psi(||x - y||^2)``)."""

    @property
    def curl_free(self) -> bool:
        return True

    def _div_factor(self, s, sigma, d):
        _, _, d2, d3 = self.profile(s, sigma)
        return 4.0 * ((d + 2) * d2 + 2.0 * s * d3)

    def operator(self, x, y, sigma):
        _, d1, d2, _ = self.profile(sq_distances(x, y), sigma)
        return GramOperator(-2.0 * d1, -4.0 * d2, x, y)

    def dense(self, x, y, sigma):
        m, d = x.shape
        n = y.shape[0]
        _, d1, d2, _ = self.profile(sq_distances(x, y), sigma)
        r = x[:, None, :] - y[None, :, :]
        blocks = (-2.0 * d1)[:, :, None, None] * jnp.eye(d, dtype=x.dtype)[None, None] + (
            -4.0 * d2
        )[:, :, None, None] * (r[:, :, :, None] * r[:, :, None, :])
        return blocks.transpose(0, 2, 1, 3).reshape(m * d, n * d)

    def diag_value(self, sigma):
        return -2.0 * self.profile(jnp.zeros((), sigma.dtype), sigma)[1]


def _gaussian(s, sigma) -> Profile:
    v = 1.0 / (2.0 * sigma**2)
    psi = jnp.exp(-s * v)
    return psi, -v * psi, v**2 * psi, -(v**3) * psi


def _imq(s, sigma) -> Profile:
    inv = 1.0 / sigma**2
    u = 1.0 / (1.0 + s * inv)
    psi = jnp.sqrt(u)
    d1 = -0.5 * inv * u * psi
    d2 = -1.5 * inv * u * d1
    d3 = -2.5 * inv * u * d2
    return psi, d1, d2, d3


class DiagonalGaussian(AbstractDiagonalKernel):
    """``exp(-s / (2 sigma^2)) I`` (SSGE's RBF kernel)."""

    bandwidth: float | None = None
    bandwidth_scale: float = 1.0

    def profile(self, s, sigma):
        return _gaussian(s, sigma)


class DiagonalIMQ(AbstractDiagonalKernel):
    """``(1 + s / sigma^2)^(-1/2) I``."""

    bandwidth: float | None = None
    bandwidth_scale: float = 1.0

    def profile(self, s, sigma):
        return _imq(s, sigma)


class CurlFreeGaussian(AbstractCurlFreeKernel):
    """Curl-free kernel from ``psi(s) = exp(-s / (2 sigma^2))``."""

    bandwidth: float | None = None
    bandwidth_scale: float = 1.0

    def profile(self, s, sigma):
        return _gaussian(s, sigma)


class CurlFreeIMQ(AbstractCurlFreeKernel):
    """Curl-free kernel from ``psi(s) = (1 + s / sigma^2)^(-1/2)`` (kscore's default)."""

    bandwidth: float | None = None
    bandwidth_scale: float = 1.0

    def profile(self, s, sigma):
        return _imq(s, sigma)


_KERNELS = {
    ("gaussian", False): DiagonalGaussian,
    ("imq", False): DiagonalIMQ,
    ("gaussian", True): CurlFreeGaussian,
    ("imq", True): CurlFreeIMQ,
}


def make_kernel(
    name: str, *, curl_free: bool = False, bandwidth: float | None = None, bandwidth_scale: float = 1.0
) -> AbstractKernel:
    """A kernel by name: ``"gaussian"`` or ``"imq"``, diagonal or curl-free."""
    from .._errors import ConfigError

    try:
        cls = _KERNELS[(name, bool(curl_free))]
    except KeyError:
        raise ConfigError(f"unknown kernel {name!r}; use 'gaussian' or 'imq'") from None
    return cls(bandwidth=bandwidth, bandwidth_scale=bandwidth_scale)
