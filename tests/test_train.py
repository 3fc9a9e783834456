import json

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import zoo
from zoo._optim import get_ema, make_optimizer, register_optimizer
from zoo._train import data_mesh
from zoo.data._batching import batch_indices
from zoo.toy import ToyScoreConfig


def _leaves(m):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array))]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(512, 2)) * np.array([1.0, 0.3]) + 1.0).astype(np.float32)


CONFIG = ToyScoreConfig(width=16, depth=1, sigma=0.3)
TRAIN = zoo.TrainConfig(steps=12, batch_size=32, learning_rate=1e-2, ema_decay=0.9, log_every=4, checkpoint_every=5)


def test_training_lowers_the_loss(data):
    model = CONFIG.build(key=jax.random.key(0))
    res = zoo.train(model, data, TRAIN.replace(steps=200, log_every=50), key=jax.random.key(1))
    losses = [row["loss"] for row in res.history]
    # The DSM loss is bounded below by its value at the exact score of the noised Gaussian:
    # 1/2 sum_i (1 - sigma^2 / (var_i + sigma^2)).
    var, s2 = np.array([1.0, 0.09]), CONFIG.sigma**2
    floor = 0.5 * np.sum(1 - s2 / (var + s2))
    assert losses[-1] - floor < 0.3 * (losses[0] - floor)
    assert res.info["steps"] == 200 and "CPU" in res.info["hardware"]


def test_resume_matches_uninterrupted_run(data, tmp_path):
    model = CONFIG.build(key=jax.random.key(0))
    full = zoo.train(model, data, TRAIN, key=jax.random.key(1), workdir=tmp_path / "a")
    # "Interrupted" after 5 steps (a checkpoint is written at step 5), then resumed.
    zoo.train(model, data, TRAIN.replace(steps=5), key=jax.random.key(1), workdir=tmp_path / "b")
    resumed = zoo.train(model, data, TRAIN, key=jax.random.key(1), workdir=tmp_path / "b")
    assert resumed.info["resumed_from"] == 5
    for x, y in zip(_leaves(full.model) + _leaves(full.ema), _leaves(resumed.model) + _leaves(resumed.ema)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 5, 8, 12]


def test_resume_refuses_changed_settings(data, tmp_path):
    model = CONFIG.build(key=jax.random.key(0))
    zoo.train(model, data, TRAIN.replace(steps=5), key=jax.random.key(1), workdir=tmp_path)
    with pytest.raises(zoo.ConfigError, match="learning_rate: the run has 0.01, this call 0.5"):
        zoo.train(model, data, TRAIN.replace(learning_rate=0.5), key=jax.random.key(1), workdir=tmp_path)


@pytest.mark.all_devices
def test_four_devices_follow_one_device(data):
    assert jax.device_count() == 4
    model = CONFIG.build(key=jax.random.key(0))
    one = zoo.train(model, data, TRAIN, key=jax.random.key(1), mesh=data_mesh(jax.devices()[:1]))
    four = zoo.train(model, data, TRAIN, key=jax.random.key(1), mesh=data_mesh())
    for x, y in zip(_leaves(one.model), _leaves(four.model)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(zoo.ConfigError, match="divisible"):
        zoo.train(model, data, TRAIN.replace(batch_size=30), key=jax.random.key(1))


def test_ema_is_the_moving_average_of_the_weights(data):
    model = CONFIG.build(key=jax.random.key(0))
    seen = []
    cfg = TRAIN.replace(steps=3, log_every=1, ema_decay=0.5)
    # Replay the three steps by hand to get the parameter sequence.
    res = zoo.train(model, data, cfg, key=jax.random.key(1), callback=lambda s, row: seen.append(s))
    assert seen == [1, 2, 3]
    p = [_leaves(model)]
    for steps in (1, 2, 3):
        p.append(_leaves(zoo.train(model, data, cfg.replace(steps=steps), key=jax.random.key(1)).model))
    expected = p[0]
    for t in (1, 2, 3):
        expected = [0.5 * e + 0.5 * x for e, x in zip(expected, p[t])]
    for e, got in zip(expected, _leaves(res.ema)):
        np.testing.assert_allclose(e, got, rtol=1e-6)


def test_fine_tuning_continues_from_loaded_weights(data, tmp_path):
    model = CONFIG.build(key=jax.random.key(0))
    first = zoo.train(model, data, TRAIN.replace(steps=100), key=jax.random.key(1))
    path = zoo.save(first.model, tmp_path / "ck", ema=first.ema)
    loaded = zoo.load_bundle(path)
    fresh = CONFIG.build(key=jax.random.key(0))
    batch = data[:256]
    loss_fresh = float(fresh.loss(batch, None, key=jax.random.key(3))[0])
    loss_loaded = float(loaded.model.loss(batch, None, key=jax.random.key(3))[0])
    assert loss_loaded < loss_fresh
    tuned = zoo.train(loaded.model, data, TRAIN.replace(steps=10), key=jax.random.key(2), ema=loaded.ema)
    assert tuned.history[0]["loss"] < 0.9 * loss_fresh


def test_batch_indices_cover_each_epoch_once():
    n, b = 100, 10
    first = np.concatenate([batch_indices(n, b, s, seed=3) for s in range(10)])
    assert sorted(first) == list(range(n))
    second = np.concatenate([batch_indices(n, b, s, seed=3) for s in range(10, 20)])
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(batch_indices(n, b, 13, seed=3), batch_indices(n, b, 13, seed=3))
    with pytest.raises(ValueError, match="exceeds"):
        batch_indices(5, 10, 0, seed=0)


def test_batch_order_is_the_driver_s_documented_permutation():
    # Workdirs written by earlier versions resume with the same data order: epoch e is
    # default_rng([seed, e]).permutation(n), cut into consecutive batches.
    n, b, seed = 100, 30, 5
    for step in (0, 2, 3, 7):
        epoch, i = divmod(step, n // b)
        expected = np.random.default_rng([seed, epoch]).permutation(n)[i * b : (i + 1) * b]
        np.testing.assert_array_equal(batch_indices(n, b, step, seed=seed), expected)


def test_batch_size_larger_than_the_data_is_refused(data):
    model = CONFIG.build(key=jax.random.key(0))
    with pytest.raises(zoo.ConfigError, match="exceeds the 512"):
        zoo.train(model, data, TRAIN.replace(batch_size=1024), key=jax.random.key(1))


def test_optimizers_by_name():
    for name in ("adam", "adamw", "sgd"):
        tx = make_optimizer(TRAIN.replace(optimizer=name, ema_decay=None))
        params = {"w": np.ones(2, np.float32)}
        updates, _ = tx.update({"w": np.ones(2, np.float32)}, tx.init(params), params)
        assert np.all(np.asarray(updates["w"]) < 0)
    with pytest.raises(zoo.ConfigError, match="'adan'.*adam, adamw, sgd"):
        TRAIN.replace(optimizer="adan")
    with pytest.raises(ValueError, match="already registered"):
        register_optimizer("adam")(lambda lr, config: optax.sgd(lr))


def test_ema_params_transformation():
    tx = optax.chain(optax.sgd(1.0), zoo.ema_params(0.9))
    params = {"w": np.array([1.0], np.float32)}
    state = tx.init(params)
    updates, state = tx.update({"w": np.array([1.0], np.float32)}, state, params)
    np.testing.assert_allclose(updates["w"], [-1.0])
    np.testing.assert_allclose(get_ema(state)["w"], [0.9 * 1.0 + 0.1 * 0.0])
    assert get_ema(optax.sgd(1.0).init(params)) is None
    with pytest.raises(ValueError, match="decay"):
        zoo.ema_params(1.0)


def test_resume_in_another_device_layout(data, tmp_path):
    model = CONFIG.build(key=jax.random.key(0))
    full = zoo.train(model, data, TRAIN, key=jax.random.key(1), mesh=data_mesh())
    # Interrupted on 4 devices, resumed on 1: the Orbax training checkpoint restores into the new layout.
    zoo.train(model, data, TRAIN.replace(steps=5), key=jax.random.key(1), workdir=tmp_path, mesh=data_mesh())
    resumed = zoo.train(model, data, TRAIN, key=jax.random.key(1), workdir=tmp_path, mesh=data_mesh(jax.devices()[:1]))
    assert resumed.info["resumed_from"] == 5
    for x, y in zip(_leaves(full.model), _leaves(resumed.model)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _meta_file(workdir, step):
    return workdir / "checkpoints" / str(step) / "meta" / "metadata"  # Orbax's JsonSave file


def _checkpoint_meta(workdir, step):
    return json.loads(_meta_file(workdir, step).read_text())


def test_wall_time_adds_up_across_resumes(data, tmp_path):
    model = CONFIG.build(key=jax.random.key(0))
    first = zoo.train(model, data, TRAIN.replace(steps=2), key=jax.random.key(1), workdir=tmp_path)
    recorded = _checkpoint_meta(tmp_path, 2)["wall_time_s"]
    assert 0 < recorded <= first.info["wall_time_s"] + 0.05
    assert first.info["wall_time_s"] == first.info["wall_time_s_this_run"]
    second = zoo.train(model, data, TRAIN.replace(steps=4), key=jax.random.key(1), workdir=tmp_path)
    assert second.info["resumed_from"] == 2
    assert second.info["wall_time_s"] >= first.info["wall_time_s"]
    assert second.info["wall_time_s"] == pytest.approx(recorded + second.info["wall_time_s_this_run"], abs=0.11)
    assert _checkpoint_meta(tmp_path, 4)["wall_time_s"] > recorded
    assert "wall_time_estimated" not in second.info


def test_wall_time_of_a_workdir_without_a_record_is_estimated_from_the_log(data, tmp_path):
    # Workdirs written before the driver recorded wall time: the metrics log gives an estimate.
    model = CONFIG.build(key=jax.random.key(0))
    zoo.train(model, data, TRAIN.replace(steps=5), key=jax.random.key(1), workdir=tmp_path)
    meta_file = _meta_file(tmp_path, 5)
    meta = json.loads(meta_file.read_text())
    del meta["wall_time_s"], meta["wall_time_estimated"]
    meta_file.write_text(json.dumps(meta))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 5]
    estimate = 4 / rows[0]["steps_per_s"] + 1 / rows[1]["steps_per_s"]
    resumed = zoo.train(model, data, TRAIN.replace(steps=6), key=jax.random.key(1), workdir=tmp_path)
    assert resumed.info["wall_time_estimated"] is True
    assert resumed.info["wall_time_s"] == pytest.approx(estimate + resumed.info["wall_time_s_this_run"], abs=0.11)


def test_optimizer_passed_as_an_object(getkey):
    """An optax object replaces the named optimiser; the config's EMA is still appended."""
    model = ToyScoreConfig(width=8, depth=1).build(key=getkey())
    data = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    cfg = zoo.TrainConfig(steps=3, batch_size=16, ema_decay=0.5, log_every=1)

    def arrays(m):
        return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(m, eqx.is_array))]

    frozen = zoo.fit(model, data, cfg, key=getkey(), progress=False, optimizer=optax.sgd(0.0))
    assert all(np.array_equal(a, b) for a, b in zip(arrays(model), arrays(frozen.model)))
    assert frozen.ema is not None
    moved = zoo.fit(model, data, cfg, key=getkey(), progress=False, optimizer=optax.sgd(0.1))
    assert not all(np.array_equal(a, b) for a, b in zip(arrays(model), arrays(moved.model)))


def test_leaf_scales_are_the_same_adam_at_each_leafs_rate():
    """Per-parameter rates (`AbstractModel.learning_rates` -> `make_optimizer(leaf_scales=)`): with Adam,
    each scaled leaf follows exactly Adam at its own rate, i.e. `optax.multi_transform` of two Adams."""
    params = {"a": np.ones((3,), np.float32), "b": {"c": np.zeros((2, 2), np.float32), "d": np.ones((), np.float32)}}
    rates = {"a": 3e-4, "b": {"c": 1e-3, "d": 3e-4}}
    tc = zoo.TrainConfig(steps=1, batch_size=1, learning_rate=3e-4, eps=1e-7)
    scales = tuple(r / tc.learning_rate for r in jax.tree.leaves(rates))
    ours = make_optimizer(tc, leaf_scales=scales)
    labels = {"a": "run", "b": {"c": "own", "d": "run"}}
    ref = optax.multi_transform({"run": optax.adam(3e-4, eps=1e-7), "own": optax.adam(1e-3, eps=1e-7)}, labels)
    # The scaling adds no arrays to the optimiser state: a saved state restores into it.
    assert len(jax.tree.leaves(ours.init(params))) == len(jax.tree.leaves(make_optimizer(tc).init(params)))
    p1, s1, p2, s2 = params, ours.init(params), params, ref.init(params)
    rng = np.random.default_rng(0)
    for _ in range(5):
        g = jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), params)
        u1, s1 = ours.update(g, s1, p1)
        u2, s2 = ref.update(g, s2, p2)
        p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    for x, y in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
    assert not np.allclose(p1["b"]["c"], 0.0)
    with pytest.raises(ValueError, match="2 scales for 3"):
        make_optimizer(tc, leaf_scales=(1.0, 2.0)).init(params)
