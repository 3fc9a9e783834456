"""NCSN: noise-conditional score networks (Song & Ermon 2019) and the NCSNv2 variant (2020).

    import zoo
    model = zoo.load("ncsn-mnist")
    images = model.sample(16, key=jax.random.key(0))

A dilated RefineNet with CondInstanceNorm++ (`RefineNet`), trained by sigma^2-weighted
denoising score matching over a geometric noise ladder (`dsm_loss`), sampled by annealed
Langevin dynamics (`zoo.samplers.AnnealedLangevin`; inpainting with
`zoo.samplers.AnnealedLangevinInpainting` / `NCSN.inpaint`).

The NCSNv2 paper's own networks (`NCSNv2`, `NCSNv2Deeper`, `NCSNv2Deepest`; ``variant="ncsnv2"``...)
with presets for every official config (``ncsnv2/*``), and the authors' published checkpoints read
without torch: `from_official` (a model) and `convert_official` / ``zoo convert ncsn-official`` (a zoo
checkpoint folder). ``variant="v1-unconditional"`` (formerly ``"v2"``) is NCSN's RefineNet with
NCSNv2's unconditional norms and output / sigma, not the NCSNv2 network.
"""

from .._registry import ModelEntry, Preset, register_model, register_preset
from .._train import TrainConfig
from . import _paper_models as _paper_models  # the NCSNv2 presets and the authors' published models
from ._config import SAMPLING_RULE_ALIASES as SAMPLING_RULE_ALIASES, NCSNConfig as NCSNConfig
from ._loss import dsm_loss as dsm_loss, dsm_terms as dsm_terms
from ._model import NCSN as NCSN, dequantize as dequantize
from ._ncsnv2 import (
    AbstractNCSNv2Net as AbstractNCSNv2Net,
    NCSNv2 as NCSNv2,
    NCSNv2Deeper as NCSNv2Deeper,
    NCSNv2Deepest as NCSNv2Deepest,
)
from ._network import (
    CondInstanceNormPP as CondInstanceNormPP,
    RefineNet as RefineNet,
    cin_plus_plus as cin_plus_plus,
)
from ._official import convert_official as convert_official, from_official as from_official
from ._sigmas import (
    geometric_sigmas as geometric_sigmas,
    max_pairwise_distance as max_pairwise_distance,
    v2_gamma as v2_gamma,
    v2_num_scales as v2_num_scales,
    v2_sigmas as v2_sigmas,
    v2_step_size as v2_step_size,
)


# The paper's configurations (ermongroup/ncsn configs/anneal.yml): Adam 1e-3, batch 128,
# 200k steps, sigma 1 -> 0.01 in 10 levels, ngf 64 (MNIST) / 128 (CIFAR-10), T = 100, eps = 2e-5.
_TAGS = ("score-based", "denoising-score-matching", "annealed-langevin")
_PAPER_TRAIN = TrainConfig(steps=200_000, batch_size=128, learning_rate=1e-3, log_every=100, checkpoint_every=5000)
register_preset(Preset(
    name="ncsn/mnist-paper",
    config=NCSNConfig(image_size=28, channels=1, ngf=64),
    train=_PAPER_TRAIN,
    dataset="mnist",
    tags=_TAGS,
    summary="NCSN v1 as in the paper on MNIST (ngf 64, 7.6M params); a GPU job",
))
register_preset(Preset(
    name="ncsn/cifar10-paper",
    config=NCSNConfig(image_size=32, channels=3, ngf=128),
    train=_PAPER_TRAIN,
    dataset="cifar10",
    tags=_TAGS,
    summary="NCSN v1 as in the paper on CIFAR-10 (ngf 128, 30.1M params); a GPU job",
))

# CPU presets: what the bundled checkpoints were trained with on a shared 2-core CPU.
register_preset(Preset(
    name="ncsn/mnist",
    config=NCSNConfig(image_size=28, channels=1, ngf=16, variant="v1-unconditional", sampling_rule="technique4",
                      steps_per_level=20, denoise=True),
    train=TrainConfig(steps=20_000, batch_size=32, learning_rate=1e-3, ema_decay=0.995, log_every=25,
                      checkpoint_every=100, keep_checkpoints=2),
    dataset="mnist",
    tags=_TAGS,
    summary="CPU-size NCSN on MNIST: ngf 16, v1-unconditional (output / sigma) + EMA, 10 levels 1 -> 0.01",
))
register_preset(Preset(
    name="ncsn/cifar10",
    config=NCSNConfig(image_size=32, channels=3, ngf=16, variant="v1-unconditional", sampling_rule="technique4",
                      steps_per_level=20, denoise=True),
    train=TrainConfig(steps=20_000, batch_size=32, learning_rate=1e-3, ema_decay=0.995, log_every=25,
                      checkpoint_every=100, keep_checkpoints=2),
    dataset="cifar10",
    tags=_TAGS,
    summary="CPU-size NCSN on CIFAR-10 (JPEG set): ngf 16, v1-unconditional + EMA; far below the paper's model",
))

register_model(ModelEntry(
    name="ncsn-mnist", family="ncsn", dataset="mnist",
    summary="NCSN score model on MNIST (CPU-trained, reduced width), annealed Langevin sampling",
    hub_repo="stein-zoo/ncsn-mnist", preset="ncsn/mnist",
))
register_model(ModelEntry(
    name="ncsn-cifar10", family="ncsn", dataset="cifar10",
    summary="NCSN score model on CIFAR-10 JPEG (CPU-trained, small; weak samples), annealed Langevin sampling",
    hub_repo="stein-zoo/ncsn-cifar10", preset="ncsn/cifar10",
))
