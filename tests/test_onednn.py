"""zoo._onednn: the oneDNN convolution primitives against `lax.conv_general_dilated` under every
transformation a model puts them through (values, gradients of both operands, vmap inside and
outside grad, second derivatives, forward mode, loops), and the fallbacks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import _onednn


pytestmark = pytest.mark.skipif(not _onednn.available(), reason="oneDNN handlers not available here")

GEOMETRIES = [  # (x shape, w shape, stride, padding, dilation)
    ((2, 7, 6, 3), (3, 3, 3, 5), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((2, 9, 9, 4), (3, 3, 4, 6), (1, 1), ((2, 2), (2, 2)), (2, 2)),
    ((3, 8, 7, 5), (3, 2, 5, 4), (2, 2), ((1, 0), (0, 1)), (1, 1)),
    ((2, 6, 6, 8), (1, 1, 8, 3), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((1, 10, 10, 2), (5, 5, 2, 1), (2, 1), ((2, 2), (2, 2)), (1, 2)),
]


def _ref(x, w, stride, padding, dilation):
    return jax.lax.conv_general_dilated(x, w, stride, padding, rhs_dilation=dilation,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip


def _operands(key, xs, ws):
    kx, kw = jax.random.split(key)
    return jax.random.normal(kx, xs), jax.random.normal(kw, ws) / np.sqrt(np.prod(ws[:3]))


def _close(a, b, tol=2e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        scale = max(float(jnp.abs(v).max()), 1e-6)
        np.testing.assert_allclose(np.asarray(u) / scale, np.asarray(v) / scale, atol=tol)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_values_and_both_gradients_match_lax(geometry, getkey):
    xs, ws, stride, padding, dilation = geometry
    x, w = _operands(getkey(), xs, ws)
    ours = lambda x, w: _onednn.conv(x, w, stride=stride, padding=padding, dilation=dilation)  # noqa: E731
    ref = lambda x, w: _ref(x, w, stride, padding, dilation)  # noqa: E731
    _close(ours(x, w), ref(x, w))
    _close(jax.jit(ours)(x, w), ref(x, w))
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    _close(jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(x, w), jax.grad(loss(ref), argnums=(0, 1))(x, w))
    # the primitives' HLO holds the oneDNN calls, not XLA convolutions
    hlo = jax.jit(jax.grad(loss(ours), argnums=(0, 1))).lower(x, w).as_text()
    assert hlo.count("zoo_onednn_conv") >= 3 and "convolution" not in hlo


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_xla_lowering_of_the_primitives_matches_lax(geometry, getkey, monkeypatch):
    """Where XLA's kernel was timed faster for a shape, the primitives lower to XLA's convolutions: the same values
    and gradients (the input gradient without dilation as zoo._conv's canonical convolutions), and no custom call."""
    monkeypatch.setattr(_onednn, "prefer_onednn", lambda *args, **kwargs: False)
    xs, ws, stride, padding, dilation = geometry
    x, w = _operands(getkey(), xs, ws)
    ours = lambda x, w: _onednn.conv(x, w, stride=stride, padding=padding, dilation=dilation)  # noqa: E731
    ref = lambda x, w: _ref(x, w, stride, padding, dilation)  # noqa: E731
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    grad = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))
    _close(grad(x, w), jax.grad(loss(ref), argnums=(0, 1))(x, w))
    assert "zoo_onednn_conv" not in grad.lower(x, w).as_text()


def test_vmap_inside_grad_is_one_batched_call(getkey):
    """A single-example network vmapped then differentiated (a training loss): the batch folds into N,
    so the weight gradient is ONE oneDNN call over the batch, equal to lax's."""
    x, w = _operands(getkey(), (6, 8, 8, 3), (3, 3, 3, 4))
    pad = ((1, 1), (1, 1))

    def loss(f, w, x):
        return jnp.sum(jnp.tanh(jax.vmap(lambda xi: f(xi[None], w)[0])(x)) ** 2)

    ours = lambda x, w: _onednn.conv(x, w, padding=pad)  # noqa: E731
    ref = lambda x, w: _ref(x, w, (1, 1), pad, (1, 1))  # noqa: E731
    g = jax.jit(jax.grad(lambda w, x: loss(ours, w, x), argnums=(0, 1)))
    _close(g(w, x), jax.grad(lambda w, x: loss(ref, w, x), argnums=(0, 1))(w, x))
    hlo = g.lower(w, x).as_text()
    assert hlo.count("zoo_onednn_conv_wgrad") == 1 and "convolution" not in hlo


def test_per_example_gradients_second_order_jvp_and_loops(getkey):
    x, w = _operands(getkey(), (3, 6, 6, 2), (3, 3, 2, 2))
    pad = ((1, 1), (1, 1))
    ours = lambda x, w: _onednn.conv(x, w, padding=pad)  # noqa: E731
    ref = lambda x, w: _ref(x, w, (1, 1), pad, (1, 1))  # noqa: E731
    # vmap over grad: per-example weight gradients (the XLA reference under vmap)
    per = lambda f: jax.vmap(jax.grad(lambda w, xi: jnp.sum(f(xi[None], w) ** 3)), in_axes=(None, 0))  # noqa: E731
    _close(per(ours)(w, x), per(ref)(w, x))
    # second order, as sliced score matching differentiates the network's input-Jacobian products
    v = jax.random.normal(getkey(), x.shape)

    def ssm(f, w):
        _, jv = jax.jvp(lambda x: jnp.tanh(f(x, w)), (x,), (v,))
        return jnp.sum(jv * v[..., :2])

    _close(jax.grad(lambda w: ssm(ours, w))(w), jax.grad(lambda w: ssm(ref, w))(w))
    _close(jax.hessian(lambda x: jnp.sum(jnp.tanh(ours(x, w))))(x[:1, :3, :3]),
           jax.hessian(lambda x: jnp.sum(jnp.tanh(ref(x, w))))(x[:1, :3, :3]), tol=1e-4)  # fmt: skip
    # a Langevin-like loop of score evaluations
    def chain(f):
        def body(c, _):
            return c + 0.1 * jax.grad(lambda c: jnp.sum(jnp.cos(f(c, w))))(c), None

        return jax.jit(lambda x: jax.lax.scan(body, x, None, length=4)[0])

    _close(chain(ours)(x), chain(ref)(x), tol=1e-4)
    # nested vmap and a batched kernel (XLA's kernels under vmap)
    xx = x.reshape(3, 1, 6, 6, 2)
    nested = jax.vmap(jax.vmap(lambda xi: ours(xi[None], w)[0]))(xx)
    _close(nested, jax.vmap(jax.vmap(lambda xi: ref(xi[None], w)[0]))(xx))
    ws = jnp.stack([w, 2 * w, -w])
    _close(jax.vmap(ours, in_axes=(None, 0))(x, ws), jax.vmap(ref, in_axes=(None, 0))(x, ws))


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_bfloat16_values_and_gradients(geometry, getkey, monkeypatch):
    """bfloat16 operands (where the CPU has bfloat16 instructions): oneDNN's kernels, whose float32 accumulation
    gives lax's float32 result on the same bfloat16-rounded operands to within one bfloat16 rounding of the
    output (2^-8 relative); the gradients likewise."""
    from zoo._onednn import _choice

    xs, ws, stride, padding, dilation = geometry
    x, w = (v.astype(jnp.bfloat16) for v in _operands(getkey(), xs, ws))
    ours = lambda x, w: _onednn.conv(x, w, stride=stride, padding=padding, dilation=dilation)  # noqa: E731
    ref = lambda x, w: _ref(x.astype(jnp.float32), w.astype(jnp.float32), stride, padding, dilation)  # noqa: E731
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w).astype(jnp.float32)))  # noqa: E731
    grad = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))
    if not _choice.native_bfloat16():
        pytest.skip("no bfloat16 instructions on this CPU: bfloat16 stays on XLA (test_other_dtypes_use_xla)")
    y = jax.jit(ours)(x, w)
    assert y.dtype == jnp.bfloat16
    _close(y.astype(jnp.float32), ref(x, w), tol=2**-8)
    g, g_ref = grad(x, w), jax.grad(loss(ref), argnums=(0, 1))(x, w)
    assert all(v.dtype == jnp.bfloat16 for v in g)
    _close([v.astype(jnp.float32) for v in g], g_ref, tol=2 * 2**-8)  # the cotangent is rounded too
    hlo = grad.lower(x, w).as_text()
    assert hlo.count("zoo_onednn_conv") >= 3 and "convolution" not in hlo
    # the bfloat16 weight-gradient kernel itself (the gradient above runs the float32 one on exact float32 copies)
    dy = jnp.cos(y)
    geom = dict(stride=stride, padding=padding, dilation=dilation)
    dw = jax.jit(lambda x, dy: _onednn.wgrad_p.bind(x, dy, kernel_hw=ws[:2], **geom))(x, dy)
    assert dw.dtype == jnp.bfloat16
    _close(dw.astype(jnp.float32), _onednn._xla_wgrad(x.astype(jnp.float32), dy.astype(jnp.float32),
                                                       kernel_hw=ws[:2], **geom), tol=2**-8)  # fmt: skip
    # a CPU without them keeps XLA's kernels
    monkeypatch.setattr(_onednn, "native_bfloat16", lambda: False)
    hlo = jax.jit(lambda x, w: ours(x, w)).lower(x, w).as_text()  # a new function: traced again
    assert "zoo_onednn" not in hlo and "convolution" in hlo


def test_other_dtypes_use_xla(getkey):
    x, w = _operands(getkey(), (1, 5, 5, 2), (3, 3, 2, 2))
    x16, w16 = x.astype(jnp.float16), w.astype(jnp.float16)
    hlo = jax.jit(lambda x, w: _onednn.conv(x, w)).lower(x16, w16).as_text()
    assert "zoo_onednn" not in hlo and "convolution" in hlo


def test_each_shape_runs_the_kernel_timed_faster_here(getkey, monkeypatch):
    """Without ZOO_ONEDNN=1, lowering a convolution times oneDNN's kernel against XLA's for its final shapes,
    stores both in the cache's choices.json and compiles the faster; a stored choice is used as it is, one stored
    for other kernels (another ``conv.cc``) or timed on other threads is not."""
    import json

    import jaxlib

    from zoo._io import cache_dir
    from zoo._onednn import _choice

    monkeypatch.delenv("ZOO_ONEDNN")
    monkeypatch.setattr(_choice, "_memo", {})
    pad = ((1, 1), (1, 1))
    choices = cache_dir() / "onednn" / "choices.json"
    # a stored choice (XLA's kernel for this shape) is taken without timing
    x, w = _operands(getkey(), (2, 7, 7, 3), (3, 3, 3, 4))
    def key(shapes, kernels=_choice.kernels_id(), threads=_choice.threads()):
        return (f"{_choice._cpu_model()} | jaxlib {jaxlib.__version__} | conv.cc {kernels} | threads {threads} | "
                f"zoo_onednn_conv_fwd | {shapes} | dilation=(1, 1),padding={pad},stride=(1, 1)")

    old = key("float32[4,9,9,6]xfloat32[3,3,6,5]", kernels="0" * 12)  # timed with other kernels: not used
    other = "omp 1, xla 1" if _choice.threads() != "omp 1, xla 1" else "omp 2, xla 2"
    single = key("float32[4,9,9,6]xfloat32[3,3,6,5]", threads=other)  # timed on other threads: not used
    choices.parent.mkdir(parents=True)
    stale = {"onednn": True, "onednn_ms": 1.0, "xla_ms": 2.0}
    choices.write_text(json.dumps({key("float32[2,7,7,3]xfloat32[3,3,3,4]"): {"onednn": False, "onednn_ms": 1.0,
                                                                              "xla_ms": 2.0},
                                   old: stale, single: stale}))
    hlo = jax.jit(lambda x, w: _onednn.conv(x, w, padding=pad)).lower(x, w).as_text()
    assert "zoo_onednn" not in hlo and "convolution" in hlo
    # a new shape is timed, stored beside it, and compiled with the faster kernel; the numbers agree either way
    x, w = _operands(getkey(), (4, 9, 9, 6), (3, 3, 6, 5))
    f = jax.jit(lambda x, w: _onednn.conv(x, w, padding=pad))
    hlo = f.lower(x, w).as_text()
    stored = json.loads(choices.read_text())
    assert stored[key("float32[2,7,7,3]xfloat32[3,3,3,4]")]["onednn"] is False and len(stored) == 4
    assert stored[old] == stored[single] == stale
    new = stored[key("float32[4,9,9,6]xfloat32[3,3,6,5]")]
    assert new["onednn_ms"] > 0 and new["xla_ms"] > 0 and new["onednn"] == (new["onednn_ms"] < new["xla_ms"])
    assert ("zoo_onednn_conv_fwd" in hlo) == new["onednn"] and ("convolution" in hlo) != new["onednn"]
    _close(f(x, w), _ref(x, w, (1, 1), pad, (1, 1)))


def test_busy_elsewhere_counts_other_processes():
    """`busy_elsewhere` sees a process spinning on this process's CPUs (about one core) and not this process's own
    work."""
    import subprocess
    import sys
    import time

    from zoo._onednn import _choice

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # inherits this process's CPUs
    try:
        time.sleep(0.3)  # started
        out, cores = _choice.busy_elsewhere(lambda: time.sleep(0.6) or "done")
    finally:
        spinner.kill()
        spinner.wait()
    assert out == "done" and 0.6 < cores < len(_choice.cpus()) + 0.1


def test_a_choice_timed_while_the_machine_was_busy_is_timed_again(getkey, monkeypatch):
    """A choice timed while other processes kept the CPUs busy is used in this process, stored as unsettled and timed
    again by the next process (here: a cleared memo), until a quiet timing or the third timing settles it; a settled
    choice is not timed again."""
    import json

    from zoo._io import cache_dir
    from zoo._onednn import _choice

    monkeypatch.delenv("ZOO_ONEDNN")
    timed, busy = [], []
    time_kernels = _choice._time
    monkeypatch.setattr(_choice, "_time", lambda *a: timed.append(1) or time_kernels(*a))
    monkeypatch.setattr(_choice, "busy_elsewhere", lambda fn: (fn(), busy[len(timed) - 1]))

    def lower(shape):
        monkeypatch.setattr(_choice, "_memo", {})  # a new process
        x, w = _operands(getkey(), shape, (3, 3, shape[-1], 2))
        jax.jit(lambda x, w: _onednn.conv(x, w)).lower(x, w)
        name = f"float32[{','.join(map(str, shape))}]"
        (entry,) = [v for k, v in json.loads(choices.read_text()).items() if name in k]
        return entry

    choices = cache_dir() / "onednn" / "choices.json"
    busy[:] = [1.5, 1.5, 1.5]
    assert [lower((1, 5, 5, 3)).get("unsettled") for _ in range(4)] == [1, 2, None, None] and len(timed) == 3
    assert lower((1, 5, 5, 3))["busy_elsewhere"] == 1.5
    busy[:] = [1.5, 1.5, 1.5, 1.5, 0.1]
    assert [lower((1, 6, 5, 3)).get("unsettled") for _ in range(3)] == [1, None, None] and len(timed) == 5
    assert lower((1, 6, 5, 3))["busy_elsewhere"] == 0.1


def test_the_build_retries_without_native_flags(tmp_path, caplog):
    """A compiler that refuses -fopenmp / -march=native (clang without libomp) still builds the library: portable
    and single-threaded, with a warning; a compiler that fails every time raises with each command's error."""
    from zoo._onednn import _build

    log = tmp_path / "calls.txt"
    fake = tmp_path / "fake-cxx"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'case " $* " in *" -fopenmp "*) echo "unsupported option -fopenmp" >&2; exit 1;; esac\n'
        'while [ "$1" != "-o" ]; do shift; done; touch "$2"\n'
    )
    fake.chmod(0o755)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libdnnl.so.3").touch()
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level("WARNING", logger="zoo"):
        _build._compile(out, str(fake), tmp_path, lib)
    first, second = log.read_text().splitlines()
    assert "-fopenmp" in first and "-march=native" in first
    assert "-fopenmp" not in second and "-march=native" not in second and "cin.cc" in second
    assert (out / _build.LIBRARY).is_file()
    assert "built without -march=native -fopenmp (unsupported option -fopenmp)" in caplog.text
    failing = tmp_path / "failing-cxx"
    failing.write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(RuntimeError, match="(?s)-fopenmp.*broken.*broken"):
        _build._compile(out, str(failing), tmp_path, lib)
