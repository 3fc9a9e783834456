"""A small image classifier (CNN) whose penultimate layer is a feature space for
Frechet distances between image sets.

Classifiers are not generative models: they train with the shared driver (the loss is
cross-entropy), evaluate to test accuracy and loss, and refuse to sample.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._conv import jit_options
from .._errors import DataError, ZooError
from .._model import AbstractImageModel, all_inexact, model_for
from .._trainer import AbstractTrainer, GradientTrainer
from ..samplers import AbstractSampler
from ._config import ClassifierConfig


def _groups(c: int) -> int:
    g = min(8, c)
    while c % g:
        g -= 1
    return g


@model_for(ClassifierConfig)
class Classifier(AbstractImageModel):
    """``classifier(x)``: logits of one image ``x`` (H, W, C) in [0, 1];
    ``classifier.features(x)``: its penultimate-layer (feature) vector."""

    config: ClassifierConfig = eqx.field(static=True)
    convs: tuple[eqx.nn.Conv2d, ...]
    norms: tuple[eqx.nn.GroupNorm | None, ...]
    dense: eqx.nn.Linear
    head: eqx.nn.Linear
    trainer: ClassVar[AbstractTrainer] = GradientTrainer()
    convolutional: ClassVar[bool] = True  # `compiler_options`: YNNPACK for reductions only (zoo._conv)

    def __init__(self, config: ClassifierConfig, *, key: PRNGKeyArray):
        self.config = config
        h, w, c_in = config.image_shape
        n_conv = len(config.channels) * config.convs_per_stage
        keys = jax.random.split(key, n_conv + 2)
        convs, norms = [], []
        c = c_in
        for stage, c_out in enumerate(config.channels):
            for j in range(config.convs_per_stage):
                k = keys[stage * config.convs_per_stage + j]
                convs.append(eqx.nn.Conv2d(c, c_out, 3, padding=1, key=k))
                norms.append(eqx.nn.GroupNorm(_groups(c_out), c_out) if config.group_norm else None)
                c = c_out
            h, w = h // 2, w // 2
        self.convs = tuple(convs)
        self.norms = tuple(norms)
        self.dense = eqx.nn.Linear(c * h * w, config.feature_dim, key=keys[-2])
        self.head = eqx.nn.Linear(config.feature_dim, config.num_classes, key=keys[-1])

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def _check(self, x: Array) -> None:
        if x.shape != self.config.image_shape:
            raise ZooError(
                f"this classifier takes one image of shape {self.config.image_shape} (H, W, C) in [0, 1], "
                f"got shape {x.shape}; vmap over a batch"
            )

    def features(self, x: Float[Array, "h w c"]) -> Float[Array, " feature_dim"]:
        """The penultimate-layer features (after ReLU) of one image in [0, 1]."""
        self._check(x)
        h = jnp.transpose(2.0 * x - 1.0, (2, 0, 1))  # NHWC example -> CHW for eqx.nn.Conv2d
        per = self.config.convs_per_stage
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = conv(h)
            if norm is not None:
                h = norm(h)
            h = jax.nn.relu(h)
            if (i + 1) % per == 0:
                h = eqx.nn.MaxPool2d(2, 2)(h)
        return jax.nn.relu(self.dense(h.reshape(-1)))

    def __call__(self, x: Float[Array, "h w c"]) -> Float[Array, " num_classes"]:
        """Class logits of one image in [0, 1]."""
        return self.head(self.features(x))

    def _augment(self, x: Float[Array, "h w c"], key: PRNGKeyArray) -> Float[Array, "h w c"]:
        kf, ks = jax.random.split(key)
        x = jnp.where(jax.random.bernoulli(kf), x[:, ::-1, :], x)
        p = self.config.augment_pad
        if p > 0:
            h, w, _ = x.shape
            padded = jnp.pad(x, ((p, p), (p, p), (0, 0)))
            dy, dx = jax.random.randint(ks, (2,), 0, 2 * p + 1)
            x = jax.lax.dynamic_slice(padded, (dy, dx, 0), x.shape)
        return x

    def _loss_acc(
        self, x: Float[Array, "n h w c"], y: Int[Array, " n"], smoothing: float
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        logits = jax.vmap(self)(x)
        k = self.config.num_classes
        target = jax.nn.one_hot(y, k) * (1.0 - smoothing) + smoothing / k
        loss = -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits), axis=-1))
        acc = jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32))
        return loss, acc

    def loss(
        self, batch: tuple[Float[Array, "n h w c"], Int[Array, " n"]], state: None, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], tuple[None, dict[str, Array]]]:
        """Mean cross-entropy (with optional label smoothing) of a batch ``(images, labels)``."""
        x, y = batch
        if self.config.augment:
            x = jax.vmap(self._augment)(x, jax.random.split(key, x.shape[0]))
        loss, acc = self._loss_acc(x, y, self.config.label_smoothing)
        return loss, (state, {"accuracy": acc})

    def prepare_data(self, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)``: what `loss` and `evaluate` take (used by ``zoo train`` / ``zoo evaluate``)."""
        return _images_labels(dataset)

    def init_state(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> None:
        return None

    def trainable(self) -> PyTree[bool]:
        return all_inexact(self)

    def default_sampler(self) -> None:
        return None

    def sample(self, n: int, *, sampler: AbstractSampler | None = None, key: PRNGKeyArray) -> Array:
        raise ZooError(
            f"{self.config.type_name} is a classifier, not a generative model: classifiers do not sample. "
            "Use it to score images (`classifier(x)`), or for feature-space Frechet distances "
            "(`zoo.classifier.classifier_frechet_distance`)."
        )

    def evaluate(self, data: Any, *, key: PRNGKeyArray | None = None, batch_size: int = 500) -> dict[str, float]:
        """Accuracy and mean (unsmoothed) cross-entropy on labelled ``data``: a pair
        ``(images, labels)`` or a `zoo.data.Dataset`."""
        del key  # deterministic
        x, y = _images_labels(data)
        if x.shape[1:] != self.config.image_shape:
            raise DataError(f"images have shape {x.shape[1:]}, this classifier takes {self.config.image_shape}")
        fn = eqx.filter_jit(lambda m, xb, yb: m._loss_acc(xb, yb, 0.0), compiler_options=jit_options(self))
        total_loss = total_acc = 0.0
        for i in range(0, len(x), batch_size):
            xb, yb = jnp.asarray(x[i : i + batch_size]), jnp.asarray(y[i : i + batch_size])
            loss, acc = fn(self, xb, yb)
            total_loss += float(loss) * len(xb)
            total_acc += float(acc) * len(xb)
        return {"accuracy": total_acc / len(x), "loss": total_loss / len(x)}


def _images_labels(data: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    else:
        raise DataError("classifier data must be a pair (images, labels) or a zoo.data.Dataset with labels")
    if y is None:
        raise DataError("this data set has no labels; a classifier needs (images, labels)")
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    if x.ndim != 4 or y.shape != (x.shape[0],):
        raise DataError(f"expected images (N, H, W, C) and labels (N,), got {x.shape} and {y.shape}")
    return x, y


def evaluation_subset(num_examples: int, n: int = 1000, *, seed: int = 0) -> np.ndarray:
    """Indices of the fixed test subset used to record and check a checkpoint's accuracy:
    the first `n` entries of ``numpy.random.default_rng(seed).permutation(num_examples)``
    (a random subset, since some splits are stored sorted by class)."""
    return np.random.default_rng(seed).permutation(num_examples)[:n]


def training_arrays(data: Any) -> PyTree[np.ndarray]:
    """``(images float32, labels int32)`` for `zoo.fit` from a `zoo.data.Dataset` or a pair."""
    return _images_labels(data)
