"""Kernels for kernel Stein discrepancies: the IMQ kernel, and the RBF kernel of `zoo.kscore`.

Both are radial kernels ``k(x, y) = psi(||x - y||^2)`` in the `zoo.kscore.AbstractDiagonalKernel`
form (a profile ``psi`` and its derivatives, a bandwidth that is given or the median heuristic), so
every kernel of the zoo serves KSD, and `IMQ` serves the kscore estimators too.
"""

from __future__ import annotations

from ..kscore import AbstractDiagonalKernel, DiagonalGaussian


#: The RBF kernel ``exp(-||x - y||^2 / (2 h^2))``: `zoo.kscore.DiagonalGaussian`, with ``bandwidth=h``
#: given or ``None`` for the median heuristic (times ``bandwidth_scale``).
RBF = DiagonalGaussian


class IMQ(AbstractDiagonalKernel):
    """The inverse multiquadric ``k(x, y) = (c^2 + ||x - y||^2)^beta`` (Gorham & Mackey 2017).

    With ``beta`` in (-1, 0) its KSD detects non-convergence (it is "convergence-determining" for
    distantly dissipative targets), which the RBF's does not in dimension 3 and up; ``c = 1,
    beta = -1/2`` (the default) is their recommended choice. ``bandwidth`` is ``c`` (None: the median
    heuristic times ``bandwidth_scale``). At ``beta = -1/2, c = 1`` it equals
    `zoo.kscore.DiagonalIMQ` with bandwidth 1.
    """

    bandwidth: float | None = 1.0
    beta: float = -0.5
    bandwidth_scale: float = 1.0

    def __check_init__(self):
        if not self.beta < 0:
            raise ValueError(f"IMQ needs beta < 0 (Gorham & Mackey: -1 < beta < 0), got {self.beta}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"IMQ bandwidth c must be > 0 or None (median heuristic), got {self.bandwidth}")

    def profile(self, s, sigma):
        b = self.beta
        t = sigma * sigma + s
        psi = t**b
        d1 = b * psi / t
        d2 = (b - 1) * d1 / t
        d3 = (b - 2) * d2 / t
        return psi, d1, d2, d3
