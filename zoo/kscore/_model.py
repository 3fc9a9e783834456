"""The kscore family model: a fitted nonparametric score estimator, optionally in a PCA basis."""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .. import samplers
from .._config import AbstractConfig
from .._errors import ConfigError, DataError
from .._model import AbstractModel
from ._base import AbstractScoreEstimator
from ._fitted import AbstractFittedScore, KernelExpansion, SteinFitted
from ._kernels import make_kernel
from ._landweber import Landweber
from ._nu_method import NuMethod
from ._objective import score_error, score_matching_objective, select
from ._spectral_cutoff import SpectralCutoff
from ._ssge import SSGE
from ._stein import Stein
from ._targets import known_target
from ._tikhonov import Tikhonov


ESTIMATORS = ("ssge", "spectral_cutoff", "tikhonov", "landweber", "nu", "stein")


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
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"estimator must be one of {ESTIMATORS}, not {self.estimator!r}")
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
        e = self.estimator
        if e == "ssge":
            return SSGE(kernel, n_eigen=h["n_eigen"], threshold=h["threshold"], max_eigen=self.max_eigen,
                        eigensolver=self.eigensolver)
        if e == "spectral_cutoff":
            return SpectralCutoff(kernel, n_eigen=h["n_eigen"], threshold=h["threshold"], lam=h["lam"],
                                  max_eigen=self.max_eigen, eigensolver=self.eigensolver)
        if e == "tikhonov":
            return Tikhonov(kernel, lam=1e-4 if h["lam"] is None else h["lam"])
        if e == "landweber":
            return Landweber(kernel, lam=h["lam"], iternum=h["iternum"])
        if e == "nu":
            return NuMethod(kernel, lam=h["lam"], iternum=h["iternum"])
        return Stein(kernel, lam=1e-3 if h["lam"] is None else h["lam"])

    def candidates(self) -> list[dict[str, Any]]:
        """The hyperparameter grid (a list of overrides; ``[{}]`` without a grid)."""
        axes = {
            "lam": self.grid_lam, "n_eigen": self.grid_n_eigen, "threshold": self.grid_threshold,
            "bandwidth_scale": self.grid_bandwidth_scale,
        }
        axes = {k: v for k, v in axes.items() if v}
        return [dict(zip(axes, vals)) for vals in itertools.product(*axes.values())] or [{}]

    def build(self, *, key: PRNGKeyArray) -> KernelScore:
        return KernelScore(self, key=key)


class KernelScore(AbstractModel):
    """``score(z)``: the fitted estimate of ``grad log q`` (in PCA coordinates when `data_dim` is set)."""

    config: KernelScoreConfig = eqx.field(static=True)
    fitted: AbstractFittedScore
    pca_mean: Float[Array, " D"] | None
    pca_basis: Float[Array, "D d"] | None

    def __init__(self, config: KernelScoreConfig, *, key: PRNGKeyArray | None = None,
                 fitted: AbstractFittedScore | None = None, pca: tuple[Array, Array] | None = None):
        del key  # nothing random: the skeleton is zeros until `train` fits it
        self.config = config
        dt = config.jnp_dtype
        m, d = config.num_samples, config.dim
        if fitted is None:
            kernel = config.make_estimator().kernel
            zeros = jnp.zeros((m, d), dt)
            if config.estimator == "stein":
                fitted = SteinFitted(kernel, zeros, zeros, jnp.zeros((m, m), dt), jnp.ones((), dt), jnp.ones((), dt))
            else:
                fitted = KernelExpansion(kernel, zeros, zeros, jnp.zeros((), dt), jnp.ones((), dt))
        self.fitted = fitted
        if config.data_dim is None:
            self.pca_mean = self.pca_basis = None
        elif pca is None:
            self.pca_mean = jnp.zeros((config.data_dim,), dt)
            self.pca_basis = jnp.zeros((config.data_dim, d), dt)
        else:
            self.pca_mean, self.pca_basis = (jnp.asarray(a, dt) for a in pca)

    # --- coordinates -----------------------------------------------------------------
    def project(self, data: Array) -> Float[Array, "n d"]:
        """Data (any trailing shape) to the estimator's coordinates (PCA scores when set)."""
        x = jnp.asarray(data, self.config.jnp_dtype).reshape(len(data), -1)
        if self.pca_basis is None:
            return x
        return (x - self.pca_mean[None, :]) @ self.pca_basis

    def reconstruct(self, z: Float[Array, "n d"]) -> Array:
        if self.pca_basis is None:
            return z
        x = self.pca_mean[None, :] + z @ self.pca_basis.T
        return x.reshape((z.shape[0], *self.config.image_shape)) if self.config.image_shape else x

    def score(self, z: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.fitted(z)

    # --- the family contract ------------------------------------------------------------
    def loss(self, batch, state, *, key):
        del key
        return score_matching_objective(self.fitted, self.project(batch)), (state, {})

    def train(self, data: PyTree[np.ndarray], config: Any = None, *, key: PRNGKeyArray, **kwargs: Any):
        """Fit (no gradient descent): PCA if configured, then the estimator on `num_samples`
        points, choosing the ``grid_*`` hyperparameters by the held-out score-matching
        objective on `num_valid` other points. `config` (a TrainConfig) is accepted and unused."""
        from .._train import TrainResult, hardware

        del config, kwargs
        cfg = self.config
        t0 = time.time()
        x = np.asarray(data, np.float64).reshape(len(data), -1)
        m = cfg.num_samples
        if len(x) < m + 2:
            raise DataError(f"need at least num_samples + 2 = {m + 2} points, got {len(x)}")
        if cfg.data_dim is not None and x.shape[1] != cfg.data_dim:
            raise DataError(f"data have {x.shape[1]} features, config.data_dim is {cfg.data_dim}")
        if cfg.data_dim is None and x.shape[1] != cfg.dim:
            raise DataError(f"data have {x.shape[1]} features, config.dim is {cfg.dim}")
        k_perm, k_sel = jax.random.split(key)
        perm = np.asarray(jax.random.permutation(k_perm, len(x)))
        n_valid = min(cfg.num_valid, len(x) - m)
        fit_x, valid_x = x[perm[:m]], x[perm[m : m + n_valid]]
        pca = None
        if cfg.data_dim is not None:
            mean = fit_x.mean(0)
            _, _, vt = np.linalg.svd(fit_x - mean, full_matrices=False)
            basis = vt[: cfg.dim].T
            pca = (mean, basis)
            fit_x, valid_x = (fit_x - mean) @ basis, (valid_x - mean) @ basis
        dt = cfg.jnp_dtype
        grid = cfg.candidates()
        sel = select([cfg.make_estimator(**g) for g in grid], jnp.asarray(fit_x, dt),
                     valid=jnp.asarray(valid_x, dt), key=k_sel)
        model = KernelScore(cfg, fitted=sel.fitted, pca=pca)
        history = [g | {"valid_sm_objective": o} for g, o in zip(grid, sel.objectives)]
        info = {
            "steps": 0, "fit_points": m, "valid_points": int(n_valid), "selected": grid[sel.index],
            "bandwidth": float(sel.fitted.bandwidth), "hardware": hardware(), "wall_time_s": time.time() - t0,
        }
        return TrainResult(model=model, ema=None, state=None, step=0, history=history, info=info)

    def sample(self, n: int, *, key: PRNGKeyArray) -> Array:
        """Unadjusted Langevin with the estimated score, from a Gaussian matched to the fitted points."""
        k0, k1 = jax.random.split(key)
        centers = self.fitted.centers
        mean, std = jnp.mean(centers, axis=0), jnp.std(centers, axis=0)
        noise = jax.random.normal(k0, (n, self.config.dim), centers.dtype)
        z0 = mean[None, :] + self.config.init_scale * std[None, :] * noise
        sampler = samplers.Langevin(self.config.langevin_step_size)
        result = samplers.run(sampler, self.fitted, z0, num_steps=self.config.langevin_steps, key=k1, batched=True)
        return self.reconstruct(result.final)

    def evaluate(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
        """Held-out score-matching objective (always) and the score error against the exact
        score when `config.dataset` has one (``toy:gmm8``), on up to `num_valid` points of `data`."""
        del key
        z = self.project(np.asarray(data)[: self.config.num_valid])
        out = {"sm_objective": float(eqx.filter_jit(score_matching_objective)(self.fitted, z))}
        target = known_target(self.config.dataset) if self.config.data_dim is None else None
        if target is not None:
            out |= score_error(self.fitted, target.score, z.astype(jnp.float32))
            out["true_sm_objective"] = float(
                eqx.filter_jit(score_matching_objective)(target.score, z.astype(jnp.float32))
            )
        return out

    def to_images(self, samples: Array) -> np.ndarray:
        if self.config.image_shape:
            x = np.asarray(samples, np.float32).reshape((-1, *self.config.image_shape))
            return np.clip(x, 0.0, 1.0)
        from .._images import scatter

        return scatter(np.asarray(samples))[None]
