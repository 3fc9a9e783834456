"""`KernelScoreConfig`: which kernel score estimator to fit, on what, and its Langevin sampler."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from .._config import AbstractConfig
from .._errors import ConfigError
from ._base import AbstractScoreEstimator
from ._factory import ESTIMATORS, make_score_estimator
from ._kernels import make_kernel


@dataclasses.dataclass(frozen=True)
class KernelScoreConfig(AbstractConfig):
    """A kernel score estimator fitted on `num_samples` points of dimension `dim`.

    `data_dim` set: the data (flattened to `data_dim` features, e.g. 784 for MNIST) are
    projected onto their top-`dim` principal components first; the PCA mean and basis are
    part of the checkpoint. The hyperparameters (`lam`, `n_eigen`, `threshold`, `iternum`,
    `bandwidth_scale`) are the defaults; a non-empty ``grid_*`` field makes `train` choose
    that hyperparameter by the held-out score-matching objective.
    """

    family: ClassVar[str] = "kscore"
    type_name: ClassVar[str] = "kscore.KernelScoreConfig"

    estimator: str = "ssge"
    kernel: str = "gaussian"  # "gaussian" | "imq"
    curl_free: bool = False
    num_samples: int = 1000
    dim: int = 2
    data_dim: int | None = None
    image_shape: tuple[int, ...] = ()
    dtype: str = "float32"
    lam: float | None = None
    n_eigen: int | None = None
    threshold: float | None = None
    iternum: int | None = None
    bandwidth: float | None = None
    bandwidth_scale: float = 1.0
    max_eigen: int | None = None
    eigensolver: str = "auto"  # "auto" | "randomized" | "eigh" (SSGE / spectral cut-off)
    grid_lam: tuple[float, ...] = ()
    grid_n_eigen: tuple[int, ...] = ()
    grid_threshold: tuple[float, ...] = ()
    grid_bandwidth_scale: tuple[float, ...] = ()
    num_valid: int = 1000  # held-out points for selection and evaluation
    dataset: str = ""  # names the analytic target for `evaluate` (toy:gmm8)
    langevin_steps: int = 1000
    langevin_step_size: float = 1e-3
    init_scale: float = 1.0  # Langevin starts at N(mean, (init_scale * std)^2) of the fitted samples

    def __post_init__(self):
        ESTIMATORS.get(self.estimator)  # a ConfigError naming the estimators for an unknown one
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be 'float32' or 'float64', not {self.dtype!r}")
        if self.eigensolver not in ("auto", "randomized", "eigh"):
            raise ConfigError(f"eigensolver must be 'auto', 'randomized' or 'eigh', not {self.eigensolver!r}")
        if self.data_dim is not None and self.dim > self.data_dim:
            raise ConfigError(f"dim={self.dim} cannot exceed data_dim={self.data_dim}")

    @property
    def jnp_dtype(self):
        if self.dtype == "float64" and jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
            raise ConfigError("dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1 (or jax.config.update)")
        return jnp.dtype(self.dtype)

    def make_estimator(self, **overrides: Any) -> AbstractScoreEstimator:
        """The estimator these hyperparameters (with `overrides`) describe."""
        h = {
            "lam": self.lam, "n_eigen": self.n_eigen, "threshold": self.threshold, "iternum": self.iternum,
            "bandwidth_scale": self.bandwidth_scale,
        } | overrides
        kernel = make_kernel(self.kernel, curl_free=self.curl_free, bandwidth=self.bandwidth,
                             bandwidth_scale=h["bandwidth_scale"])
        return make_score_estimator(self.estimator, kernel, lam=h["lam"], n_eigen=h["n_eigen"],
                                    threshold=h["threshold"], iternum=h["iternum"], max_eigen=self.max_eigen,
                                    eigensolver=self.eigensolver)

    def candidates(self) -> list[dict[str, Any]]:
        """The hyperparameter grid (a list of overrides; ``[{}]`` without a grid)."""
        axes = {
            "lam": self.grid_lam, "n_eigen": self.grid_n_eigen, "threshold": self.grid_threshold,
            "bandwidth_scale": self.grid_bandwidth_scale,
        }
        axes = {k: v for k, v in axes.items() if v}
        return [dict(zip(axes, vals)) for vals in itertools.product(*axes.values())] or [{}]
