"""The nu-method: accelerated Landweber iteration (Engl, Hanke & Neubauer 1996, Sec. 6.3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._base import AbstractScoreEstimator
from ._fitted import KernelExpansion
from ._iterative import check_lam_iternum, step_size
from ._kernels import AbstractKernel, CurlFreeIMQ


class NuMethod(AbstractScoreEstimator):
    """nu-method iterates for ``eta L s = -eta zeta`` in the representation ``s = K(., X) c + a zeta``.

    ``s_1 = -eta w_1 zeta``, ``w_1 = (4 nu + 2) / (4 nu + 1)``; for ``t >= 2``
    ``s_t = (1 + u_t) s_{t-1} - u_t s_{t-2} - eta w_t (L s_{t-1} + zeta)`` with kscore's
    (= the textbook) ``u_t, w_t``. `iternum` steps, or ``floor(1 / sqrt(eta lam)) + 1``.

    The operator is normalised by ``eta = 1 / lambda_up >= 1 / lambda_max(K / M)`` (default; the method
    needs ``||eta K / M|| <= 1``), which kscore omits (eta = 1), so its iteration diverges
    for kernels with ``lambda_max(K / M) > 1`` (e.g. curl-free kernels with a small bandwidth).
    """

    kernel: AbstractKernel = CurlFreeIMQ()
    lam: float | None = None
    iternum: int | None = None
    nu: float = 1.0
    stepsize: float | None = None

    def __check_init__(self):
        check_lam_iternum("NuMethod", self.lam, self.iternum)

    def fit(self, samples):
        x = samples
        m = x.shape[0]
        dt = x.dtype
        sigma = self.kernel.select_bandwidth(x)
        op = self.kernel.operator(x, x, sigma)
        zeta = self.kernel.zeta(x, x, sigma)
        eta = step_size(op, m, x, self.stepsize)
        if self.iternum is not None:
            t_max = jnp.asarray(self.iternum)
        else:
            t_max = jnp.floor(1.0 / jnp.sqrt(eta * self.lam)).astype(jnp.int32) + 1
        nu = self.nu

        def body(t, state):
            c1, a1, c0, a0 = state
            t = t.astype(dt)
            u = (t - 1) * (2 * t - 3) * (2 * t + 2 * nu - 1) / (
                (t + 2 * nu - 1) * (2 * t + 4 * nu - 1) * (2 * t + 2 * nu - 3)
            )
            w = 4 * (2 * t + 2 * nu - 1) * (t + nu - 1) / ((t + 2 * nu - 1) * (2 * t + 4 * nu - 1))
            c2 = (1 + u) * c1 - (eta * w / m) * (a1 * zeta + op.mv(c1)) - u * c0
            a2 = (1 + u) * a1 - u * a0 - eta * w
            return c2, a2, c1, a1

        zero = jnp.zeros_like(x)
        a_1 = -eta * (4 * nu + 2) / (4 * nu + 1)
        c, a, _, _ = jax.lax.fori_loop(2, t_max + 1, body, (zero, a_1, zero, jnp.zeros((), dt)))
        return KernelExpansion(self.kernel, x, c, a, sigma)
