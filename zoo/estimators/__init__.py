"""Gradient estimators for expectations over factorised Bernoulli variables.

Each estimator returns an unbiased estimate of ``d/d logits E_{z ~ Bernoulli(sigmoid(logits))}[f(z)]``
from ``num_samples`` evaluations of ``f``:

    import jax, zoo.estimators as ze
    est = ze.RODEO(2, key=jax.random.key(0))
    g = est(f, logits, key=jax.random.key(1))          # (D,)
    exact = ze.exact_gradient(f, logits)                # small D only

`Reinforce`, `ReinforceBaseline`, `RLOO`, `DisARM` (even K), `ARMS` (its generalisation to
any K), `DoubleCV` and `RODEO` share the
`AbstractEstimator` interface; learned auxiliary parameters are trained by minimising
`variance_loss` of the estimate.
"""

from ._arms import ARMS as ARMS
from ._base import (
    AbstractEstimator as AbstractEstimator,
    AbstractIIDEstimator as AbstractIIDEstimator,
    Estimate as Estimate,
    ObjectiveFn as ObjectiveFn,
    leave_one_out_mean as leave_one_out_mean,
    sample_bernoulli as sample_bernoulli,
    variance_loss as variance_loss,
)
from ._disarm import DisARM as DisARM
from ._double_cv import DoubleCV as DoubleCV
from ._exact import (
    all_binary as all_binary,
    bernoulli_log_prob as bernoulli_log_prob,
    exact_expectation as exact_expectation,
    exact_gradient as exact_gradient,
)
from ._factory import ESTIMATORS as ESTIMATORS, make_estimator as make_estimator
from ._reinforce import RLOO as RLOO, Reinforce as Reinforce, ReinforceBaseline as ReinforceBaseline
from ._rodeo import RODEO as RODEO, SteinControlNet as SteinControlNet
