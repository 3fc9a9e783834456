"""zoo._onednn._cin: the fused CondInstanceNorm++ (+ ELU) handlers against the same computation in JAX, under every
transformation the NCSN networks put them through (vmap with mapped and unmapped parameters, grad, second
order, jit), and the fallbacks; the JAX reference against the plain formula's autodiff derivative."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import _onednn
from zoo._onednn import _cin
from zoo.ncsn._network import cin_plus_plus


native = pytest.mark.skipif(not _onednn.available(), reason="zoo's native handlers not available here")


def _direct(x, gamma, alpha, beta, elu):
    """The forward formula written plainly on one image: its autodiff derivative is the reference."""
    mu = jnp.mean(x, axis=(0, 1), keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=(0, 1), keepdims=True)
    mu_t = (mu - jnp.mean(mu)) / jnp.sqrt(jnp.var(mu, ddof=1) + 1e-5)
    g, a, b = (p.reshape(1, 1, -1) for p in (gamma, alpha, beta))
    z = g * ((x - mu) / jnp.sqrt(var + 1e-5) + a * mu_t) + b
    return jax.nn.elu(z) if elu else z


def _inputs(key, n, h, w, c):
    kx, kg, ka, kb = jax.random.split(key, 4)
    x = 1.5 * jax.random.normal(kx, (n, h, w, c)) + jnp.arange(c).reshape(1, 1, 1, c) * 0.3 - 0.5  # means differ
    gamma, alpha, beta = (jax.random.normal(k, (n, c)) for k in (kg, ka, kb))
    return x, gamma, alpha, beta


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        scale = max(float(jnp.abs(v).max()), 1e-6)
        np.testing.assert_allclose(np.asarray(u) / scale, np.asarray(v) / scale, atol=tol)


@native
@pytest.mark.parametrize("elu", [False, True])
@pytest.mark.parametrize("shape", [(3, 7, 5, 6), (2, 28, 28, 64), (1, 4, 4, 2)])
def test_handlers_match_the_reference(shape, elu, getkey):
    """Forward (output and stats) and backward on the handlers equal the JAX reference, and the program holds the
    custom calls (so this compares the handlers, not the reference with itself)."""
    x, gamma, alpha, beta = _inputs(getkey(), *shape)
    fwd = jax.jit(lambda *a: _cin.cin_forward(*a, elu=elu))
    got = fwd(x, gamma, alpha, beta)
    _close(got, _cin.reference_forward(x, gamma, alpha, beta, elu=elu))
    assert "zoo_cin_fwd" in fwd.lower(x, gamma, alpha, beta).as_text()
    y, stats = got
    dy = jax.random.normal(getkey(), x.shape)
    bwd = jax.jit(lambda *a: _cin.cin_backward(*a, elu=elu))
    _close(bwd(x, y, stats, gamma, alpha, dy), _cin.reference_backward(x, y, stats, gamma, alpha, dy, elu=elu))
    assert "zoo_cin_bwd" in bwd.lower(x, y, stats, gamma, alpha, dy).as_text()


@native
def test_elu_at_the_extremes(getkey):
    """ELU's negative side from the handler's own expm1, against `jax.nn.elu` (relative: exact near zero, -1 far
    below): with gamma = 0 the norm's output is beta, so each channel's output is ELU of its beta."""
    z = jnp.array([-100.0, -87.5, -30.0, -5.0, -1.0, -0.3466, -1e-3, -1e-7, -1e-30, 0.0, 1e-7, 2.0, 50.0])
    c = z.shape[0]
    x = jax.random.normal(getkey(), (2, 3, 4, c))
    y, _ = _cin.cin_forward(x, jnp.zeros((2, c)), jnp.zeros((2, c)), jnp.broadcast_to(z, (2, c)), elu=True)
    want = jnp.broadcast_to(jax.nn.elu(z).reshape(1, 1, 1, c), y.shape)
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=3e-7, atol=0)


@native
def test_vmap_jit_and_unmapped_parameters(getkey):
    """The network's use: one image vmapped (nested too), parameters per image or shared (InstanceNorm++), under
    grad and jit: the handlers' answers equal the reference's, and a vmapped call is one custom call."""
    x, gamma, alpha, beta = _inputs(getkey(), 6, 5, 4, 3)
    dy = jax.random.normal(getkey(), x.shape)

    def loss(x, g, a, b, shared):
        norm = lambda x, g, a, b: cin_plus_plus(x, g, a, b, True)  # noqa: E731
        axes = (0, None, None, None) if shared else 0
        return jnp.sum(dy * jax.vmap(norm, in_axes=axes)(x, g, a, b))

    for shared in (False, True):
        params = (gamma[0], alpha[0], beta[0]) if shared else (gamma, alpha, beta)
        grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)), static_argnums=4)
        got = grad(x, *params, shared)
        with _onednn.xla_kernels():
            want = jax.grad(loss, argnums=(0, 1, 2, 3))(x, *params, shared)
        _close(got, want)
        text = grad.lower(x, *params, shared).as_text()
        assert text.count("zoo_cin_fwd") == 1 and text.count("zoo_cin_bwd") == 1
    # nested vmap: (2, 3) images folded into one call
    xx = x.reshape(2, 3, 5, 4, 3)
    f = jax.vmap(jax.vmap(lambda x: cin_plus_plus(x, gamma[0], alpha[0], beta[0], False)))
    with _onednn.xla_kernels():
        want = f(xx)
    _close(jax.jit(f)(xx), want)


@native
def test_second_order(getkey):
    """Sliced score matching differentiates the network's vector-Jacobian products with respect to the
    parameters: through the backward handler (its derivative is the reference's)."""
    x, gamma, alpha, beta = _inputs(getkey(), 2, 4, 3, 3)
    v = jax.random.normal(getkey(), x.shape)

    def ssm(g):
        f = lambda x: jnp.tanh(jax.vmap(lambda x, g: cin_plus_plus(x, g, alpha[0], beta[0], True))(x, g))  # noqa: E731
        _, vjp = jax.vjp(f, x)
        return jnp.sum(vjp(v)[0] * v)

    got = jax.jit(jax.grad(ssm))(gamma)
    with _onednn.xla_kernels():
        want = jax.grad(ssm)(gamma)
    _close(got, want, tol=1e-4)


@pytest.mark.parametrize("elu", [False, True])
def test_reference_is_the_derivative_of_the_formula(elu, getkey):
    """The JAX reference (every platform's, and the handlers' model) against autodiff of the plain formula."""
    x, gamma, alpha, beta = _inputs(getkey(), 2, 6, 4, 5)
    dy = jax.random.normal(getkey(), x.shape)
    y, stats = _cin.reference_forward(x, gamma, alpha, beta, elu=elu)
    direct = jax.vmap(lambda *a: _direct(*a, elu))
    _close(y, direct(x, gamma, alpha, beta), tol=1e-5)
    got = _cin.reference_backward(x, y, stats, gamma, alpha, dy, elu=elu)
    _close(got, jax.vjp(direct, x, gamma, alpha, beta)[1](dy), tol=1e-4)


def test_fallbacks(getkey):
    """bfloat16 operands, and programs traced inside `xla_kernels`, run the reference: no custom call."""
    x, gamma, alpha, beta = _inputs(getkey(), 2, 4, 4, 3)
    xb = x.astype(jnp.bfloat16)
    assert not _cin.binds(xb, gamma, alpha, beta)
    f = jax.jit(lambda x: _cin.cin_forward(x, gamma.astype(x.dtype), alpha.astype(x.dtype), beta.astype(x.dtype),
                                           elu=True))  # fmt: skip
    assert "zoo_cin" not in f.lower(xb).as_text()
    with _onednn.xla_kernels():
        assert not _cin.binds(x, gamma, alpha, beta)
        assert "zoo_cin" not in jax.jit(lambda x: _cin.cin_forward(x, gamma, alpha, beta, elu=False)).lower(x).as_text()
