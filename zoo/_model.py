"""The contract every model family implements.

A family is a set of `eqx.Module` models, each built from a frozen config
(`zoo.AbstractConfig`); the model class declares its config with ``@zoo.model_for``.
Every model has the same operations, identical across families:

* ``model.loss(batch, state, *, key)``: the training objective (or a surrogate whose
  gradient is the estimator the family uses), plus an auxiliary training state such as
  a persistent-chain buffer (``model.init_state``). The shared driver `zoo.fit` minimises it
  over the leaves ``model.trainable()`` selects.
* ``model.train(data, train_config, *, key, ...)``: delegates to the class's ``trainer``
  strategy (`zoo.GradientTrainer` runs `zoo.fit`; e.g. kscore's fits an estimator).
  Passing a loaded model fine-tunes it.
* ``model.sample(n, *, sampler=None, key)``: ``n`` samples, as a batch. Families that
  sample with a Markov chain run ``sampler`` (a `zoo.samplers` object; ``None``: the
  config's ``model.default_sampler()``); the others take no sampler.
* ``model.evaluate(data, *, key)``: a ``dict[str, float]`` of metrics on held-out data.
* ``model.prepare_data(dataset)`` and ``model.to_images(samples)``: what `loss`/`evaluate`
  take from a `zoo.data.Dataset`, and samples as a picture.

Equinox's abstract/final rule holds: a family implements the abstract methods here (or
inherits them from an intermediate ``Abstract*`` class such as `AbstractImageModel`) and
never redefines a concrete one; concrete model classes are final.

The free functions `zoo.sample`, `zoo.evaluate` and `zoo.train` call these methods;
`zoo.replace_config` gives the same weights under a config with other settings.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._config import AbstractConfig, register_model_class
from ._errors import ConfigError
from ._trainer import AbstractTrainer
from .samplers import AbstractSampler


if TYPE_CHECKING:
    from ._train import TrainConfig, TrainResult


_M = TypeVar("_M", bound="AbstractModel")


class AbstractModel(eqx.Module):
    """Base class of every zoo model. Concrete subclasses are final."""

    config: eqx.AbstractVar[AbstractConfig]
    trainer: eqx.AbstractClassVar[AbstractTrainer]
    # Whether the family's programs run a convolutional network (a score network, a convolutional
    # energy, a CNN classifier): `compiler_options` then keep XLA:CPU's YNNPACK fusions to reductions (`zoo._conv`).
    convolutional: ClassVar[bool] = False
    # Submodules trained at a rate of their own: (attribute, config field holding the rate); `learning_rates`.
    rate_groups: ClassVar[tuple[tuple[str, str], ...]] = ()

    # -- data and training -------------------------------------------------------------
    @abc.abstractmethod
    def prepare_data(self, dataset: Any) -> PyTree[np.ndarray]:
        """The arrays `loss`/`evaluate` take, from a `zoo.data.Dataset` (e.g. ``dataset.x``;
        a classifier returns ``(x, y)``). Used by the CLI and scripts."""

    @abc.abstractmethod
    def init_state(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> PyTree:
        """Auxiliary training state (e.g. a replay buffer), or `None`."""

    @abc.abstractmethod
    def trainable(self) -> PyTree[bool]:
        """Which leaves the training driver optimises, as a filter spec for `eqx.partition`
        (usually `all_inexact(self)`; families with frozen arrays, e.g. a fixed base
        distribution, set those leaves to False). `zoo.num_params` counts the rest."""

    @abc.abstractmethod
    def loss(
        self, batch: PyTree[Array], state: PyTree, *, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], tuple[PyTree, dict[str, Array]]]:
        """Training objective on a batch: ``(loss, (new_state, metrics))``."""

    def learning_rates(self, learning_rate: float) -> PyTree[float] | None:
        """Per-parameter learning rates, where a model trains some parameters at a rate of their own
        (the DVAE's control variates, at the official code's 1e-3 whatever the run's rate): a pytree
        like ``eqx.filter(self, self.trainable())`` with a rate at each array leaf, given the run's
        `learning_rate`; `None` where every parameter trains at the run's rate. Declared by the class's
        ``rate_groups``: ``(attribute, config field)`` pairs, the submodule ``self.<attribute>`` at the
        rate ``config.<field>`` (`None` there: the run's rate). `zoo.fit` multiplies each leaf's
        optimiser step by ``rate / learning_rate`` before the EMA; for Adam-like optimisers (steps
        proportional to the rate) that is exactly the same optimiser at that rate, following the run's
        schedule."""
        groups = [(name, getattr(self.config, field)) for name, field in type(self).rate_groups]
        groups = [(name, rate) for name, rate in groups if rate is not None]
        if not groups:
            return None
        rates = jax.tree.map(lambda _: learning_rate, eqx.filter(self, self.trainable()))
        for name, rate in groups:
            def at_rate(sub: PyTree, rate: float = rate) -> PyTree:
                return jax.tree.map(lambda _: rate, sub)

            rates = eqx.tree_at(lambda m, name=name: getattr(m, name), rates, replace_fn=at_rate)
        return rates

    def compiler_options(self) -> tuple[tuple[str, Any], ...]:
        """XLA compiler options (as ``(name, value)`` items) for the programs that run this model:
        `zoo._conv.conv_compiler_options` when the family is ``convolutional`` (NCSN, the ResNet
        EBM, the classifier), else none. `zoo.fit` compiles its training step with them, the
        family's `sample` passes them to `zoo.samplers.run`; pass them to your own `jax.jit`
        (``compiler_options=dict(model.compiler_options())``) around such a model on CPU."""
        if not type(self).convolutional:
            return ()
        from ._conv import conv_compiler_options

        return conv_compiler_options()

    def train(
        self,
        data: PyTree[np.ndarray],
        config: TrainConfig | None,
        *,
        key: PRNGKeyArray,
        **kwargs: Any,
    ) -> TrainResult:
        """Train (or fine-tune) this model on `data` with the class's ``trainer``."""
        return self.trainer.train(self, data, config, key=key, **kwargs)

    # -- sampling ----------------------------------------------------------------------
    @abc.abstractmethod
    def default_sampler(self) -> AbstractSampler | None:
        """The Markov chain sampler the config describes (what ``sample(n, key=key)`` runs),
        or `None` for a family that draws samples directly (no chain)."""

    @abc.abstractmethod
    def sample(self, n: int, *, sampler: AbstractSampler | None = None, key: PRNGKeyArray) -> Array:
        """Draw `n` samples as a batch, with `sampler` (see `resolve_sampler`)."""

    def resolve_sampler(self, sampler: AbstractSampler | None) -> AbstractSampler | None:
        """The sampler `sample` runs: `sampler`, or ``default_sampler()`` when it is None. A
        `ConfigError` for a sampler given to a family without a chain, or a non-sampler."""
        default = self.default_sampler()
        if sampler is None:
            return default
        if default is None:
            raise ConfigError(
                f"{type(self).__name__} draws its samples directly, without a Markov chain: "
                "call sample() without `sampler=`"
            )
        if not isinstance(sampler, AbstractSampler):
            raise ConfigError(
                f"sampler must be a zoo.samplers object such as {type(default).__name__}(...), got {sampler!r}"
            )
        return sampler

    @abc.abstractmethod
    def to_images(self, samples: Array) -> np.ndarray:
        """Samples as images (N, H, W, C) in [0, 1], for PNG grids (point clouds: a rendered picture)."""

    # -- evaluation --------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
        """Metrics on held-out `data`."""


class AbstractStatelessModel(AbstractModel):
    """A model trained on a data set's ``x`` alone: no auxiliary training state, and every
    floating-point array trainable (what most families need)."""

    def prepare_data(self, dataset: Any) -> PyTree[np.ndarray]:
        return dataset.x

    def init_state(self, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> None:
        return None

    def trainable(self) -> PyTree[bool]:
        return all_inexact(self)


class AbstractImageModel(AbstractModel):
    """A model whose samples are images (N, H, W, C) in [0, 1] (clipped for display)."""

    def to_images(self, samples: Array) -> np.ndarray:
        return clip_images(samples, type(self).__name__)


class AbstractPointModel(AbstractModel):
    """A model whose samples are low-dimensional points, shown as a scatter plot."""

    def to_images(self, samples: Array) -> np.ndarray:
        from ._images import scatter

        return scatter(np.asarray(samples))[None]


def clip_images(samples: Array, owner: str = "these") -> np.ndarray:
    """`samples` as float32 images (N, H, W, C) clipped to [0, 1]; a TypeError for other shapes."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 4:
        raise TypeError(f"{owner} samples have shape {x.shape}, not (N, H, W, C) images")
    return np.clip(x, 0.0, 1.0)


def all_inexact(model: eqx.Module) -> PyTree[bool]:
    """The filter spec selecting every floating-point array of `model` (the usual `trainable`)."""
    return jax.tree.map(eqx.is_inexact_array, model)


def model_for(config_cls: type[AbstractConfig]) -> Callable[[type[_M]], type[_M]]:
    """Class decorator: the decorated model class is what ``config.build(key=)`` constructs
    (as ``ModelClass(config, key=key)``) for configs of type `config_cls`.

        @zoo.model_for(ToyScoreConfig)
        class ToyScore(zoo.AbstractPointModel): ...
    """

    def decorate(cls: type[_M]) -> type[_M]:
        if not (isinstance(cls, type) and issubclass(cls, AbstractModel)):
            raise TypeError(f"@model_for decorates zoo.AbstractModel subclasses, not {cls!r}")
        register_model_class(config_cls, cls)
        return cls

    return decorate


def sample(model: AbstractModel, n: int, *, sampler: AbstractSampler | None = None, key: PRNGKeyArray) -> Array:
    """``model.sample(n, sampler=sampler, key=key)`` (``sampler=None``: the config's sampler)."""
    return model.sample(n, sampler=sampler, key=key)


def evaluate(model: AbstractModel, data: PyTree[np.ndarray], *, key: PRNGKeyArray) -> dict[str, float]:
    """``model.evaluate(data, key=key)``, with values converted to Python floats."""
    return {k: float(v) for k, v in model.evaluate(data, key=key).items()}


def train(
    model: AbstractModel, data: PyTree[np.ndarray], config: TrainConfig | None, *, key: PRNGKeyArray, **kwargs: Any
) -> TrainResult:
    """``model.train(data, config, key=key, ...)``: from scratch or fine-tuning."""
    return model.train(data, config, key=key, **kwargs)


def num_params(model: eqx.Module) -> int:
    """Number of trainable parameters of `model`: the leaves `model.trainable()` selects
    (what `zoo.fit` optimises) for zoo models, every inexact array for other modules."""
    spec = model.trainable() if isinstance(model, AbstractModel) else eqx.is_inexact_array
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, spec))
    return int(sum(x.size for x in leaves))


def _array_leaves(tree: Any) -> list[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf, arrays and shape structs included."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))
    return [(jax.tree_util.keystr(p), x) for p, x in flat]


def _signature(tree: Any) -> list[tuple[str, tuple[int, ...], str] | tuple[str, None, str]]:
    out = []
    for path, x in _array_leaves(tree):
        if isinstance(x, jax.ShapeDtypeStruct) or eqx.is_array(x):
            out.append((path, tuple(x.shape), str(x.dtype)))
        else:
            out.append((path, None, type(x).__name__))
    return out


def _skeleton(config: AbstractConfig) -> Any:
    return eqx.filter_eval_shape(lambda k: config.build(key=k), jax.random.key(0))


def replace_config(model: _M, **changes: Any) -> _M:
    """The same weights under ``model.config.replace(**changes)``: e.g. other evaluation or
    sampler settings stored in the config (``iw_samples``, ``ais_steps``, ``steps_per_level``).

    The model is what loading its saved weights under the new config gives: the new
    config's skeleton (built with `eqx.filter_eval_shape`, no parameters drawn) filled with
    this model's arrays. A change that alters the parameters (their paths, shapes or
    dtypes, e.g. a network width) raises a `ConfigError` naming the field.
    """
    if not isinstance(model, AbstractModel):
        raise TypeError(f"replace_config takes a zoo model, not {type(model).__name__}")
    if not changes:
        return model
    config = model.config.replace(**changes)
    skeleton = _skeleton(config)
    have, want = _signature(model), _signature(skeleton)
    if have != want:
        culprits = [k for k, v in changes.items() if _signature(_skeleton(model.config.replace(**{k: v}))) != have]
        named = culprits or sorted(changes)
        diff = next(((a, b) for a, b in zip(have, want) if a != b), None)
        detail = f" (e.g. {diff[0][0]}: {diff[0][1:]} -> {diff[1][1:]})" if diff else ""
        raise ConfigError(
            f"changing {', '.join(named)} of {type(model.config).__name__} changes the model's parameters"
            f"{detail}; replace_config keeps the weights, so it only changes settings that leave them as they are "
            "(build and train a new model for the others)"
        )
    flat_model = jax.tree_util.tree_leaves(model)
    flat_skel, treedef = jax.tree_util.tree_flatten(skeleton, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))
    merged = [m if isinstance(s, jax.ShapeDtypeStruct) else s for m, s in zip(flat_model, flat_skel, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, merged)
