"""The feature classifiers: training, features, the classifier Frechet distance, bundled checkpoints."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo._registry import bundled_path
from zoo.classifier import (
    Classifier,
    ClassifierConfig,
    classifier_features,
    classifier_frechet_distance,
    evaluation_subset,
    reference_stats,
)
from zoo.metrics import FeatureStats, feature_stats, frechet_distance


TINY = ClassifierConfig(image_shape=(12, 12, 1), num_classes=4, channels=(4, 8), feature_dim=16)


def _quadrants(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 4-class images: a bright 6x6 square in quadrant `label`, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(np.int32)
    x = 0.2 * rng.random((n, 12, 12, 1)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, 6 * r : 6 * r + 6, 6 * c : 6 * c + 6, 0] += 0.7
    return x, y


def test_tiny_training_raises_accuracy(getkey):
    x, y = _quadrants(512, 0)
    xt, yt = _quadrants(256, 1)
    model = TINY.build(key=getkey())
    before = zoo.evaluate(model, (xt, yt), key=getkey())
    config = zoo.TrainConfig(steps=60, batch_size=32, learning_rate=1e-2, log_every=20)
    result = zoo.train(model, (x, y), config, key=getkey(), progress=False)
    after = zoo.evaluate(result.model, (xt, yt), key=getkey())
    assert set(after) == {"accuracy", "loss"}
    assert before["accuracy"] < 0.5
    assert after["accuracy"] > 0.9
    assert after["loss"] < before["loss"]
    assert "accuracy" in result.history[-1]


def test_features_and_logits_shapes(getkey):
    model = TINY.build(key=getkey())
    x, _ = _quadrants(5, 0)
    assert model.features(jnp.asarray(x[0])).shape == (16,)
    assert model(jnp.asarray(x[0])).shape == (4,)
    assert jax.vmap(model.features)(jnp.asarray(x)).shape == (5, 16)
    assert classifier_features(model, x, batch_size=2).shape == (5, 16)
    # the padded last batch gives the same features as one batch
    np.testing.assert_allclose(classifier_features(model, x, batch_size=2), classifier_features(model, x), atol=1e-5)
    assert np.all(classifier_features(model, x) >= 0)  # post-ReLU
    with pytest.raises(zoo.ZooError, match="shape"):
        model.features(jnp.zeros((28, 28, 1)))


def test_features_do_not_depend_on_the_batch_size_and_the_distance_is_the_shared_pipeline(getkey):
    model = TINY.build(key=getkey())
    x, _ = _quadrants(23, 0)
    whole = classifier_features(model, x, batch_size=23)  # one batch
    for batch_size in (7, 500):  # 7: the last of 4 batches is padded and the padding dropped; 500: one batch
        np.testing.assert_allclose(classifier_features(model, x, batch_size=batch_size), whole, atol=1e-5)
    assert classifier_features(model, x[:0]).shape == (0, 16)
    # features -> FeatureStats -> frechet_distance, exactly as zoo.metrics does for Inception FID
    x2, _ = _quadrants(30, 1)
    stats_a, stats_b = feature_stats(whole), feature_stats(classifier_features(model, x2))
    assert classifier_frechet_distance(model, x, x2, batch_size=7) == pytest.approx(
        frechet_distance(stats_a, stats_b), rel=1e-6
    )
    assert classifier_frechet_distance(model, stats_a, stats_b) == frechet_distance(stats_a, stats_b)


def test_classifiers_do_not_sample(getkey):
    model = TINY.build(key=getkey())
    with pytest.raises(zoo.ZooError, match="do not sample"):
        zoo.sample(model, 4, key=getkey())


def test_config_validation():
    with pytest.raises(zoo.ConfigError):
        ClassifierConfig(image_shape=(4, 4, 1), channels=(8, 8, 8))
    with pytest.raises(zoo.ConfigError):
        ClassifierConfig(num_classes=1)


def test_distance_zero_on_itself_and_grows_with_noise(getkey):
    model = TINY.build(key=getkey())
    x, _ = _quadrants(400, 0)
    assert classifier_frechet_distance(model, x, x) == pytest.approx(0.0, abs=1e-8)
    noise = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    d = [classifier_frechet_distance(model, x, np.clip(x + s * noise, 0, 1)) for s in (0.05, 0.15, 0.4)]
    assert 0 < d[0] < d[1] < d[2]
    # an independent draw of the same distribution is much closer than a heavily noised one
    x2, _ = _quadrants(400, 3)
    assert classifier_frechet_distance(model, x, x2) < d[2]
    # precomputed stats give the same value; uint8 images are read as /255
    ref = reference_stats(model, x2)
    assert isinstance(ref, FeatureStats) and ref.count == 400 and ref.sigma.dtype == np.float64
    assert classifier_frechet_distance(model, x, ref) == pytest.approx(classifier_frechet_distance(model, x, x2))
    u8 = np.round(x * 255).astype(np.uint8)
    assert classifier_frechet_distance(model, u8, u8.astype(np.float32) / 255) == pytest.approx(0.0, abs=1e-8)


def test_distance_rejects_bad_input(getkey):
    model = TINY.build(key=getkey())
    x, _ = _quadrants(10, 0)
    with pytest.raises(zoo.ZooError, match=r"\[0, 1\]"):
        classifier_frechet_distance(model, 2.0 * x - 1.5, x)
    with pytest.raises(zoo.ZooError, match="NHWC"):
        classifier_frechet_distance(model, x[..., 0], x)
    other = ClassifierConfig(image_shape=(12, 12, 1), num_classes=4, channels=(4,), feature_dim=8).build(key=getkey())
    with pytest.raises(zoo.ZooError, match="do not come from this classifier"):
        classifier_frechet_distance(model, x, reference_stats(other, x))


def _check_bundled(name: str, dataset: str) -> None:
    path = bundled_path(name)
    if path is None:
        pytest.skip(f"no bundled checkpoint checkpoints/{name}")
    try:
        test = zoo.data.load(dataset, "test")
    except zoo.DataError as e:
        pytest.skip(f"{dataset} not available: {e}")
    meta = json.loads((path / "config.json").read_text())
    recorded = {m["name"]: m["value"] for m in meta["metrics"]}["test_accuracy_subset1000"]
    model = zoo.load(name)
    assert isinstance(model, Classifier)
    idx = evaluation_subset(len(test.x))
    measured = model.evaluate((test.x[idx], test.y[idx]))["accuracy"]
    assert measured == pytest.approx(recorded, abs=0.003)


def test_bundled_mnist_classifier_reproduces_its_accuracy():
    import zoo.data  # noqa: F401

    _check_bundled("classifier-mnist", "mnist")
    # by name, with a data set name and a fixed subset
    ref = reference_stats("classifier-mnist", "mnist", split="test", n=500)
    assert ref.count == 500 and ref.mu.shape == (128,)
    test = zoo.data.load("mnist", "test").x
    subset = test[np.random.default_rng(0).permutation(len(test))[:500]]
    assert classifier_frechet_distance("classifier-mnist", subset, ref) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_bundled_cifar10_classifier_reproduces_its_accuracy():
    import zoo.data  # noqa: F401

    _check_bundled("classifier-cifar10", "cifar10")
