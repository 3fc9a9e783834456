"""zoo._conv: the loop-friendly convolution equals equinox's, value and gradients."""

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hlo import ynn_fusion_bodies

from zoo import _onednn
from zoo._conv import Conv2d, conv_compiler_options


CASES = [  # (in, out, kernel, stride, padding, size)
    (1, 4, 3, 1, 1, 9),
    (3, 5, 3, 2, 1, 8),
    (2, 3, 1, 2, 0, 7),
    (4, 2, 5, 3, 2, 11),
    (6, 5, 3, 1, 1, 7),  # more than _FEW_CHANNELS inputs: convolutions per output phase
    (7, 4, 3, 2, 1, 9),  # the forward's last window stops short of the last input row
    (6, 3, 1, 2, 0, 7),  # phases no tap reaches
    (5, 2, 5, 3, 2, 12),
]


def _kernels(kind: str, monkeypatch):
    """Run a test on one of the paths a convolution of `Conv2d` takes: "xla", its own custom-JVP convolutions on
    XLA's kernels (where zoo's oneDNN handlers are not available: other platforms, `xla_kernels`); "primitive-xla",
    zoo's oneDNN primitives lowered to XLA's kernels (a shape where XLA's were timed faster); "onednn", oneDNN's."""
    if kind == "xla":
        return _onednn.xla_kernels()
    if not _onednn.available():
        pytest.skip("zoo's oneDNN primitives are not available here")
    if kind == "primitive-xla":
        monkeypatch.setattr(_onednn, "prefer_onednn", lambda *args, **kwargs: False)
    else:
        monkeypatch.setenv("ZOO_ONEDNN", "1")
    return contextlib.nullcontext()


@pytest.fixture(params=["xla", "primitive-xla"])
def xla_path(request, monkeypatch):
    """The two ways `Conv2d` reaches XLA's convolution kernels (`_kernels`)."""
    with _kernels(request.param, monkeypatch):
        yield request.param


@pytest.mark.parametrize("kind", ["xla", "primitive-xla", "onednn"])
@pytest.mark.parametrize("cin,cout,k,s,p,size", CASES)
def test_matches_equinox_value_and_gradients(cin, cout, k, s, p, size, kind, monkeypatch):
    with _kernels(kind, monkeypatch):
        _matches_equinox(cin, cout, k, s, p, size)


def _matches_equinox(cin, cout, k, s, p, size):
    key = jax.random.key(0)
    ours = Conv2d(cin, cout, k, stride=s, padding=p, key=key)
    ref = eqx.nn.Conv2d(cin, cout, k, stride=s, padding=p, key=key)
    ref = eqx.tree_at(lambda m: (m.weight, m.bias), ref, (ours.weight, ours.bias))
    x = jax.random.normal(jax.random.key(1), (3, cin, size, size))

    def loss(m, x):
        y = jax.vmap(m)(x)
        return jnp.sum(jnp.sin(y) * jnp.arange(y.size).reshape(y.shape) / y.size)

    value = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))
    grad = eqx.filter_jit(jax.grad(loss, argnums=(0, 1)))
    np.testing.assert_allclose(value(ours, x), value(ref, x), rtol=1e-5, atol=1e-6)
    g_ours = grad(ours, x)
    g_ref = grad(ref, x)
    np.testing.assert_allclose(g_ours[1], g_ref[1], rtol=1e-5, atol=1e-6)  # d/dx
    np.testing.assert_allclose(g_ours[0].weight, g_ref[0].weight, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_ours[0].bias, g_ref[0].bias, rtol=1e-5, atol=1e-5)


def test_same_leaves_as_equinox():
    ours = Conv2d(2, 3, 3, stride=2, padding=1, key=jax.random.key(0))
    ref = eqx.nn.Conv2d(2, 3, 3, stride=2, padding=1, key=jax.random.key(0))
    shapes = lambda m: [(jax.tree_util.keystr(p), x.shape) for p, x in
                        jax.tree_util.tree_flatten_with_path(eqx.filter(m, eqx.is_array))[0]]
    assert shapes(ours) == shapes(ref)


def test_input_gradient_in_a_loop_is_a_canonical_convolution(xla_path):
    """The root cause of the slow GWG chains: XLA:CPU canonicalises convolutions only in the
    entry computation, so inside a while loop equinox's NCHW convolutions (``bf01``) and the
    input-gradient convolution (kernel ``01oi``) stay off the fast path. Every convolution in
    our loop is NHWC/HWIO/NHWC (``b01f_01io->b01f``)."""
    conv = Conv2d(4, 8, 3, stride=2, padding=1, key=jax.random.key(0))
    grad = jax.grad(lambda x: jnp.sum(jax.nn.silu(conv(x))))

    @jax.jit
    def chain(x):
        return jax.lax.fori_loop(0, 3, lambda i, x: x + 1e-3 * jax.vmap(grad)(x), x)

    hlo = chain.lower(jnp.ones((2, 4, 12, 12))).compile().as_text()
    convs = [line for line in hlo.splitlines() if " convolution(" in line]
    assert convs
    labels = {c.split("dim_labels=")[1].split(",")[0] for c in convs}
    assert labels == {"b01f_01io->b01f"}, labels


def test_strided_input_gradient_and_batched_weight_gradient_are_plain_convolutions(xla_path):
    """The input gradient of a strided convolution is stride-1 convolutions per input phase (no
    convolution of the zero-dilated cotangent, ``lhs_dilate``), and the weight gradient of a loss
    over ``vmap`` is one convolution over the batch (no per-example grouped convolution, which a
    custom VJP's vmapped backward pass would compute)."""
    conv = Conv2d(6, 5, 3, stride=2, padding=1, key=jax.random.key(0))
    x = jnp.ones((3, 6, 9, 9))

    def loss(m, x):
        return jnp.mean(jax.vmap(lambda xi: jnp.sum(jax.nn.silu(m(xi))))(x))

    hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(conv, x).compile().as_text()
    convs = [line for line in hlo.splitlines() if " convolution(" in line]
    assert convs
    assert not any("lhs_dilate" in c or "feature_group_count" in c or "batch_group_count" in c for c in convs), convs


def test_conv_compiler_options_keep_ynnpack_to_reductions_and_change_only_rounding(xla_path):
    """XLA:CPU gives convolutions to its YNNPACK fusions, which run on one thread inside a while
    loop; `conv_compiler_options` keep YNNPACK to reductions (XLA's own convolution, multi-threaded
    there; YNNPACK's vectorised reductions, where XLA's loop emitter sums strided columns one scalar at
    a time). The loop's convolutions stay canonical and off YNNPACK, its per-channel sums go to YNNPACK,
    and the values agree with XLA's defaults to float rounding (another kernel's summation order)."""
    opts = dict(conv_compiler_options())
    if jax.default_backend() != "cpu":
        assert opts == {}
        return
    assert opts == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
    conv = Conv2d(32, 32, 3, padding=1, key=jax.random.key(0))  # over 16 channels: YNNPACK takes it by default

    def energy(x):  # channels-last, as NCSN: a convolution and an instance norm's per-channel statistics
        h = conv.hwc(x)
        mu = jnp.mean(h, axis=(0, 1), keepdims=True)
        return jnp.sum(jax.nn.silu(h - mu)) + jnp.sum(jnp.mean(jnp.square(h - mu), axis=(0, 1)))

    grad = jax.grad(energy)

    def chain(x):
        return jax.lax.fori_loop(0, 3, lambda i, x: x + 1e-2 * jax.vmap(grad)(x), x)

    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 32))  # YNNPACK takes reductions of this size
    ours = jax.jit(chain, compiler_options=opts)
    hlo = ours.lower(x).compile().as_text()
    bodies = ynn_fusion_bodies(hlo)
    assert bodies and all(" reduce(" in b for b in bodies), bodies
    assert not any(" convolution(" in b or " dot(" in b for b in bodies)
    labels = {line.split("dim_labels=")[1].split(",")[0] for line in hlo.splitlines() if " convolution(" in line}
    assert labels == {"b01f_01io->b01f"}, labels
    np.testing.assert_allclose(ours(x), jax.jit(chain)(x), rtol=1e-5, atol=1e-5)


_BOGUS = {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"}  # XLA:CPU rejects it when compiling


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are XLA:CPU's")
def test_run_and_batch_map_compile_with_the_options_given():
    """`samplers.run` (its scan and its host loop) and `batch_map` compile with the `compiler_options` they are
    given, outside `jit`: an option XLA rejects fails there, and the YNNPACK-off options give the chain of XLA's
    defaults to float rounding."""
    from zoo import batch_map, samplers

    conv = Conv2d(3, 3, 3, padding=1, key=jax.random.key(0))
    score = eqx.Partial(lambda c, x: -x + 0.01 * jnp.tanh(c(x)), conv)
    x0 = jax.random.normal(jax.random.key(1), (2, 3, 5, 5))
    sampler = samplers.Langevin(step_size=1e-2)
    kw = dict(num_steps=3, key=jax.random.key(2), batched=True)
    plain = samplers.run(sampler, score, x0, **kw).final
    for progress in (False, True):
        with pytest.raises(jax.errors.JaxRuntimeError, match="NOT_A_FUSION_TYPE"):
            samplers.run(sampler, score, x0, progress=progress, compiler_options=_BOGUS, **kw)
        ours = samplers.run(sampler, score, x0, progress=progress, compiler_options=dict(conv_compiler_options()), **kw)
        np.testing.assert_allclose(ours.final, plain, rtol=1e-5, atol=1e-5)
    with pytest.raises(jax.errors.JaxRuntimeError, match="NOT_A_FUSION_TYPE"):
        batch_map(jax.vmap(score), np.asarray(x0), batch_size=2, compiler_options=_BOGUS)
    out = batch_map(jax.vmap(score), np.asarray(x0), batch_size=2, compiler_options=dict(conv_compiler_options()))
    np.testing.assert_allclose(out, jax.vmap(score)(x0), rtol=1e-5, atol=1e-5)


def test_convolutional_families_get_the_conv_options():
    """NCSN, the ResNet EBM and the classifier compile with `conv_compiler_options`; an MLP family with none."""
    from zoo._conv import jit_options
    from zoo.classifier import ClassifierConfig
    from zoo.dvae import DVAEConfig
    from zoo.ebm import ResNetEBMConfig
    from zoo.ncsn import NCSNConfig

    conv = conv_compiler_options()
    for cfg in (NCSNConfig(image_size=8, channels=1, ngf=4, num_scales=2), ResNetEBMConfig(image_size=8, channels=4),
                ClassifierConfig(image_shape=(8, 8, 1))):
        model = eqx.filter_eval_shape(cfg.build, key=jax.random.key(0))
        assert model.compiler_options() == conv, type(model).__name__
        assert jit_options(model) == (dict(conv) or None)
    dvae = DVAEConfig(data_dim=16, image_shape=(4, 4, 1), latent_dim=4, hidden=8)
    mlp = eqx.filter_eval_shape(dvae.build, key=jax.random.key(0))
    assert mlp.compiler_options() == () and jit_options(mlp) is None
    assert jit_options(object()) is None
