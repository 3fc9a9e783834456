"""Nonparametric score estimators: SSGE and the kernel score estimators (kscore), as a zoo family.

Estimators (``fit(samples) -> fitted``, ``fitted(x) -> grad log q(x)``):
`SSGE`, `SpectralCutoff`, `Tikhonov`, `Landweber`, `NuMethod`, `Stein`; kernels
`DiagonalGaussian`, `DiagonalIMQ`, `CurlFreeGaussian`, `CurlFreeIMQ`.

    import jax, zoo.kscore as ks
    x = jax.random.normal(jax.random.key(0), (1000, 2))       # samples of q
    fitted = ks.fit(ks.SSGE(threshold=0.99), x)                # an eqx.Module
    s = jax.vmap(fitted)(x_new)                                # ~ grad log q = -x_new
    best = ks.select([ks.NuMethod(lam=l) for l in (1e-4, 1e-3, 1e-2)], x, key=key)  # held-out score matching

The family model `KernelScore` (config `KernelScoreConfig`) wraps a fitted estimator (optionally
in a PCA basis) as a zoo checkpoint: `zoo.train` fits it, `zoo.sample` runs Langevin dynamics
with the estimated score, `zoo.evaluate` reports the score error / held-out objective.
`entropy_surrogate` turns an estimator into entropy gradients of an implicit sampler.
"""

from .._registry import ModelEntry, Preset, register_model, register_preset  # noqa: E402
from .._train import TrainConfig  # noqa: E402
from ._bandwidth import median_heuristic as median_heuristic, sq_distances as sq_distances
from ._base import AbstractScoreEstimator as AbstractScoreEstimator, fit as fit
from ._config import KernelScoreConfig as KernelScoreConfig
from ._entropy import entropy_surrogate as entropy_surrogate
from ._factory import ESTIMATORS as ESTIMATORS, make_score_estimator as make_score_estimator
from ._fitted import (
    AbstractFittedScore as AbstractFittedScore,
    KernelExpansion as KernelExpansion,
    SteinFitted as SteinFitted,
)
from ._kernels import (
    AbstractCurlFreeKernel as AbstractCurlFreeKernel,
    AbstractDiagonalKernel as AbstractDiagonalKernel,
    AbstractKernel as AbstractKernel,
    CurlFreeGaussian as CurlFreeGaussian,
    CurlFreeIMQ as CurlFreeIMQ,
    DiagonalGaussian as DiagonalGaussian,
    DiagonalIMQ as DiagonalIMQ,
    make_kernel as make_kernel,
)
from ._landweber import Landweber as Landweber
from ._model import KernelScore as KernelScore
from ._nu_method import NuMethod as NuMethod
from ._objective import (
    Selection as Selection,
    score_error as score_error,
    score_matching_objective as score_matching_objective,
    select as select,
)
from ._spectral_cutoff import SpectralCutoff as SpectralCutoff
from ._ssge import SSGE as SSGE
from ._stein import Stein as Stein
from ._targets import GaussianMixture as GaussianMixture, gmm8 as gmm8, standard_gaussian as standard_gaussian
from ._tikhonov import Tikhonov as Tikhonov
from ._trainer import KernelScoreFit as KernelScoreFit


register_preset(
    Preset(
        name="kscore/ssge-toy",
        config=KernelScoreConfig(
            estimator="ssge", kernel="gaussian", num_samples=1000, dim=2, dataset="toy:gmm8", max_eigen=128,
            grid_bandwidth_scale=(0.1, 0.2, 0.35), threshold=0.999,
            langevin_steps=1000, langevin_step_size=5e-3, init_scale=1.0,
        ),
        train=TrainConfig(steps=0),
        dataset="toy:gmm8",
        summary="SSGE (RBF kernel) fitted on 1000 points of 8 Gaussians; bandwidth chosen by held-out "
                "score matching; Langevin sampling with the estimated score",
    )
)
register_preset(
    Preset(
        name="kscore/ssge-mnist-pca16",
        config=KernelScoreConfig(
            estimator="ssge", kernel="gaussian", num_samples=1500, dim=16, data_dim=784, image_shape=(28, 28, 1),
            dataset="mnist", max_eigen=128, grid_bandwidth_scale=(0.5, 1.0, 2.0), threshold=0.999,
            langevin_steps=1000, langevin_step_size=0.01,
        ),
        train=TrainConfig(steps=0),
        dataset="mnist",
        summary="SSGE fitted on 1500 MNIST digits in their top-16 PCA coordinates (basis in the checkpoint)",
    )
)
register_model(
    ModelEntry(
        name="ssge-toy", family="kscore", dataset="toy:gmm8",
        summary="SSGE score estimate of the 8-Gaussians toy set (exact score known: error on the card)",
        hub_repo="stein-zoo/ssge-toy", preset="kscore/ssge-toy",
    )
)
register_model(
    ModelEntry(
        name="ssge-mnist-pca16", family="kscore", dataset="mnist",
        summary="SSGE score estimate of MNIST in 16 PCA dimensions, with Langevin samples",
        hub_repo="stein-zoo/ssge-mnist-pca16", preset="kscore/ssge-mnist-pca16",
    )
)
