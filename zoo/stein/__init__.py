"""Stein's-method toolkit: kernel Stein discrepancies, goodness-of-fit tests and sliced score matching.

    import jax, zoo
    from zoo import stein

    x = jax.random.normal(jax.random.key(0), (500, 2))
    stein.ksd(x, lambda v: -v)                               # KSD^2 (U-statistic), IMQ kernel: ~0
    stein.ksd(x, log_density)                                # a log-density is differentiated by JAX
    stein.ksd_test(x, model.score, key=key).p_value          # Chwialkowski et al. wild-bootstrap test
    stein.discrete_ksd(bits, rbm.log_prob)                   # binary / categorical (Yang et al. 2018)
    stein.ksd_trace(result, score)                           # per saved step of zoo.samplers.run(save=True)
    stein.ssm_loss(score_fn, x, key=key)                     # sliced score matching (SSM-VR)

Kernels: `IMQ` (``(c^2 + r^2)^beta``, c = 1, beta = -1/2 by default) and `RBF`
(`zoo.kscore.DiagonalGaussian`); any `zoo.kscore.AbstractDiagonalKernel` works. Stein variational
gradient descent is the sampler `zoo.samplers.SVGD`.
"""

from .._score_matching import (
    PROJECTIONS as PROJECTIONS,
    anneal_ssm_loss as anneal_ssm_loss,
    anneal_ssm_terms as anneal_ssm_terms,
    projections as projections,
    ssm_example as ssm_example,
    ssm_loss as ssm_loss,
    ssm_terms as ssm_terms,
)
from ._discrete import (
    HammingSteinKernel as HammingSteinKernel,
    difference_score as difference_score,
    discrete_ksd as discrete_ksd,
    discrete_ksd_test as discrete_ksd_test,
    discrete_stein_kernel_matrix as discrete_stein_kernel_matrix,
)
from ._kernels import IMQ as IMQ, RBF as RBF
from ._ksd import (
    ESTIMATORS as ESTIMATORS,
    AbstractSteinKernel as AbstractSteinKernel,
    KSDTest as KSDTest,
    LangevinSteinKernel as LangevinSteinKernel,
    ksd as ksd,
    ksd_test as ksd_test,
    ksd_trace as ksd_trace,
    stein_kernel_matrix as stein_kernel_matrix,
    wild_bootstrap_weights as wild_bootstrap_weights,
)
