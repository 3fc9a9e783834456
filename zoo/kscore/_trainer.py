"""`KernelScoreFit`: how a `KernelScore` is trained: fitted, not by gradient descent."""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray, PyTree

from .._errors import DataError
from .._trainer import AbstractTrainer
from ._objective import select


class KernelScoreFit(AbstractTrainer):
    """Fit a `KernelScore` (no gradient descent): PCA if configured, then the estimator on
    ``num_samples`` points, choosing the ``grid_*`` hyperparameters by the held-out
    score-matching objective on ``num_valid`` other points. The train config (a
    `zoo.TrainConfig` or None) and the driver's options are accepted and unused."""

    def train(
        self, model: Any, data: PyTree[np.ndarray], config: Any, *, key: PRNGKeyArray, **kwargs: Any
    ) -> Any:
        from .._train import TrainResult, hardware

        del config, kwargs
        cfg = model.config
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
        fitted = type(model)(cfg, fitted=sel.fitted, pca=pca)
        history = [g | {"valid_sm_objective": o} for g, o in zip(grid, sel.objectives)]
        info = {
            "steps": 0, "fit_points": m, "valid_points": int(n_valid), "selected": grid[sel.index],
            "bandwidth": float(sel.fitted.bandwidth), "hardware": hardware(), "wall_time_s": time.time() - t0,
        }
        return TrainResult(model=fitted, ema=None, state=None, step=0, history=history, info=info)
