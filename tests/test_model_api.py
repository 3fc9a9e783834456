"""The model API every family shares: Equinox's abstract/final rule, config -> model by
registration, name tables, samplers passed as objects and `zoo.replace_config`."""

import abc
import ast
import dataclasses
import inspect
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo import samplers
from zoo._config import AbstractConfig, model_classes
from zoo._registry import Registry
from zoo.dvae import DVAEConfig
from zoo.toy import ToyScoreConfig


# -- Equinox's abstract/final rule ---------------------------------------------------------
def _is_method(value) -> bool:
    return inspect.isfunction(value) or isinstance(value, property | classmethod | staticmethod)


def _is_abstract(value) -> bool:
    fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
    return bool(getattr(fn, "__isabstractmethod__", False))


def _overrides(cls: type, base: type) -> list[str]:
    """``"Ancestor.name"`` for every concrete method of an ancestor of `cls` (below `base`'s
    own ancestors) that a class nearer `cls` redefines. Dunder methods (``__init__``, the
    dataclass machinery) are not part of the rule."""
    chain = [k for k in cls.__mro__ if isinstance(k, type) and issubclass(k, base)]
    found = []
    for i, ancestor in enumerate(chain):
        for name, value in vars(ancestor).items():
            if name.startswith("__") or not _is_method(value) or _is_abstract(value):
                continue
            found += [f"{ancestor.__name__}.{name} (in {k.__name__})" for k in chain[:i] if name in vars(k)]
    return found


def test_rule_checker_can_fail():
    class AbstractThing(eqx.Module):
        @abc.abstractmethod
        def f(self): ...

        def g(self):
            return 1

    class Thing(AbstractThing):
        def f(self):  # implementing an abstract method is the rule
            return 0

        def g(self):  # redefining a concrete one breaks it
            return 2

    assert _overrides(Thing, AbstractThing) == ["AbstractThing.g (in Thing)"]


def test_no_concrete_method_is_overridden():
    classes = model_classes()
    assert len(classes) >= 7  # toy, kscore, classifier, dvae, ncsn, two EBMs
    for model_cls in classes.values():
        assert _overrides(model_cls, zoo.AbstractModel) == [], model_cls
        assert not inspect.isabstract(model_cls), model_cls
        # the classes in between are abstract by name; concrete ones are final
        for k in model_cls.__mro__[1:]:
            if isinstance(k, type) and issubclass(k, zoo.AbstractModel):
                assert k.__name__.startswith("Abstract"), k
    for a in classes.values():
        assert not any(a is not b and issubclass(a, b) for b in classes.values())
    for config_cls in classes:
        assert _overrides(config_cls, AbstractConfig) == [], config_cls


def test_every_model_declares_its_trainer():
    from zoo.ebm import PCDTrainer, RBMConfig
    from zoo.kscore import KernelScoreConfig, KernelScoreFit

    trainers = {c: type(m.trainer) for c, m in model_classes().items()}
    assert trainers[KernelScoreConfig] is KernelScoreFit
    assert trainers[RBMConfig] is PCDTrainer
    assert trainers[ToyScoreConfig] is zoo.GradientTrainer
    model = ToyScoreConfig(width=4, depth=1).build(key=jax.random.key(0))
    with pytest.raises(zoo.ConfigError, match="TrainConfig"):
        model.train(np.zeros((8, 2), np.float32), None, key=jax.random.key(0))


# -- config -> model by registration -------------------------------------------------------
def test_build_looks_up_the_registered_model_class():
    for config_cls, model_cls in model_classes().items():
        config = config_cls()
        skeleton = eqx.filter_eval_shape(lambda k, c=config: c.build(key=k), jax.random.key(0))
        assert type(skeleton) is model_cls and skeleton.config is config


def test_config_modules_do_not_import_model_modules():
    root = Path(zoo.__file__).parent
    files = sorted(root.glob("*/_config.py"))
    assert {f.parent.name for f in files} >= {"toy", "kscore", "classifier", "dvae", "ncsn", "ebm"}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "_model" not in (node.module or ""), f"{f} imports {node.module}"


def test_unregistered_config_explains_the_fix():
    @dataclasses.dataclass(frozen=True)
    class LonelyConfig(AbstractConfig):
        family = "none"  # no type_name: never written to a checkpoint

    with pytest.raises(zoo.ConfigError, match=r"@zoo.model_for\(LonelyConfig\)"):
        LonelyConfig().build(key=jax.random.key(0))
    with pytest.raises(TypeError, match="type_name"):
        zoo.model_for(LonelyConfig)(zoo.AbstractModel)
    with pytest.raises(TypeError, match="already builds"):
        zoo.model_for(ToyScoreConfig)(model_classes()[DVAEConfig])


# -- name tables -------------------------------------------------------------------------
def test_registry_suggests_close_names():
    table: Registry[int] = Registry("shape")
    table.register("circle")(1)
    table.register("square")(2)
    assert table.get("square") == 2 and list(table) == ["circle", "square"] and "circle" in table
    with pytest.raises(zoo.ConfigError, match=r"unknown shape 'sqare'\. Did you mean 'square'\? Choose one of: circle"):
        table.get("sqare")
    with pytest.raises(ValueError, match="already registered"):
        table.register("circle")(3)


def test_tables_are_filled_by_decorators():
    import zoo.estimators as ze
    import zoo.kscore as ks

    assert set(samplers.SAMPLERS) >= {"langevin", "annealed_langevin", "gwg", "block_gibbs", "random_scan_gibbs"}
    assert samplers.SAMPLERS.get("gwg") is samplers.GWG
    assert list(ze.ESTIMATORS)[:3] == ["reinforce", "reinforce_baseline", "rloo"] and "rodeo" in ze.ESTIMATORS
    assert isinstance(ze.make_estimator("rodeo_taylor", 2), ze.RODEO)
    assert set(ks.ESTIMATORS) == {"ssge", "spectral_cutoff", "tikhonov", "landweber", "nu", "stein"}
    assert isinstance(ks.KernelScoreConfig(estimator="nu", lam=1e-3).make_estimator(), ks.NuMethod)
    with pytest.raises(zoo.ConfigError, match="Did you mean 'rodeo'"):
        DVAEConfig(estimator="rodoe")
    from zoo.ebm import RBMConfig

    with pytest.raises(zoo.ConfigError, match="Did you mean 'gwg'"):
        RBMConfig(train_sampler="gwgg")
    with pytest.raises(zoo.ConfigError, match="binary"):
        RBMConfig(train_sampler="langevin")


# -- samplers passed as objects ---------------------------------------------------------------
def test_sample_takes_a_sampler_object(getkey):
    model = ToyScoreConfig(width=8, depth=1, langevin_steps=5, langevin_step_size=1e-2).build(key=getkey())
    key = getkey()
    default = zoo.sample(model, 4, key=key)
    assert isinstance(model.default_sampler(), samplers.Langevin)
    np.testing.assert_array_equal(zoo.sample(model, 4, sampler=model.default_sampler(), key=key), default)
    other = zoo.sample(model, 4, sampler=samplers.Langevin(0.2), key=key)
    assert other.shape == default.shape and not np.allclose(other, default)
    with pytest.raises(zoo.ConfigError, match="zoo.samplers"):
        model.sample(4, sampler="langevin", key=key)


def test_families_without_a_chain_take_no_sampler(getkey):
    model = DVAEConfig(architecture="linear", latent_dim=4, estimator="rloo").build(key=getkey())
    assert model.default_sampler() is None
    assert zoo.sample(model, 3, key=getkey()).shape == (3, 28, 28, 1)
    with pytest.raises(zoo.ConfigError, match="without a Markov chain"):
        zoo.sample(model, 3, sampler=samplers.Langevin(0.1), key=getkey())


# -- zoo.replace_config ------------------------------------------------------------------------
def test_replace_config_keeps_the_weights(getkey):
    model = ToyScoreConfig(width=8, depth=1, langevin_steps=5).build(key=getkey())
    other = zoo.replace_config(model, langevin_steps=7, langevin_step_size=0.05)
    assert other.config == model.config.replace(langevin_steps=7, langevin_step_size=0.05)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(other), strict=True):
        assert a is b
    # the settings take effect: the same chain as the old model run with the new sampler for 7 steps
    key = getkey()
    by_config = other.sample(3, key=key)
    by_object = zoo.replace_config(model, langevin_steps=7).sample(3, sampler=samplers.Langevin(0.05), key=key)
    np.testing.assert_array_equal(by_config, by_object)
    assert zoo.replace_config(model) is model


def test_replace_config_names_the_field_that_changes_parameters(getkey):
    model = ToyScoreConfig(width=8, depth=1).build(key=getkey())
    with pytest.raises(zoo.ConfigError, match=r"changing width of ToyScoreConfig changes the model's parameters"):
        zoo.replace_config(model, width=16, langevin_steps=3)
    with pytest.raises(zoo.ConfigError, match="no field"):
        zoo.replace_config(model, langevin_step=3)
    with pytest.raises(zoo.ConfigError):  # validated like a new config
        zoo.replace_config(DVAEConfig(architecture="linear", latent_dim=4).build(key=getkey()), iw_chunk=7)


def test_replace_config_dvae_evaluation_options(getkey):
    model = DVAEConfig(architecture="linear", latent_dim=4, estimator="rloo", iw_samples=8, iw_chunk=4,
                       elbo_samples=4, variance_replicates=1).build(key=getkey())
    fewer = zoo.replace_config(model, iw_samples=4, elbo_samples=2)
    assert fewer.config.iw_samples == 4
    np.testing.assert_array_equal(fewer.encoder.layers[0].weight, model.encoder.layers[0].weight)
    with pytest.raises(zoo.ConfigError, match="changing estimator"):
        zoo.replace_config(model, estimator="rodeo")
    x = jnp.asarray(jax.random.bernoulli(getkey(), 0.5, (3, 784)), jnp.float32)
    assert zoo.evaluate(fewer, x, key=getkey())["iw_samples"] == 4.0
