"""`FactorBlockGibbsMH` and `Cycle` on a product of a small RBM and a random quadratic, whose
law is known by enumeration: one step from exact draws must keep the law (chi-square), the
chains must reach it from a point mass, and a kernel that ignores the rest term must fail."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from discrete_targets import quadratic

from zoo import samplers
from zoo.ebm import RBMTarget


D, H, N = 4, 3, 40000


def _product(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    rbm = RBMTarget(jax.random.normal(k1, (D, H)), 0.5 * jax.random.normal(k2, (D,)),
                    0.5 * jax.random.normal(k3, (H,)))
    return samplers.ProductTarget(rbm, quadratic(D, k4, scale=0.7))


def _states():
    return jnp.asarray(list(itertools.product([0.0, 1.0], repeat=D)))


def _law(f):
    logp = np.asarray(jax.vmap(f)(_states()), np.float64)
    p = np.exp(logp - logp.max())
    return p / p.sum()


def _pvalue(x, pi):
    idx = (np.asarray(x).astype(int) * (2 ** np.arange(D - 1, -1, -1))).sum(-1)  # itertools order
    return scipy.stats.chisquare(np.bincount(idx, minlength=len(pi)), len(idx) * pi).pvalue


def _one_step(sampler, target, x, key, steps=1, compiler_options=None):
    return samplers.run(
        sampler, target, x, num_steps=steps, key=key, batched=True, compiler_options=compiler_options
    ).final


class _IgnoreRest(samplers.AbstractSampler):
    """Broken on purpose: block Gibbs on the factor, always accepted (leaves the factor's law)."""

    def init(self, target, x):
        return None

    def step(self, target, x, state, *, key):
        k_h, k_v = jax.random.split(key)
        h = jax.random.bernoulli(k_h, jax.nn.sigmoid(target.factor.hidden_logits(x))).astype(x.dtype)
        return jax.random.bernoulli(k_v, jax.nn.sigmoid(target.factor.visible_logits(h))).astype(x.dtype), None, {}


def test_product_target_matches_its_parts(getkey):
    t = _product(getkey())
    x = jnp.asarray([1.0, 0, 1, 1])
    np.testing.assert_allclose(t(x), t.factor(x) + t.rest(x), rtol=1e-6)
    cache = t.init(x)
    np.testing.assert_allclose(t.grad(x, cache), jax.grad(t)(x), rtol=1e-5)
    x_new, c_new = t.flip(x, cache, jnp.asarray([1, 1, 2]), jnp.asarray([True, False, True]))
    np.testing.assert_array_equal(x_new, jnp.asarray([1.0, 1, 0, 1]))
    np.testing.assert_allclose(t.log_prob(x_new, c_new), t(x_new), rtol=1e-6)


@pytest.mark.parametrize("kind", ["mh", "cycle"])
def test_one_step_keeps_the_law_and_chains_reach_it(getkey, kind, optimised):
    t = _product(getkey())
    pi = _law(t)
    x = jnp.asarray(_states())[jax.random.choice(getkey(), 2**D, (N,), p=jnp.asarray(pi, jnp.float32))]
    assert _pvalue(x, pi) > 1e-3  # the exact draws themselves
    sampler = samplers.FactorBlockGibbsMH()
    if kind == "cycle":
        sampler = samplers.Cycle((sampler, samplers.GWG()), (2, 3))
    assert _pvalue(_one_step(sampler, t, x, getkey(), compiler_options=optimised), pi) > 1e-3
    # from a point mass, 30 steps reach the law
    x0 = jnp.zeros((N, D))
    assert _pvalue(_one_step(sampler, t, x0, getkey(), steps=30, compiler_options=optimised), pi) > 1e-3
    # ignoring the rest term leaves the factor's law instead: the same test fails
    assert _pvalue(_one_step(_IgnoreRest(), t, x, getkey(), compiler_options=optimised), pi) < 1e-6


def test_cycle_info_and_errors(getkey):
    t = _product(getkey())
    res = samplers.run(samplers.Cycle((samplers.FactorBlockGibbsMH(), samplers.GWG()), (2, 1)), t,
                       jnp.zeros((5, D)), num_steps=3, key=getkey(), batched=True)
    assert {"0_accept_prob", "0_hops", "1_accept_prob", "1_hops"} <= set(res.info)
    assert np.all((np.asarray(res.info["0_accept_prob"]) >= 0) & (np.asarray(res.info["0_accept_prob"]) <= 1))
    with pytest.raises(ValueError, match="count >= 1"):
        samplers.Cycle((samplers.GWG(),), (0,))
    with pytest.raises(TypeError, match="ProductTarget"):
        samplers.FactorBlockGibbsMH().init(lambda x: jnp.sum(x), jnp.zeros(D))
