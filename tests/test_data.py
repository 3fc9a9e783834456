import gzip
import importlib.util
import io
import os
import tarfile
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import zoo.data as zd
from zoo._errors import DataError
from zoo.data import _cifar10, _omniglot, _paths, _tfds


def _real_data_dir() -> Path | None:
    directory = zd.data_dir()
    return directory if (directory / "mnist.npz").is_file() else None


REAL = _real_data_dir()
needs_real = pytest.mark.skipif(
    REAL is None, reason=f"real data not found in {zd.data_dir()} (set ZOO_DATA_DIR to ../shared/data)"
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # No test may read or write the user's cache.
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------
# Names, splits, directories, errors


def test_available_and_splits():
    names = zd.available()
    assert names == sorted(names)
    expected = {"mnist", "binarized_mnist", "dynamic_mnist", "fashion_mnist", "omniglot", "cifar10", "mnist_k4"}
    assert expected | {"toy:gmm8", "toy:spirals", "toy:checkerboard"} == set(names)
    assert zd.splits("binarized_mnist") == ("train", "valid", "test")
    assert zd.splits("cifar10") == ("train", "test")


def test_bad_split_lists_valid_splits():
    with pytest.raises(DataError, match=r"no split 'valid'; valid splits: train, test"):
        zd.load("mnist", "valid")


def test_unknown_name_suggests():
    with pytest.raises(DataError, match=r"Unknown data set 'mnsit'.*'mnist'"):
        zd.load("mnsit")


def test_bad_source_and_n():
    with pytest.raises(DataError, match="Unknown source"):
        zd.load("mnist", source="http")
    with pytest.raises(DataError, match="toy set"):
        zd.load("mnist", n=10)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zd.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("ZOO_CACHE_DIR")
    assert zd.cache_dir() == tmp_path / "xdg" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zd.cache_dir() == tmp_path / "home" / ".cache" / "zoo"


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    assert zd.data_dir() == tmp_path
    monkeypatch.delenv("ZOO_DATA_DIR")
    checkout = Path(zd.__file__).resolve().parents[2].parent / "shared" / "data"
    assert zd.data_dir() == (checkout if checkout.is_dir() else zd.cache_dir() / "data")
    monkeypatch.setattr(_paths, "_checkout_data_dir", lambda: tmp_path / "absent")
    assert zd.data_dir() == zd.cache_dir() / "data"


def test_missing_file_error_names_file_dirs_and_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as info:
        zd.load("mnist")
    message = str(info.value)
    assert "'mnist.npz'" in message
    assert str(tmp_path / "mnist.npz") in message and "$ZOO_DATA_DIR" in message
    assert "set ZOO_DATA_DIR" in message
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        zd.load("fashion_mnist", data_dir=tmp_path / "elsewhere")


def test_zoo_data_dir_override(monkeypatch, tmp_path):
    x = np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(5, dtype=np.uint8))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path))
    data = zd.load("mnist")
    assert len(data) == 5 and data.x.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(data.x[..., 0], x.astype(np.float32) / 255)
    np.testing.assert_array_equal(data.y, np.arange(5))
    # The data_dir argument wins over the environment.
    with pytest.raises(DataError, match="data_dir argument"):
        zd.load("mnist", data_dir=tmp_path / "other")


def _idx_gz(path: Path, array: np.ndarray, type_byte: int = 0x08) -> None:
    header = bytes([0, 0, type_byte, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_fashion_mnist_idx_reader(tmp_path):
    (tmp_path / "fashion_mnist").mkdir()
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    _idx_gz(tmp_path / "fashion_mnist" / "t10k-images-idx3-ubyte.gz", x)
    _idx_gz(tmp_path / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz", np.array([9, 0, 4], np.uint8))
    data = zd.load("fashion_mnist", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(data.x[..., 0] * 255, x.astype(np.float32))
    np.testing.assert_array_equal(data.y, [9, 0, 4])
    with gzip.open(tmp_path / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([5], ">u4").tobytes() + b"\x01")
    with pytest.raises(DataError, match="truncated"):
        zd.load("fashion_mnist", "test", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------
# The real data sets


@needs_real
@pytest.mark.parametrize(
    "name, split, n, binary, n_classes",
    [
        ("mnist", "train", 60000, False, 10),
        ("mnist", "test", 10000, False, 10),
        ("dynamic_mnist", "train", 60000, False, 10),
        ("binarized_mnist", "train", 50000, True, None),
        ("binarized_mnist", "valid", 10000, True, None),
        ("binarized_mnist", "test", 10000, True, None),
        ("fashion_mnist", "train", 60000, False, 10),
        ("fashion_mnist", "test", 10000, False, 10),
        ("omniglot", "train", 964 * 20, False, 964),
        ("omniglot", "test", 659 * 20, False, 659),
    ],
)
def test_real_28x28_sets(name, split, n, binary, n_classes):
    data = zd.load(name, split)
    assert (data.name, data.split, data.binary, len(data)) == (name, split, binary, n)
    assert data.x.shape == (n, 28, 28, 1) and data.x.dtype == np.float32
    assert data.x.min() == 0.0 and data.x.max() == 1.0
    if binary:
        assert set(np.unique(data.x)) == {0.0, 1.0}
    else:
        assert ((data.x > 0) & (data.x < 1)).any()
    if n_classes is None:
        assert data.y is None
    else:
        assert data.y is not None and data.y.dtype == np.int32 and data.y.shape == (n,)
        assert set(np.unique(data.y)) == set(range(n_classes))


@needs_real
def test_binarized_mnist_train_mean():
    assert abs(zd.load("binarized_mnist").x.mean() - 0.1306) < 0.001


@needs_real
def test_omniglot_ink_is_one_and_matches_pil():
    data = zd.load("omniglot", "test")
    assert data.x.mean() < 0.2  # strokes are a small minority of pixels: ink = 1
    assert np.all(np.bincount(data.y) == 20)
    with np.load(REAL / "omniglot_evaluation.npz") as z:
        background = z["images"][:2].reshape(-1, 105, 105)
    expected = np.stack(
        [
            np.asarray(Image.fromarray((~b).astype(np.float32)).resize((28, 28), Image.Resampling.BOX))
            for b in background
        ]
    )
    np.testing.assert_allclose(data.x[:40, ..., 0], expected, atol=1e-5)


def test_omniglot_downsample_of_constant_and_blocks():
    rng = np.random.default_rng(0)
    images = rng.random((3, 105, 105)).astype(np.float32)
    expected = np.stack([np.asarray(Image.fromarray(a).resize((28, 28), Image.Resampling.BOX)) for a in images])
    np.testing.assert_allclose(_omniglot.downsample(images), expected, atol=1e-5)
    np.testing.assert_allclose(_omniglot.downsample(np.ones((1, 105, 105), bool)), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------
# CIFAR-10: decoding and the cache


@pytest.fixture(scope="module")
def small_cifar(tmp_path_factory) -> Path:
    """A tar.gz of 2 real JPEGs per (split, class) of the real archive, in archive order."""
    if REAL is None:
        pytest.skip(f"real data not found in {zd.data_dir()}")
    picked: dict[tuple[str, str], list[tuple[tarfile.TarInfo, bytes]]] = {}
    with tarfile.open(REAL / _cifar10.ARCHIVE, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            split, cls, _ = member.name.split("/")
            bucket = picked.setdefault((split, cls), [])
            if len(bucket) < 2:
                bucket.append((member, tar.extractfile(member).read()))
                if len(picked) == 20 and all(len(b) == 2 for b in picked.values()):
                    break
    directory = tmp_path_factory.mktemp("small_cifar")
    with tarfile.open(directory / _cifar10.ARCHIVE, "w:gz") as tar:
        for bucket in reversed(list(picked.values())):
            for member, data in bucket:
                tar.addfile(member, io.BytesIO(data))
    return directory


def _expected_cifar(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    entries = []
    with tarfile.open(directory / _cifar10.ARCHIVE, "r:gz") as tar:
        for member in tar:
            s, cls, name = member.name.split("/")
            if s == split:
                pixels = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                entries.append((_cifar10.CLASSES.index(cls), name, pixels))
    entries.sort(key=lambda e: e[:2])
    return np.stack([e[2] for e in entries]).astype(np.float32) / 255, np.array([e[0] for e in entries])


def _cache_files() -> list[Path]:
    return sorted((zd.cache_dir() / "datasets").iterdir())


def test_cifar10_decode_in_class_order(small_cifar):
    for split in ("train", "test"):
        data = zd.load("cifar10", split, data_dir=small_cifar)
        x, y = _expected_cifar(small_cifar, split)
        assert data.x.shape == (20, 32, 32, 3) and data.x.dtype == np.float32 and not data.binary
        np.testing.assert_array_equal(data.y, np.repeat(np.arange(10), 2))
        np.testing.assert_array_equal(data.y, y)
        np.testing.assert_array_equal(data.x, x)


def test_cifar10_cache_is_written_once_and_reused(small_cifar, monkeypatch):
    first = zd.load("cifar10", "train", data_dir=small_cifar)
    files = _cache_files()
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary file left behind

    def no_decoding(archive):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(_cifar10, "decode_archive", no_decoding)
    second = zd.load("cifar10", "train", data_dir=small_cifar)
    np.testing.assert_array_equal(first.x, second.x)
    np.testing.assert_array_equal(first.y, second.y)


def _corrupt_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_flip_byte(path: Path) -> None:
    # Flip the last pixel byte of x_train in place, leaving the zip structure intact.
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("x_train.npy")
    raw = bytearray(path.read_bytes())
    name_len, extra_len = np.frombuffer(raw, "<u2", count=2, offset=info.header_offset + 26)
    raw[info.header_offset + 30 + int(name_len) + int(extra_len) + info.compress_size - 1] ^= 0xFF
    path.write_bytes(bytes(raw))


def _corrupt_consistent_zip(path: Path) -> None:
    # A well-formed npz whose pixels no longer match the recorded checksum.
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"][0, 0, 0, 0] ^= 1
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _corrupt_wrong_shape(path: Path) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"] = arrays["x_train"][:3]
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "corrupt", [_corrupt_truncate, _corrupt_flip_byte, _corrupt_consistent_zip, _corrupt_wrong_shape]
)
def test_cifar10_corrupt_cache_is_rebuilt(small_cifar, corrupt):
    good = zd.load("cifar10", "train", data_dir=small_cifar)
    (path,) = _cache_files()
    corrupt(path)
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        rebuilt = zd.load("cifar10", "train", data_dir=small_cifar)
    np.testing.assert_array_equal(rebuilt.x, good.x)
    again = zd.load("cifar10", "train", data_dir=small_cifar)  # strict warnings: no second warning
    np.testing.assert_array_equal(again.x, good.x)
    assert _cache_files() == [path]


def test_cifar10_cache_write_is_atomic(small_cifar, monkeypatch):
    zd.load("cifar10", "train", data_dir=small_cifar)
    (path,) = _cache_files()
    before = path.read_bytes()

    def savez_then_crash(file, **arrays):
        file.write(b"partial")
        raise RuntimeError("crash mid-write")

    monkeypatch.setattr(_cifar10.np, "savez", savez_then_crash)
    arrays = _cifar10.decode_archive(small_cifar / _cifar10.ARCHIVE)
    with pytest.raises(RuntimeError, match="crash mid-write"):
        _cifar10.write_cache(path, arrays, "0" * 64)
    assert path.read_bytes() == before and _cache_files() == [path]


def test_cifar10_unwritable_cache_still_loads(small_cifar, monkeypatch):
    def refuse(src, dst):
        raise PermissionError("read-only cache")

    monkeypatch.setattr(_cifar10.os, "replace", refuse)
    with pytest.warns(RuntimeWarning, match="Cannot write"):
        data = zd.load("cifar10", "test", data_dir=small_cifar)
    assert len(data) == 20
    assert _cache_files() == []


def test_cifar10_unexpected_member(tmp_path):
    with tarfile.open(tmp_path / _cifar10.ARCHIVE, "w:gz") as tar:
        member = tarfile.TarInfo("train/unicorn/0000.jpg")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"abc"))
    with pytest.raises(DataError, match="unicorn"):
        zd.load("cifar10", data_dir=tmp_path)


@pytest.mark.slow
@needs_real
def test_cifar10_real_archive():
    train = zd.load("cifar10", "train")
    assert train.x.shape == (50000, 32, 32, 3) and train.x.dtype == np.float32
    assert 0.0 <= train.x.min() and train.x.max() <= 1.0
    np.testing.assert_array_equal(train.y, np.repeat(np.arange(10), 5000))
    test = zd.load("cifar10", "test")  # from the cache the first load wrote
    assert test.x.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(test.y, np.repeat(np.arange(10), 1000))
    assert abs(train.x.mean() - 0.4734) < 0.005


# ---------------------------------------------------------------------------------------
# Toy sets


@pytest.mark.parametrize("name", ["toy:gmm8", "toy:spirals", "toy:checkerboard"])
def test_toy_sets_deterministic_and_splits_differ(name):
    train, again, test = zd.load(name), zd.load(name), zd.load(name, "test")
    assert train.x.shape == (10000, 2) and train.x.dtype == np.float32 and not train.binary
    np.testing.assert_array_equal(train.x, again.x)
    assert not np.allclose(train.x[:100], test.x[:100])
    small = zd.load(name, "valid", n=17)
    assert small.x.shape == (17, 2)
    assert np.abs(train.x).max() < 6


def test_toy_labels_and_shapes():
    gmm = zd.load("toy:gmm8", n=4000)
    assert gmm.y is not None and set(np.unique(gmm.y)) == set(range(8))
    radius = np.linalg.norm(gmm.x, axis=1)
    assert abs(np.median(radius) - 4 / 1.414) < 0.1
    spirals = zd.load("toy:spirals")
    assert spirals.y is not None and set(np.unique(spirals.y)) == {0, 1}
    board = zd.load("toy:checkerboard")
    assert board.y is None and np.abs(board.x).max() <= 4
    # Only squares where floor(x1/2) + floor(x2/2) is even hold mass.
    assert np.all((np.floor(board.x[:, 0] / 2) + np.floor(board.x[:, 1] / 2)) % 2 == 0)
    with pytest.raises(DataError, match="positive integer"):
        zd.load("toy:gmm8", n=0)


# ---------------------------------------------------------------------------------------
# Batching


def _indices(batch) -> np.ndarray:
    return np.asarray(batch["i"])


@pytest.mark.parametrize("drop_last", [True, False])
def test_batches_cover_each_example_once(drop_last):
    n, batch_size = 103, 10
    arrays = {"i": np.arange(n), "pair": (np.arange(n) * 2.0, np.zeros((n, 3)))}
    out = list(zd.batches(arrays, batch_size, seed=1, drop_last=drop_last))
    assert len(out) == (10 if drop_last else 11)
    seen = np.concatenate([_indices(b) for b in out])
    assert len(seen) == len(set(seen)) == (100 if drop_last else 103)
    for b in out:
        np.testing.assert_array_equal(b["pair"][0], b["i"] * 2.0)  # leaves stay aligned
        assert b["pair"][1].shape == (len(b["i"]), 3)


def test_batches_deterministic():
    arrays = {"i": np.arange(50)}

    def run(**kwargs):
        return np.concatenate([_indices(b) for b in zd.batches(arrays, 5, **kwargs)])

    np.testing.assert_array_equal(run(seed=3, epoch=2), run(seed=3, epoch=2))
    assert not np.array_equal(run(seed=3, epoch=2), run(seed=3, epoch=1))
    assert not np.array_equal(run(seed=3, epoch=2), run(seed=4, epoch=2))
    np.testing.assert_array_equal(run(seed=3, shuffle=False), np.arange(50))


def test_batch_at_matches_batches_across_epochs():
    arrays = (np.arange(23), jnp.arange(23) * 10)
    batch_size = 4
    steps_per_epoch = 23 // batch_size
    expected = [b for epoch in range(3) for b in zd.batches(arrays, batch_size, seed=7, epoch=epoch)]
    assert len(expected) == 3 * steps_per_epoch
    for step, batch in enumerate(expected):
        got = zd.batch_at(arrays, batch_size, step, seed=7)
        np.testing.assert_array_equal(got[0], batch[0])
        np.testing.assert_array_equal(got[1], batch[1])
    # Resuming at step 8 continues exactly where an uninterrupted run would be.
    resumed = [zd.batch_at(arrays, batch_size, t, seed=7)[0] for t in range(8, 12)]
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate([b[0] for b in expected[8:12]]))


def test_batches_errors():
    with pytest.raises(ValueError, match="leading"):
        zd.batches({"a": np.zeros(3), "b": np.zeros(4)}, 2, seed=0)
    with pytest.raises(ValueError, match="no full batch"):
        zd.batches(np.zeros(3), 4, seed=0)
    with pytest.raises(ValueError, match="positive integer"):
        zd.batch_at(np.zeros(3), 0, 0, seed=0)


# ---------------------------------------------------------------------------------------
# Binarization


def test_binarize_mean_is_p():
    p = jnp.linspace(0.0, 1.0, 11, dtype=jnp.float32)
    x = jnp.broadcast_to(p, (20000, 11))
    sample = zd.binarize(x, key=jax.random.key(0))
    assert sample.shape == x.shape and sample.dtype == jnp.float32
    assert set(np.unique(np.asarray(sample))) <= {0.0, 1.0}
    np.testing.assert_allclose(np.asarray(sample.mean(axis=0)), np.asarray(p), atol=0.02)
    np.testing.assert_array_equal(np.asarray(sample), np.asarray(zd.binarize(x, key=jax.random.key(0))))
    jitted = jax.jit(lambda x, key: zd.binarize(x, key=key))(np.asarray(x), jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(sample))


@needs_real
def test_dynamic_mnist_batches_binarize():
    data = zd.load("dynamic_mnist", "test")
    batch = zd.batch_at(data.x, 256, 0, seed=0)
    a = zd.binarize(batch, key=jax.random.key(1))
    b = zd.binarize(batch, key=jax.random.key(2))
    assert set(np.unique(np.asarray(a))) == {0.0, 1.0}
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # fresh pixels per draw
    assert abs(float(a.mean()) - float(batch.mean())) < 0.01


# ---------------------------------------------------------------------------------------
# TensorFlow Datasets


TFDS = importlib.util.find_spec("tensorflow_datasets") is not None
needs_tfds = pytest.mark.skipif(not TFDS, reason='tensorflow_datasets is not installed (pip install -e ".[tfds]")')


def test_tfds_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(_tfds, "tfds_available", lambda: False)
    with pytest.raises(DataError, match=r'pip install "zoo\[tfds\]"'):
        zd.load("mnist", source="tfds")


def _write_tfds_mnist(data_dir: Path, n: int) -> dict[str, int]:
    """The first `n` train and test examples of ``mnist.npz`` of the real data folder, written as the
    TFDS data set "mnist" under `data_dir` (array_record, in file order), with no network and no
    TensorFlow. Returns the number of examples of each split."""
    import tensorflow_datasets as tfds

    raw = np.load(REAL / "mnist.npz")
    splits = {split: (raw[f"x_{split}"][:n], raw[f"y_{split}"][:n]) for split in ("train", "test")}

    class MNIST(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.builder_cls("mnist").VERSION  # what tfds.builder("mnist", data_dir=...) looks for

        def _info(self):
            features = tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10)}
            )
            return tfds.core.DatasetInfo(
                builder=self, features=features, supervised_keys=("image", "label"), disable_shuffling=True
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in splits}

        def _generate_examples(self, split):
            x, y = splits[split]
            for i in range(len(x)):
                # A PIL image: TFDS encodes it as PNG without TensorFlow (numpy arrays go through tf.image).
                yield i, {"image": Image.fromarray(x[i]), "label": int(y[i])}

    MNIST(data_dir=os.fspath(data_dir), file_format="array_record").download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return {split: len(x) for split, (x, _) in splits.items()}


@needs_tfds
@needs_real
def test_tfds_source_returns_what_the_local_files_hold(tmp_path, getkey):
    import zoo
    from zoo.classifier import ClassifierConfig

    counts = _write_tfds_mnist(tmp_path / "tfds", 200)
    for split, n in counts.items():
        got = zd.load("mnist", split, source="tfds", data_dir=tmp_path / "tfds")
        want = zd.load("mnist", split)
        assert (got.name, got.split, got.binary) == ("mnist", split, False)
        assert got.x.dtype == want.x.dtype == np.float32 and got.y.dtype == want.y.dtype == np.int32
        np.testing.assert_array_equal(got.x, want.x[:n])
        np.testing.assert_array_equal(got.y, want.y[:n])
    # dynamic_mnist reads the same TFDS data set under its own name.
    assert zd.load("dynamic_mnist", "test", source="tfds", data_dir=tmp_path / "tfds").name == "dynamic_mnist"

    # One training step from the TFDS data.
    train = zd.load("mnist", "train", source="tfds", data_dir=tmp_path / "tfds")
    model = ClassifierConfig(channels=(4,), feature_dim=8).build(key=getkey())
    result = zoo.fit(model, model.prepare_data(train), zoo.TrainConfig(steps=1, batch_size=8), key=getkey())
    assert result.step == 1 and np.isfinite(result.history[-1]["loss"])


@needs_tfds
def test_tfds_source_without_a_prepared_set_is_a_clear_error(tmp_path):
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("with tensorflow installed, TFDS would download and prepare the data set")
    with pytest.raises(DataError, match="no prepared 'fashion_mnist'.*data_dir="):
        zd.load("fashion_mnist", "test", source="tfds", data_dir=tmp_path)