"""The official NCSNv2 configurations as presets, and the authors' published models in the registry.

Presets (``zoo list --presets 'ncsnv2/*'``): one per ``ermongroup/ncsnv2`` ``configs/*.yml`` (CIFAR-10 32, CelebA 64,
LSUN church 64, bedroom 128, tower 128, FFHQ 256): the network, the sigma ladder (sigma_begin, L = num_classes,
sigma_end 0.01, geometric), the sampler (``n_steps_each``, ``step_lr``, final denoising) and the training recipe
(Adam 1e-4, EMA 0.999, ``n_iters``, batch size, Adam eps). These are GPU jobs; they also describe the converted
official checkpoints (`zoo.ncsn.from_official`).

Registry (``zoo list 'ncsn*-song2019' 'ncsnv2-*'``): the authors' checkpoints, converted, resolving to Hub repos.
Until they are published, `zoo.load` of such a name says how to convert the downloaded official file.
"""

from __future__ import annotations

from .._registry import ModelEntry, Preset, register_model, register_preset
from .._train import TrainConfig
from ._config import NCSNConfig
from ._official import OFFICIAL_MODELS, how_to_obtain


_TAGS = ("score-based", "denoising-score-matching", "annealed-langevin", "ncsnv2")

# name, dataset, variant, image size, sigma_begin, L, n_steps_each, step_lr, n_iters, batch, Adam eps
_NCSNV2_CONFIGS = [
    ("cifar10", "cifar10", "ncsnv2", 32, 50.0, 232, 5, 6.2e-6, 300_001, 128, 1e-8),
    ("celeba64", "celeba", "ncsnv2", 64, 90.0, 500, 5, 3.3e-6, 210_001, 128, 1e-8),
    ("church64", "lsun-church_outdoor", "ncsnv2-deeper", 64, 140.0, 788, 4, 4.9e-6, 200_001, 128, 1e-8),
    ("bedroom128", "lsun-bedroom", "ncsnv2-deeper", 128, 190.0, 1086, 3, 1.8e-6, 150_001, 128, 1e-8),
    ("tower128", "lsun-tower", "ncsnv2-deeper", 128, 190.0, 1086, 3, 1.8e-6, 150_001, 128, 1e-8),
    ("ffhq256", "ffhq", "ncsnv2-deepest", 256, 348.0, 2311, 3, 9e-7, 80_001, 32, 1e-3),
]

for _name, _data, _variant, _size, _sb, _levels, _steps, _lr, _iters, _batch, _eps in _NCSNV2_CONFIGS:
    register_preset(Preset(
        name=f"ncsnv2/{_name}",
        config=NCSNConfig(image_size=_size, channels=3, ngf=128, variant=_variant, sigma_begin=_sb, sigma_end=0.01,
                          num_scales=_levels, dequantize=False, sampling_rule="step-lr", steps_per_level=_steps,
                          step_lr=_lr, denoise=True),
        train=TrainConfig(steps=_iters, batch_size=_batch, learning_rate=1e-4, eps=_eps, ema_decay=0.999,
                          log_every=100, checkpoint_every=5000),
        dataset=_data,
        tags=_TAGS,
        summary=f"NCSNv2 as in the paper ({_variant}, ngf 128, {_size}x{_size}, sigma {_sb:g} -> 0.01 in {_levels} "
                f"levels, T={_steps}, step_lr {_lr:g}, EMA 0.999); a GPU job",
    ))

# NCSN (2019) on CelebA: the commented CelebA block of ermongroup/ncsn configs/anneal.yml (32x32, ngf 128).
register_preset(Preset(
    name="ncsn/celeba-paper",
    config=NCSNConfig(image_size=32, channels=3, ngf=128),
    train=TrainConfig(steps=200_000, batch_size=128, learning_rate=1e-3, log_every=100, checkpoint_every=5000),
    dataset="celeba",
    tags=_TAGS[:3],
    license="gpl-3.0",
    summary="NCSN v1 as in the paper on CelebA 32x32 (ngf 128); a GPU job",
))

for _m in OFFICIAL_MODELS.values():
    register_model(ModelEntry(
        name=_m.name, family="ncsn", dataset=_m.dataset, summary=_m.summary, hub_repo=f"stein-zoo/{_m.name}",
        preset=_m.preset, how_to_obtain=how_to_obtain(_m.name),
    ))
