import json
import os
import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo._checkpoint import FORMAT_VERSION
from zoo.toy import ToyScoreConfig


def _tree_equal(a, b):
    la = jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(la, lb)
    )


@pytest.fixture
def model(getkey):
    return ToyScoreConfig(width=8, depth=1).build(key=getkey())


def _perturbed(m, key):
    return jax.tree.map(lambda x: x + jax.random.normal(key, x.shape) if eqx.is_inexact_array(x) else x, m)


def test_round_trip_bit_exact_with_ema(model, getkey, tmp_path):
    ema = _perturbed(model, getkey())
    path = zoo.save(model, tmp_path / "ck", ema=ema, metrics=[{"name": "m", "value": 1.5, "command": "x"}])
    bundle = zoo.load_bundle(path)
    assert _tree_equal(bundle.model, model)
    assert _tree_equal(bundle.ema, ema)
    assert not _tree_equal(bundle.model, bundle.ema)
    assert bundle.config == model.config
    assert _tree_equal(zoo.load(path), ema)  # EMA weights by default
    assert _tree_equal(zoo.load(path, weights="raw"), model)
    assert set(os.listdir(path)) == {"config.json", "weights", "README.md"}
    assert not (path / "weights" / "commit_success.txt").exists()  # Orbax's note of the temp path it wrote to
    meta = json.loads((path / "config.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION and meta["family"] == "toy"
    assert meta["metrics"][0]["command"] == "x"


def test_loaded_model_is_jittable(model, getkey, tmp_path):
    loaded = zoo.load(zoo.save(model, tmp_path / "ck"))
    x = jnp.ones((3, 2))
    out = eqx.filter_jit(lambda m, x: jax.vmap(m.score)(x))(loaded, x)
    np.testing.assert_array_equal(out, jax.vmap(model.score)(x))


def test_no_ema_means_raw(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    assert _tree_equal(zoo.load(path), model)
    with pytest.raises(zoo.CheckpointError, match="no EMA"):
        zoo.load(path, weights="ema")


def test_refuses_to_overwrite_unless_asked(model, getkey, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    with pytest.raises(zoo.CheckpointError, match="overwrite=True"):
        zoo.save(model, path)
    other = _perturbed(model, getkey())
    zoo.save(other, path, overwrite=True)
    assert _tree_equal(zoo.load(path), other)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp or backup left behind


def test_interrupted_save_leaves_nothing_that_loads(model, tmp_path, monkeypatch):
    import zoo._checkpoint as ck

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ck, "render_card", boom)  # dies after the weights were written
    with pytest.raises(KeyboardInterrupt):
        zoo.save(model, tmp_path / "ck")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_checkpoint(model, getkey, tmp_path, monkeypatch):
    import zoo._leaves

    path = zoo.save(model, tmp_path / "ck")
    monkeypatch.setattr(zoo._leaves, "write", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        zoo.save(_perturbed(model, getkey()), path, overwrite=True)
    assert _tree_equal(zoo.load(path), model)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def _weights_files(path):
    return sorted(p for p in (path / "weights").rglob("*") if p.is_file())


def test_truncated_array_file_is_reported(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    victim = max(_weights_files(path), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(zoo.CheckpointError, match=f"{victim.name}.*corrupt or truncated"):
        zoo.load(path)


def test_missing_weights_file_is_reported(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    victim = _weights_files(path)[0]
    victim.unlink()
    with pytest.raises(zoo.CheckpointError, match="missing"):
        zoo.load(path)


@pytest.mark.parametrize("missing", ["config.json", "weights"])
def test_missing_parts(model, tmp_path, missing):
    path = zoo.save(model, tmp_path / "ck")
    target = path / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(zoo.CheckpointError, match=missing):
        zoo.load(path)


def _edit_config(path, fn):
    meta = json.loads((path / "config.json").read_text())
    fn(meta)
    (path / "config.json").write_text(json.dumps(meta))


def test_shape_mismatch_names_the_leaf(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    _edit_config(path, lambda m: m["config"].update(width=16))
    with pytest.raises(zoo.CheckpointError, match=r"layers\[0\]\.weight.*do not match"):
        zoo.load(path)


def test_dtype_mismatch(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    _edit_config(path, lambda m: m["leaves"][0].update(dtype="float16"))
    with pytest.raises(zoo.CheckpointError, match="float16"):
        zoo.load(path)


def test_unknown_family_and_newer_format(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    _edit_config(path, lambda m: m.update(config_type="toy.ToyScoreConfg"))
    with pytest.raises(zoo.UnknownModelError, match="Did you mean.*toy.ToyScoreConfig"):
        zoo.load(path)
    _edit_config(path, lambda m: m.update(config_type="toy.ToyScoreConfig", format_version=FORMAT_VERSION + 1))
    with pytest.raises(zoo.CheckpointError, match="newer.*upgrade"):
        zoo.load(path)


def test_garbage_config_json(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    (path / "config.json").write_text("{not json")
    with pytest.raises(zoo.CheckpointError, match="not valid JSON"):
        zoo.load(path)


def test_unknown_config_field(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck")
    _edit_config(path, lambda m: m["config"].update(colour="red"))
    with pytest.raises(zoo.ConfigError, match="colour"):
        zoo.load(path)


def test_annotate_adds_metrics_and_keeps_weights(model, tmp_path):
    path = zoo.save(model, tmp_path / "ck", metrics=[{"name": "a", "value": 1.0, "command": "c1"}])
    before = {p: p.read_bytes() for p in _weights_files(path)}
    zoo.annotate(
        path, metrics=[{"name": "a", "value": 2.0, "command": "c2"}, {"name": "b", "value": 3.0, "command": "c3"}]
    )
    meta = json.loads((path / "config.json").read_text())
    assert {m["name"]: m["value"] for m in meta["metrics"]} == {"a": 2.0, "b": 3.0}
    assert {p: p.read_bytes() for p in _weights_files(path)} == before
    assert "c3" in (path / "README.md").read_text()
    with pytest.raises(ValueError, match="command"):
        zoo.annotate(path, metrics=[{"name": "x", "value": 1.0}])


def test_restore_into_another_device_layout(model, getkey, tmp_path):
    from jax.sharding import NamedSharding, PartitionSpec as P

    assert jax.device_count() == 4
    mesh = jax.make_mesh((4,), ("data",))
    sharded = eqx.filter_shard(model, NamedSharding(mesh, P()))
    path = zoo.save(sharded, tmp_path / "ck")  # written from a 4-device layout
    single = zoo.load(path)  # restored onto one device
    assert _tree_equal(single, model)
    assert all(len(x.sharding.device_set) == 1 for x in jax.tree_util.tree_leaves(eqx.filter(single, eqx.is_array)))
    replicated = zoo.load(path, sharding=NamedSharding(mesh, P()))
    assert all(len(x.sharding.device_set) == 4 for x in jax.tree_util.tree_leaves(eqx.filter(replicated, eqx.is_array)))
    assert _tree_equal(replicated, model)


def test_annotate_changes_config_fields_that_keep_the_weights(model, tmp_path):
    """`annotate(config=...)` re-tunes settings the weights do not depend on (here the sampler's step count);
    a change that alters the arrays (the width) is refused and leaves the checkpoint as it was."""
    path = zoo.save(model, tmp_path / "ck")
    before = {p: p.read_bytes() for p in _weights_files(path)}
    zoo.annotate(path, config={"langevin_steps": 7})
    loaded = zoo.load(path)
    assert loaded.config.langevin_steps == 7 and loaded.config.replace(langevin_steps=500) == model.config
    assert _tree_equal(eqx.filter(loaded, eqx.is_array), eqx.filter(model, eqx.is_array))
    assert {p: p.read_bytes() for p in _weights_files(path)} == before
    meta = (path / "config.json").read_text()
    with pytest.raises(zoo.CheckpointError, match="weights do not match the config"):
        zoo.annotate(path, config={"width": 9})
    with pytest.raises(zoo.ConfigError, match="no field"):
        zoo.annotate(path, config={"widht": 9})
    assert (path / "config.json").read_text() == meta and zoo.load(path).config.width == 8


def test_annotate_keeps_a_hand_written_card(model, tmp_path):
    body = "# my model\n\nHand-written intro.\n\n<!-- zoo:facts -->\n\nHand-written outro.\n"
    path = zoo.save(model, tmp_path / "ck", card_body=body, metrics=[{"name": "a", "value": 1.0, "command": "c1"}])
    zoo.annotate(path, metrics=[{"name": "b", "value": 2.0, "command": "c2"}])
    text = (path / "README.md").read_text()
    assert "Hand-written intro." in text and "Hand-written outro." in text
    assert text.index("intro") < text.index("`c2`") < text.index("outro")
    assert text.count("## Metrics") == 1 and "`c1`" in text
