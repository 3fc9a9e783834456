"""`zoo.load` resolution: registered names, bundled checkpoints, ``hf://`` URIs, folders."""

import equinox as eqx
import jax
import numpy as np
import pytest

import zoo
from zoo._registry import _MODELS
from zoo.toy import ToyScoreConfig


pytestmark = pytest.mark.usefixtures("hub_env")


def _leaves(m):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b), strict=True))


@pytest.fixture
def trained(tmp_path):
    model = ToyScoreConfig(width=8, depth=1).build(key=jax.random.key(0))
    data = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    res = zoo.train(model, data, zoo.TrainConfig(steps=3, batch_size=16, ema_decay=0.5), key=jax.random.key(1))
    path = zoo.save(res.model, tmp_path / "toy", ema=res.ema, training=res.info)
    return res, path


def test_hub_round_trip_pinned_revision_and_offline(trained, hub, tmp_path, monkeypatch):
    from zoo._hub import push

    res, path = trained
    sha1 = push(path, "zoo-tests/roundtrip")
    other = jax.tree.map(lambda x: x + 1 if eqx.is_inexact_array(x) else x, res.model)
    zoo.save(other, path, overwrite=True)
    sha2 = push(path, "zoo-tests/roundtrip")
    assert sha1 != sha2
    # Clean cache: the pinned first revision gives the first weights, bit for bit.
    first = zoo.load_bundle(f"hf://zoo-tests/roundtrip@{sha1}")
    assert _same(first.model, res.model) and _same(first.ema, res.ema)
    assert _same(zoo.load("hf://zoo-tests/roundtrip", weights="raw"), other)
    # Offline: served from the cache with no request to the server.
    hub.clear_log()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = zoo.load(f"hf://zoo-tests/roundtrip@{sha1}", weights="raw")
    assert _same(again, res.model)
    assert hub.requests == []
    with pytest.raises(zoo.HubError, match="offline"):
        zoo.load("hf://zoo-tests/never-downloaded")


def test_missing_repo_and_revision(trained):
    from zoo._hub import push

    _, path = trained
    with pytest.raises(zoo.HubError, match="zoo-tests/does-not-exist"):
        zoo.load("hf://zoo-tests/does-not-exist")
    push(path, "zoo-tests/revs")
    with pytest.raises(zoo.HubError, match="revision"):
        zoo.load("hf://zoo-tests/revs@" + "0" * 40)
    with pytest.raises(zoo.HubError, match="hf://ORG/REPO"):
        zoo.load("hf://just-a-name")


def test_registered_name_prefers_bundled_then_pinned_hub(trained, tmp_path, monkeypatch):
    from zoo._hub import push

    res, path = trained
    sha = push(path, "zoo-tests/registered")
    entry = zoo.ModelEntry(
        name="toy-test-entry",
        family="toy",
        dataset="toy:gmm8",
        summary="test",
        hub_repo="zoo-tests/registered",
        revision=sha,
    )
    monkeypatch.setitem(_MODELS, entry.name, entry)
    bundled = tmp_path / "bundled"
    monkeypatch.setenv("ZOO_CHECKPOINTS_DIR", str(bundled))
    # Not bundled: downloaded from the Hub at the pinned revision.
    assert _same(zoo.load("toy-test-entry", weights="raw"), res.model)
    assert "zoo-tests" in str(zoo.resolve("toy-test-entry"))
    # Bundled: used as is, even offline.
    zoo.save(res.ema, bundled / "toy-test-entry")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert zoo.resolve("toy-test-entry") == bundled / "toy-test-entry"
    assert _same(zoo.load("toy-test-entry"), res.ema)


def test_folder_and_unknown_names(trained, tmp_path):
    _, path = trained
    assert _same(zoo.load(str(path)), zoo.load(path))
    with pytest.raises(zoo.UnknownModelError, match="Did you mean 'toy-gmm8'"):
        zoo.load("toy-gmm9")
    with pytest.raises(zoo.CheckpointError, match="no checkpoint folder"):
        zoo.load(str(tmp_path / "nowhere"))


def test_list_models_wildcards():
    assert "toy-gmm8" in zoo.list_models()
    assert zoo.list_models("toy-*") == [n for n in zoo.list_models() if n.startswith("toy-")]
    assert zoo.list_models("no-such-*") == []
    assert zoo.model_info("toy-gmm8").family == "toy"


def test_bundled_default_loads_and_samples():
    model = zoo.load("toy-gmm8")
    x = eqx.filter_jit(lambda m, k: m.sample(256, key=k))(model, jax.random.key(0))
    assert x.shape == (256, 2) and bool(np.isfinite(np.asarray(x)).all())
    # Samples land near the 8 modes on the ring of radius ~2.8 (with sigma 0.1 noise).
    r = np.linalg.norm(np.asarray(x), axis=1)
    assert 2.0 < np.median(r) < 3.6
