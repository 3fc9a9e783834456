"""The official NCSN / NCSNv2 PyTorch checkpoints as zoo models, read without torch.

    model = zoo.ncsn.from_official("logs/cifar10/checkpoint_300000.pth")    # or the run folder
    zoo.ncsn.convert_official("logs/cifar10", "ncsnv2-cifar10")             # a zoo checkpoint folder

What the official runners save (``torch.save``, read by `zoo._torch_pickle`: zip archive or legacy stream):

* ``ermongroup/ncsn`` (NCSN, 2019): ``[state_dict, optimizer_state]``; the network is ``CondRefineNetDilated``
  (`zoo.ncsn.RefineNet` with CondInstanceNorm++, variant ``"v1"``); the noise levels are not in the file.
* ``ermongroup/ncsnv2`` (2020): ``[state_dict, optimizer_state, epoch, step, ema_shadow]``; the network is
  ``NCSNv2`` / ``NCSNv2Deeper`` / ``NCSNv2Deepest``, the state dict holds the ``sigmas`` buffer, and the EMA shadow
  maps parameter names (without ``module.``) to the EMA weights.

Both wrap the model in ``DataParallel`` (keys start with ``module.``; accepted with or without). The architecture,
ngf, channels and number of levels come from the tensors; the image size, the v1 noise range and the sampler come
from the run's ``config.yml`` (a YAML dump of an ``argparse.Namespace``, read with a safe loader that accepts only
that tag), else from `config` overrides; nothing is guessed. Weights map one to one: PyTorch OIHW kernels become HWIO,
a CondInstanceNorm++ embedding row stays ``[gamma, alpha, beta]``, an InstanceNorm++ becomes that row.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._errors import CheckpointError, ConfigError
from .._hashing import sha256_file
from .._torch_pickle import lazy_load, materialise
from ._config import NCSNConfig
from ._ncsnv2 import AbstractNCSNv2Net, PlainRCUBlock, PlainRefineBlock
from ._network import CondInstanceNormPP, Conv2d, RCUBlock, RefineBlock, RefineNet, ResidualBlock


__all__ = ["OFFICIAL_MODELS", "OfficialModel", "convert_official", "from_official", "read_official"]

Weights = Literal["ema", "raw"]


# --------------------------------------------------------------------------- the published official models


@dataclasses.dataclass(frozen=True)
class OfficialModel:
    """One model the authors published, and how zoo names it."""

    name: str  # the zoo registry name
    repo: str  # the official GitHub repository
    dataset: str
    folder: str  # the run folder (checkpoint*.pth + config.yml) in the authors' download
    preset: str  # the zoo preset with the official config (architecture, sigmas, sampler)
    summary: str

    @property
    def download(self) -> str:
        if self.repo == "ermongroup/ncsn":
            return "run.zip, linked from the README of https://github.com/ermongroup/ncsn (extract it)"
        return "the Google Drive folder linked from the README of https://github.com/ermongroup/ncsnv2"

    @property
    def command(self) -> str:
        """The one-line conversion of the downloaded run folder."""
        return f"zoo convert ncsn-official {self.folder} --out {self.name}"


def _official(name: str, dataset: str, folder: str, preset: str, what: str) -> OfficialModel:
    v1 = name.startswith("ncsn-")
    repo = "ermongroup/ncsn" if v1 else "ermongroup/ncsnv2"
    paper = "NCSN (Song & Ermon 2019)" if v1 else "NCSNv2 (Song & Ermon 2020)"
    return OfficialModel(name, repo, dataset, folder, preset, f"{paper} on {what}: the authors' weights, converted")


OFFICIAL_MODELS: dict[str, OfficialModel] = {
    m.name: m
    for m in [
        _official("ncsn-mnist-song2019", "mnist", "run/logs/mnist", "ncsn/mnist-paper", "MNIST"),
        _official("ncsn-cifar10-song2019", "cifar10", "run/logs/cifar10", "ncsn/cifar10-paper", "CIFAR-10"),
        _official("ncsn-celeba-song2019", "celeba", "run/logs/celeba", "ncsn/celeba-paper", "CelebA 32x32"),
        _official("ncsnv2-cifar10", "cifar10", "exp/logs/cifar10", "ncsnv2/cifar10", "CIFAR-10"),
        _official("ncsnv2-celeba64", "celeba", "exp/logs/celeba", "ncsnv2/celeba64", "CelebA 64x64"),
        _official("ncsnv2-church64", "lsun-church_outdoor", "exp/logs/church", "ncsnv2/church64",
                  "LSUN church_outdoor 64x64"),
        _official("ncsnv2-bedroom128", "lsun-bedroom", "exp/logs/bedroom", "ncsnv2/bedroom128", "LSUN bedroom 128x128"),
        _official("ncsnv2-tower128", "lsun-tower", "exp/logs/tower", "ncsnv2/tower128", "LSUN tower 128x128"),
        _official("ncsnv2-ffhq256", "ffhq", "exp/logs/ffhq", "ncsnv2/ffhq256", "FFHQ 256x256"),
    ]
}


def how_to_obtain(name: str) -> str:
    """The message `zoo.load(name)` adds when the converted weights are not on the Hub (or offline)."""
    m = OFFICIAL_MODELS[name]
    return (
        f"{name} is the authors' checkpoint ({m.repo}) converted to zoo. Until it is published, convert the official "
        f"file yourself (no torch needed): download {m.download}, then run\n"
        f"    {m.command}\n"
        f"(the run folder holds checkpoint*.pth and config.yml) and load the folder: zoo.load('./{name}')."
    )


# ------------------------------------------------------------------------------------------ config.yml


def _yaml_loader() -> type:
    import yaml

    class NamespaceLoader(yaml.SafeLoader):
        """YAML's safe loader plus the one tag the official runners write: ``argparse.Namespace`` (as a dict)."""

    def namespace(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, "a Namespace must be a mapping", node.start_mark)
        return loader.construct_mapping(node, deep=True)

    NamespaceLoader.add_constructor("tag:yaml.org,2002:python/object:argparse.Namespace", namespace)
    return NamespaceLoader


def read_config_yml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An official run's ``config.yml`` as nested dicts (only the ``argparse.Namespace`` tag is accepted)."""
    import yaml

    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_yaml_loader())  # noqa: S506 - safe subclass
    except yaml.YAMLError as e:
        raise ConfigError(
            f"{path} is not an official run config (a YAML dump of an argparse.Namespace; no other Python tag is "
            f"accepted): {e}"
        ) from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a mapping; it is not an official run's config.yml")
    return data


# ----------------------------------------------------------------------------------------- the checkpoint


@dataclasses.dataclass(frozen=True)
class OfficialCheckpoint:
    """What an official ``.pth`` holds, torch-free: the state dict (no ``module.`` prefix), the EMA shadow (v2),
    the training step (v2) and the run's ``config.yml`` if one was found beside it."""

    path: Path
    state_dict: dict[str, np.ndarray]
    ema: dict[str, np.ndarray] | None
    step: int | None
    config_yml: dict[str, Any] | None
    config_path: Path | None


def _find_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_dir():
        config = path / "config.yml"
        found = sorted(path.glob("checkpoint*.pth"))
        if not found:
            raise CheckpointError(
                f"{path} holds no checkpoint*.pth: pass the official .pth file or the run folder that holds it"
            )
        chosen = None
        if len(found) == 1:
            chosen = found[0]
        elif config.is_file():
            ckpt_id = (read_config_yml(config).get("sampling") or {}).get("ckpt_id")
            if ckpt_id is not None and (path / f"checkpoint_{ckpt_id}.pth").is_file():
                chosen = path / f"checkpoint_{ckpt_id}.pth"  # the one the official sampler uses
        if chosen is None and (path / "checkpoint.pth").is_file():
            chosen = path / "checkpoint.pth"  # the official runners' latest
        if chosen is None:
            raise CheckpointError(
                f"{path} holds several checkpoints ({', '.join(p.name for p in found)}); pass the one to convert"
            )
        return chosen, config if config.is_file() else None
    if not path.is_file():
        raise CheckpointError(f"no official checkpoint at {path}")
    config = path.parent / "config.yml"
    return path, config if config.is_file() else None


def _arrays(obj: Any, what: str, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()
    ):
        raise CheckpointError(f"{path}: the {what} is not a dict of tensors; this is not an official NCSN checkpoint")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_official(path: str | os.PathLike[str]) -> OfficialCheckpoint:
    """Read an official checkpoint (a ``.pth`` or a run folder with ``checkpoint*.pth`` and ``config.yml``)."""
    file, config_path = _find_files(Path(path))
    with lazy_load(file) as states:  # only the weights are read, not the optimiser's state
        if isinstance(states, Mapping):  # a bare state dict
            states = [states]
        if not isinstance(states, (list, tuple)) or len(states) not in (1, 2, 5):
            raise CheckpointError(
                f"{file} is a PyTorch file but not an official NCSN checkpoint: expected [state_dict, "
                "optimizer_state] (NCSN) or [state_dict, optimizer_state, epoch, step, ema_shadow] (NCSNv2), got "
                f"{type(states).__name__}" + (f" of length {len(states)}" if isinstance(states, (list, tuple)) else "")
            )
        state_dict = _arrays(materialise(states[0]), "state dict", file)
        ema = _arrays(materialise(states[4]), "EMA shadow", file) if len(states) == 5 else None
        step = states[3] if len(states) == 5 and type(states[3]) is int else None
    yml = read_config_yml(config_path) if config_path is not None else None
    return OfficialCheckpoint(file, state_dict, ema, step, yml, config_path)


# ------------------------------------------------------------------------------------ the architecture


def _detect_variant(sd: Mapping[str, np.ndarray], path: Path) -> str:
    if "normalizer.embed.weight" in sd:
        if "res5.0.conv1.weight" in sd:
            raise CheckpointError(
                f"{path}: unsupported architecture: NCSNdeeper (ermongroup/ncsnv2 models/ncsn.py, NCSN v1 with five "
                "stages); zoo converts CondRefineNetDilated / NCSN and the three NCSNv2 networks"
            )
        return "v1"
    if "normalizer.gamma" in sd:
        if "res31.0.conv1.weight" in sd:
            return "ncsnv2-deepest"
        if "res5.0.conv1.weight" in sd:
            return "ncsnv2-deeper"
        return "ncsnv2"
    sample = ", ".join(sorted(sd)[:6])
    raise CheckpointError(
        f"{path}: unsupported architecture: neither NCSN's CondRefineNetDilated (normalizer.embed.weight) nor an "
        f"NCSNv2 network (normalizer.gamma); its first keys are {sample}"
    )


def _get(tree: Mapping[str, Any] | None, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _check_yml(yml: Mapping[str, Any], path: Path | None) -> None:
    bad = []
    for key, ok in (("data.logit_transform", (False, None)), ("data.rescaled", (False, None)),
                    ("model.normalization", ("InstanceNorm++", None)), ("model.nonlinearity", ("elu", None)),
                    ("model.spec_norm", (False, None)), ("model.sigma_dist", ("geometric", None))):
        value = _get(yml, key)
        if value not in ok:
            bad.append(f"{key}: {value!r}")
    if bad:
        raise ConfigError(
            f"{path}: unsupported official setting(s) {', '.join(bad)}; zoo converts the configurations the authors "
            "published (images in [0, 1], InstanceNorm++, ELU, no spectral norm, geometric sigmas)"
        )


_OVERRIDABLE = ("image_size", "sigma_begin", "sigma_end", "steps_per_level", "step_lr", "denoise", "sampling_rule",
                "dequantize")


def infer_config(ckpt: OfficialCheckpoint, overrides: Mapping[str, Any] | NCSNConfig | None = None) -> NCSNConfig:
    """The `NCSNConfig` of an official checkpoint: from its tensors, its ``config.yml`` and `overrides`
    (a dict of `NCSNConfig` fields, or a whole config), asking (`ConfigError`) for what none of them gives."""
    sd, yml, path = ckpt.state_dict, ckpt.config_yml, ckpt.path
    variant = _detect_variant(sd, path)
    begin = sd.get("begin_conv.weight")
    if begin is None or begin.ndim != 4:
        raise CheckpointError(f"{path}: begin_conv.weight is missing or not a 4-d kernel")
    ngf, channels = int(begin.shape[0]), int(begin.shape[1])
    if yml is not None:
        _check_yml(yml, ckpt.config_path)
    if variant == "v1":
        num_scales = int(sd["normalizer.embed.weight"].shape[0])
    elif "sigmas" in sd:
        num_scales = int(sd["sigmas"].shape[0])
    else:
        raise CheckpointError(f"{path}: the NCSNv2 state dict has no 'sigmas' buffer")
    found: dict[str, Any] = {"variant": variant, "ngf": ngf, "channels": channels, "num_scales": num_scales}
    if isinstance(overrides, NCSNConfig):
        config = overrides
        for k, v in found.items():
            if getattr(config, k) != v:
                raise ConfigError(f"{path}: the weights have {k}={v!r}, the given config says {getattr(config, k)!r}")
        return config
    given = dict(overrides or {})
    unknown = sorted(set(given) - set(_OVERRIDABLE) - set(found))
    if unknown:
        raise ConfigError(f"cannot set {unknown} for an official checkpoint; settable: {list(_OVERRIDABLE)}")
    for k, v in found.items():
        if k in given and (g := given.pop(k)) != v:
            raise ConfigError(f"{path}: the weights have {k}={v!r}, the given config says {g!r}")
    fields: dict[str, Any] = dict(found)
    preset = _matching_preset(variant, num_scales, channels)
    if yml is not None:
        fields.update({k: v for k, v in {
            "image_size": _get(yml, "data.image_size"),
            "sigma_begin": _get(yml, "model.sigma_begin"),
            "sigma_end": _get(yml, "model.sigma_end"),
            "dequantize": _get(yml, "data.uniform_dequantization"),
        }.items() if v is not None})
        yml_levels = _get(yml, "model.num_classes")
        if yml_levels is not None and yml_levels != num_scales:
            raise ConfigError(f"{ckpt.config_path} says {yml_levels} noise levels, the weights have {num_scales}")
        if _get(yml, "sampling.step_lr") is not None:  # the ncsnv2 runners' sampler settings
            fields.update(sampling_rule="step-lr", step_lr=float(_get(yml, "sampling.step_lr")),
                          steps_per_level=int(_get(yml, "sampling.n_steps_each")),
                          denoise=bool(_get(yml, "sampling.denoise")))
    if variant != "v1":
        sigmas = np.asarray(sd["sigmas"], np.float64)
        begin_s, end_s = (float(f"{s:.6g}") for s in (sigmas[0], sigmas[-1]))
        fields.setdefault("sigma_begin", begin_s)
        fields.setdefault("sigma_end", end_s)
    if variant == "v1":
        fields.setdefault("dequantize", True)  # anneal_runner.py always dequantises
        # The NCSN paper's sampler (anneal_runner.py: T = 100, eps = 2e-5, no denoising) for every data set.
        fields.update({k: v for k, v in (("sampling_rule", "step-lr"), ("steps_per_level", 100), ("step_lr", 2e-5),
                                         ("denoise", False)) if k not in fields})
    elif "step_lr" not in fields and preset is not None and _same_ladder(preset, fields):
        fields.update(sampling_rule="step-lr", steps_per_level=preset.steps_per_level, step_lr=preset.step_lr,
                      denoise=preset.denoise)
    fields.update(given)
    if variant != "v1":
        fields.setdefault("dequantize", False)  # the NCSNv2 configs train without dequantisation
    missing = [k for k in ("image_size", "sigma_begin", "sigma_end") if k not in fields]
    if variant != "v1" and "step_lr" not in fields:
        missing += ["steps_per_level", "step_lr"]
    if missing:
        example = " ".join(f"--set {k}=..." for k in missing)
        as_dict = ", ".join(f"{k!r}: ..." for k in missing)
        where = f"nor from {ckpt.config_path}" if ckpt.config_path else "and no config.yml is beside the file"
        raise ConfigError(
            f"{path}: {missing} cannot be read from the weights {where}; put the run's config.yml next to the file, "
            f"or pass them: from_official(..., config={{{as_dict}}}) / zoo convert ncsn-official ... {example}"
        )
    try:
        config = NCSNConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot build the zoo config from {fields}: {e}") from e
    if variant != "v1":
        ladder = config.sigmas
        if not np.allclose(ladder, sd["sigmas"], rtol=1e-5, atol=0):
            raise ConfigError(
                f"{path}: the checkpoint's sigmas ({sd['sigmas'][0]:.6g} -> {sd['sigmas'][-1]:.6g}, "
                f"{num_scales} levels) are not the geometric ladder sigma_begin={config.sigma_begin}, "
                f"sigma_end={config.sigma_end}; only geometric ladders are supported"
            )
    return config


def _matching_preset(variant: str, num_scales: int, channels: int) -> NCSNConfig | None:
    from .._registry import get_preset, list_presets

    for name in list_presets("ncsnv2/*"):
        c = get_preset(name).config
        if isinstance(c, NCSNConfig) and (c.variant, c.num_scales, c.channels) == (variant, num_scales, channels):
            return c
    return None


def _same_ladder(preset: NCSNConfig, fields: Mapping[str, Any]) -> bool:
    return bool(np.isclose(preset.sigma_begin, fields.get("sigma_begin", -1.0), rtol=1e-5)
                and np.isclose(preset.sigma_end, fields.get("sigma_end", -1.0), rtol=1e-5))


# ------------------------------------------------------------------------------------ names -> leaves


@dataclasses.dataclass(frozen=True)
class _Leaf:
    get: Callable[[Any], Any]  # the zoo leaf, from the model
    keys: tuple[str, ...]  # the official tensors it is made of
    combine: Callable[..., np.ndarray]


def _hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0)) if w.ndim == 4 else w


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _gamma_alpha_beta(gamma: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.concatenate([gamma, alpha, beta], axis=-1)


def _conv(get: Callable[[Any], Conv2d], conv: Conv2d, name: str) -> list[_Leaf]:
    out = [_Leaf(lambda m: get(m).weight, (f"{name}.weight",), _hwio)]
    if conv.bias is not None:
        out.append(_Leaf(lambda m: get(m).bias, (f"{name}.bias",), _same))
    return out


def _norm(get: Callable[[Any], CondInstanceNormPP], norm: CondInstanceNormPP, name: str) -> list[_Leaf]:
    if norm.embed.ndim == 2:  # CondInstanceNorm++: nn.Embedding(L, 3C), rows [gamma, alpha, beta]
        return [_Leaf(lambda m: get(m).embed, (f"{name}.embed.weight",), _same)]
    return [_Leaf(lambda m: get(m).embed, (f"{name}.gamma", f"{name}.alpha", f"{name}.beta"), _gamma_alpha_beta)]


def _residual(get: Callable[[Any], ResidualBlock], block: ResidualBlock, name: str) -> list[_Leaf]:
    pooled = ".conv" if block.pool else ""  # ConvMeanPool keeps its conv as `.conv`
    out = _norm(lambda m: get(m).norm1, block.norm1, f"{name}.normalize1")
    out += _conv(lambda m: get(m).conv1, block.conv1, f"{name}.conv1")
    out += _norm(lambda m: get(m).norm2, block.norm2, f"{name}.normalize2")
    out += _conv(lambda m: get(m).conv2, block.conv2, f"{name}.conv2{pooled}")
    if block.shortcut is not None:
        out += _conv(lambda m: get(m).shortcut, block.shortcut, f"{name}.shortcut{pooled}")
    return out


def _rcu(get: Callable[[Any], Any], rcu: RCUBlock | PlainRCUBlock, name: str) -> list[_Leaf]:
    out: list[_Leaf] = []
    for i, convs in enumerate(rcu.convs):
        for j, conv in enumerate(convs):
            unit = f"{name}.{i + 1}_{j + 1}"
            if isinstance(rcu, RCUBlock):
                out += _norm(lambda m, i=i, j=j: get(m).norms[i][j], rcu.norms[i][j], f"{unit}_norm")
            out += _conv(lambda m, i=i, j=j: get(m).convs[i][j], conv, f"{unit}_conv")
    return out


def _refine(get: Callable[[Any], Any], block: RefineBlock | PlainRefineBlock, name: str) -> list[_Leaf]:
    out: list[_Leaf] = []
    for i, a in enumerate(block.adapt):
        out += _rcu(lambda m, i=i: get(m).adapt[i], a, f"{name}.adapt_convs.{i}")
    out += _rcu(lambda m: get(m).output, block.output, f"{name}.output_convs")
    if block.msf is not None:
        for i, conv in enumerate(block.msf.convs):
            out += _conv(lambda m, i=i: get(m).msf.convs[i], conv, f"{name}.msf.convs.{i}")
            if isinstance(block, RefineBlock):
                out += _norm(lambda m, i=i: get(m).msf.norms[i], block.msf.norms[i], f"{name}.msf.norms.{i}")
    for i, conv in enumerate(block.crp.convs):
        out += _conv(lambda m, i=i: get(m).crp.convs[i], conv, f"{name}.crp.convs.{i}")
        if isinstance(block, RefineBlock):
            out += _norm(lambda m, i=i: get(m).crp.norms[i], block.crp.norms[i], f"{name}.crp.norms.{i}")
    return out


def official_leaves(net: RefineNet | AbstractNCSNv2Net) -> list[_Leaf]:
    """Every array leaf of a zoo NCSN network (from ``model.net``) with the official tensor names it comes from."""
    out = _conv(lambda m: m.begin, net.begin, "begin_conv")
    if isinstance(net, RefineNet):
        stages = [("res1", net.res1), ("res2", net.res2), ("res3", net.res3), ("res4", net.res4)]
        for name, blocks in stages:
            for j, block in enumerate(blocks):
                out += _residual(lambda m, name=name, j=j: getattr(m, name)[j], block, f"{name}.{j}")
        for name in ("refine1", "refine2", "refine3", "refine4"):
            out += _refine(lambda m, name=name: getattr(m, name), getattr(net, name), name)
    else:
        for i, (name, blocks) in enumerate(zip(net.stage_names, net.stages)):
            for j, block in enumerate(blocks):
                out += _residual(lambda m, i=i, j=j: m.stages[i][j], block, f"{name}.{j}")
        for i, (name, block) in enumerate(zip(net.refine_names, net.refines)):
            out += _refine(lambda m, i=i: m.refines[i], block, name)
    out += _norm(lambda m: m.norm_out, net.norm_out, "normalizer")
    out += _conv(lambda m: m.end, net.end, "end_conv")
    return out


def _fill(net: Any, leaves: list[_Leaf], tensors: Mapping[str, np.ndarray], what: str, path: Path) -> Any:
    """`net` with every leaf taken from `tensors`; lists missing and unknown tensor names, checks shapes."""
    used = {k for leaf in leaves for k in leaf.keys}
    missing = sorted(used - set(tensors))
    unknown = sorted(set(tensors) - used - {"sigmas"})
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) the network needs: {', '.join(missing[:20])}"
                         + (" ..." if len(missing) > 20 else ""))
        if unknown:
            parts.append(f"{len(unknown)} unknown tensor(s): {', '.join(unknown[:20])}"
                         + (" ..." if len(unknown) > 20 else ""))
        raise CheckpointError(
            f"{path}: the {what} does not match the detected network ({type(net).__name__}): {'; '.join(parts)}. "
            "The file is damaged, or from another architecture."
        )
    values = []
    for leaf in leaves:
        value = leaf.combine(*(np.asarray(tensors[k]) for k in leaf.keys))
        want = leaf.get(net)
        if tuple(value.shape) != tuple(want.shape):
            raise CheckpointError(
                f"{path}: shape mismatch for {' + '.join(leaf.keys)} in the {what}: the file has "
                f"{tuple(value.shape)} (as zoo lays it out), the network needs {tuple(want.shape)}; the file does not "
                "fit the inferred config (wrong image size or config overrides?)"
            )
        values.append(jnp.asarray(value, dtype=want.dtype))
    return eqx.tree_at(lambda n: [leaf.get(n) for leaf in leaves], net, values)


# --------------------------------------------------------------------------------------- public API


def _convert(ckpt: OfficialCheckpoint, config: NCSNConfig, weights: Weights) -> Any:
    skeleton = eqx.filter_eval_shape(lambda k: config.build(key=k), jax.random.key(0))
    leaves = official_leaves(skeleton.net)
    if weights == "ema":
        if ckpt.ema is None:
            raise CheckpointError(f"{ckpt.path} has no EMA weights (an NCSN v1 checkpoint?); use weights='raw'")
        tensors, what = ckpt.ema, "EMA shadow"
    else:
        tensors, what = ckpt.state_dict, "state dict"
    net = _fill(skeleton.net, leaves, tensors, what, ckpt.path)
    left = [x for x in jax.tree_util.tree_leaves(net) if isinstance(x, jax.ShapeDtypeStruct)]
    assert not left, f"converter missed {len(left)} leaves"  # official_leaves covers every array of the network
    return eqx.tree_at(lambda m: m.net, skeleton, net)


def from_official(
    path: str | os.PathLike[str],
    *,
    weights: Weights | None = None,
    config: Mapping[str, Any] | NCSNConfig | None = None,
):
    """The official NCSN / NCSNv2 checkpoint at `path` as a zoo `NCSN` model, read without torch.

    **Arguments:**

    - `path`: an official ``.pth`` (``checkpoint.pth``, ``checkpoint_300000.pth``...) or the run folder holding it
      and its ``config.yml``.
    - `weights`: ``"ema"`` (NCSNv2's EMA shadow, what the authors sample with; the default where the file has one)
      or ``"raw"`` (the optimiser's weights; NCSN v1 has only these).
    - `config`: `NCSNConfig` fields the file does not give (``{"image_size": 32}``; without ``config.yml`` also the
      v1 ``sigma_begin`` / ``sigma_end``), or a whole `NCSNConfig`.

    **Returns:** a zoo `NCSN` whose ``score(x, level)`` on an NHWC image equals the official ``model(x, labels)`` on
    the NCHW one.

    **Raises:** `CheckpointError` (not a checkpoint, truncated, refused pickle global, missing or unknown tensors,
    shape mismatch, unsupported architecture) or `ConfigError` (what it cannot infer, listed).
    """
    ckpt = read_official(path)
    if weights is None:
        weights = "ema" if ckpt.ema is not None else "raw"
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', not {weights!r}")
    return _convert(ckpt, infer_config(ckpt, config), weights)


def _dataset_name(yml: Mapping[str, Any] | None) -> str | None:
    name = _get(yml, "data.dataset")
    if not isinstance(name, str):
        return None
    name = name.lower()
    if name == "lsun":
        category = _get(yml, "data.category")
        return f"lsun-{category}" if category else "lsun"
    return name


def convert_official(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    weights: Weights | None = None,
    config: Mapping[str, Any] | NCSNConfig | None = None,
    card_body: str | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> Path:
    """Convert an official checkpoint into a zoo checkpoint folder at `out` (written whole or not at all).

    With `weights` None both the raw weights and, where the file has them, the EMA weights are written (`zoo.load`
    then gives the EMA model, as the authors sample); ``"ema"`` or ``"raw"`` writes only that set. `card_body` is a
    hand-written card (else one is generated: source, authors, license, conversion command, sampler settings)."""
    ckpt = read_official(path)
    cfg = infer_config(ckpt, config)
    if weights not in (None, "ema", "raw"):
        raise ValueError(f"weights must be 'ema', 'raw' or None (both), not {weights!r}")
    if weights == "ema" or (weights is None and ckpt.ema is not None):
        ema = _convert(ckpt, cfg, "ema")
    else:
        ema = None
    raw = _convert(ckpt, cfg, "raw") if weights in (None, "raw") else None
    model, twin = (raw, ema) if raw is not None else (ema, None)
    out = Path(out)
    name = name or out.name
    v1 = cfg.variant == "v1"
    repo = "ermongroup/ncsn" if v1 else "ermongroup/ncsnv2"
    source_sha = sha256_file(ckpt.path)
    command = command or " ".join(
        ["zoo", "convert", "ncsn-official", shlex.quote(ckpt.path.name), "--out", shlex.quote(name)]
        + ([f"--weights {weights}"] if weights else [])
    )
    dataset = _dataset_name(ckpt.config_yml)
    training = {
        "source": f"https://github.com/{repo} (official checkpoint, converted without retraining)",
        "converted_from": ckpt.path.name,
        "converted_from_sha256": source_sha,
        "conversion_command": command,
        "weights": {"ema": "EMA (0.999)", "raw": "raw", None: "raw + EMA" if ckpt.ema is not None else "raw"}[weights],
        **({"steps": ckpt.step} if ckpt.step is not None else {}),
        **({"dataset": dataset} if dataset else {}),
    }
    card = {
        "summary": f"The authors' {'NCSN' if v1 else 'NCSNv2'} checkpoint ({repo}), converted to zoo",
        "license": "gpl-3.0" if v1 else "mit",
        "tags": ["ncsn", "score-based", "converted-official", *(["ncsnv2"] if not v1 else [])],
        **({"datasets": [dataset]} if dataset else {}),
    }
    from .._checkpoint import save

    body = card_body if card_body is not None else _card(name, cfg, ckpt, repo, command, source_sha)
    return save(model, out, ema=twin, name=name, training=training, card=card, card_body=body, overwrite=overwrite)


def sampler_summary(cfg: NCSNConfig) -> str:
    """The sampler settings of a config, in words (for cards)."""
    rule = ("step size step_lr * (sigma_i / sigma_L)^2" if cfg.sampling_rule == "step-lr"
            else "step_lr from NCSNv2's Technique 4")
    return (
        f"annealed Langevin dynamics over {cfg.num_scales} geometric levels (sigma {cfg.sigma_begin:g} -> "
        f"{cfg.sigma_end:g}), {cfg.steps_per_level} steps per level, step_lr {cfg.step_lr:g} ({rule}), "
        f"{'with' if cfg.denoise else 'without'} the final denoising step, from U[0, 1]"
    )


def _card(name: str, cfg: NCSNConfig, ckpt: OfficialCheckpoint, repo: str, command: str, sha: str) -> str:
    v1 = cfg.variant == "v1"
    paper = ("Song & Ermon, *Generative Modeling by Estimating Gradients of the Data Distribution*, NeurIPS 2019"
             if v1 else "Song & Ermon, *Improved Techniques for Training Score-Based Generative Models*, NeurIPS 2020")
    network = {"v1": "CondRefineNetDilated (zoo.ncsn.RefineNet, CondInstanceNorm++)", "ncsnv2": "NCSNv2",
               "ncsnv2-deeper": "NCSNv2Deeper", "ncsnv2-deepest": "NCSNv2Deepest"}[cfg.variant]
    license_text = ("the ermongroup/ncsn repository is GPL-3.0; the weights carry no separate license" if v1
                    else "the ermongroup/ncsnv2 repository is MIT; the weights carry no separate license")
    return "\n".join([
        f"# {name}",
        "",
        f"The authors' trained weights from [{repo}](https://github.com/{repo}), converted to a zoo checkpoint "
        "without torch and without retraining. The converter is checked to reproduce the official network's outputs "
        "(tests/test_ncsn_official.py).",
        "",
        f"- Paper: {paper}. Authors of the weights: Yang Song and Stefano Ermon.",
        f"- License: {license_text}.",
        f"- Source file: `{ckpt.path.name}` (SHA-256 `{sha}`)" + (f", training step {ckpt.step}" if ckpt.step else "")
        + ".",
        f"- Network: {network}, ngf {cfg.ngf}, {cfg.image_size}x{cfg.image_size}x{cfg.channels}.",
        f"- Sampler: {sampler_summary(cfg)}.",
        "",
        "Converted with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "<!-- zoo:facts -->",
        "",
    ])

