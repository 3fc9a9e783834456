"""Small image classifiers (MNIST, CIFAR-10) whose penultimate-layer features define a
Frechet distance between image sets for evaluating generative models.

    import zoo
    from zoo.classifier import classifier_frechet_distance, reference_stats
    ref = reference_stats("classifier-mnist", "mnist", split="test")  # a zoo.metrics.FeatureStats
    d = classifier_frechet_distance("classifier-mnist", images, ref)  # images (N, 28, 28, 1) in [0, 1]

This distance is NOT Inception FID and is not comparable to published FID numbers.
"""

from .._registry import ModelEntry, Preset, register_model, register_preset
from .._train import TrainConfig
from ._config import ClassifierConfig as ClassifierConfig
from ._distance import (
    classifier_features as classifier_features,
    classifier_frechet_distance as classifier_frechet_distance,
    reference_stats as reference_stats,
)
from ._model import (
    Classifier as Classifier,
    evaluation_subset as evaluation_subset,
    training_arrays as training_arrays,
)


MNIST_CONFIG = ClassifierConfig(image_shape=(28, 28, 1), channels=(16, 32, 64), feature_dim=128)
CIFAR10_CONFIG = ClassifierConfig(
    image_shape=(32, 32, 3),
    channels=(24, 48, 96),
    feature_dim=192,
    group_norm=True,
    augment=True,
    augment_pad=0,  # horizontal flips only
)

register_preset(
    Preset(
        name="classifier/mnist",
        config=MNIST_CONFIG,
        train=TrainConfig(steps=2000, batch_size=128, learning_rate=2e-3, warmup_steps=100, ema_decay=0.998,
                          log_every=100, checkpoint_every=500),
        dataset="mnist",
        tags=("classifier", "evaluation", "mnist"),
        summary="3-stage CNN MNIST classifier; its 128-d penultimate features give the MNIST Frechet distance",
    )
)
register_preset(
    Preset(
        name="classifier/cifar10",
        config=CIFAR10_CONFIG,
        train=TrainConfig(steps=2000, batch_size=128, learning_rate=2e-3, warmup_steps=200, ema_decay=0.998,
                          log_every=50, checkpoint_every=250),
        dataset="cifar10",
        tags=("classifier", "evaluation", "cifar10"),
        summary="3-stage CNN (GroupNorm, flips) CIFAR-10 classifier; 192-d features for a Frechet distance",
    )
)
register_model(
    ModelEntry(
        name="classifier-mnist",
        family="classifier",
        dataset="mnist",
        summary="small CNN MNIST classifier: the feature space of the MNIST Frechet distance (not Inception FID)",
        hub_repo="stein-zoo/classifier-mnist",
        preset="classifier/mnist",
    )
)
register_model(
    ModelEntry(
        name="classifier-cifar10",
        family="classifier",
        dataset="cifar10",
        summary="small CNN CIFAR-10 classifier: the feature space of the CIFAR-10 Frechet distance (not Inception FID)",
        hub_repo="stein-zoo/classifier-cifar10",
        preset="classifier/cifar10",
    )
)
