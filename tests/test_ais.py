"""AIS with GWG transitions against exactly enumerated log-partition functions."""

import jax
import jax.numpy as jnp
import numpy as np

from zoo import samplers
from zoo.ebm import RBMTarget, ais, ais_log_likelihood, bootstrap_std, rbm_log_z_exact


def _tiny_rbm(key, d=5, h=3, scale=1.0):
    k1, k2, k3 = jax.random.split(key, 3)
    return RBMTarget(scale * jax.random.normal(k1, (d, h)), scale * jax.random.normal(k2, (d,)),
                     scale * jax.random.normal(k3, (h,)))


def test_ais_matches_exact_log_z_tiny_rbm(getkey):
    rbm = _tiny_rbm(getkey())
    exact = float(rbm_log_z_exact(rbm))
    base = jnp.zeros(5)
    res = jax.jit(lambda k: ais(rbm, base, num_steps=300, num_chains=500, key=k))(getkey())
    se = bootstrap_std(np.asarray(res.log_weights))
    assert abs(float(res.log_z) - exact) < 4 * se + 0.02, (float(res.log_z), exact, se)
    assert se < 0.05


def test_ais_on_a_callable_and_log_likelihood(getkey):
    """AIS on a plain callable (gradients by autodiff), and the log-likelihood bookkeeping:
    mean log p(x) = mean f(x) - log Z."""
    rbm = _tiny_rbm(getkey(), d=4, h=2)
    exact = float(rbm_log_z_exact(rbm))
    base = jnp.asarray([0.5, -0.5, 0.0, 1.0])
    data = jnp.asarray([[1.0, 0, 1, 1], [0, 0, 1, 0]])
    out = ais_log_likelihood(lambda x: rbm(x), base, data, rbm, num_steps=100, num_chains=400, key=getkey(),
                             sampler=samplers.GWG())
    assert abs(out["log_z"] - exact) < 4 * out["log_z_bootstrap_std"] + 0.02
    true_ll = float(jnp.mean(jax.vmap(rbm)(data))) - exact
    assert abs(out["log_likelihood"] - true_ll) < 4 * out["log_z_bootstrap_std"] + 0.02
    assert out["log_w_std"] >= 0


def test_ais_with_too_few_steps_is_biased_low(getkey):
    """Sanity check that the test above can fail: with one transition and few chains the
    estimate is noticeably off (AIS underestimates log Z)."""
    rbm = _tiny_rbm(getkey(), scale=2.0)
    exact = float(rbm_log_z_exact(rbm))
    res = ais(rbm, jnp.zeros(5), num_steps=1, num_chains=5, key=getkey())
    assert abs(float(res.log_z) - exact) > 0.02
