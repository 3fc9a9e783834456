"""`NCSNConfig`: the score network, its noise ladder and its sampler, as one frozen config."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from .._config import AbstractConfig
from .._errors import ConfigError
from ._sigmas import geometric_sigmas


# How many times each network halves the image size (the image size must divide by 2 to that power).
VARIANT_DOWNSAMPLING: dict[str, int] = {
    "v1": 1, "v1-unconditional": 1, "ncsnv2": 1, "ncsnv2-deeper": 2, "ncsnv2-deepest": 3,
}

# The convolutions' precision (NCSNConfig.compute_dtype).
COMPUTE_DTYPES: tuple[str, ...] = ("float32", "bfloat16")
# Where the sampler's step_lr comes from: the config ("step-lr") or NCSNv2's Technique 4 ("technique4").
SAMPLING_RULES: tuple[str, ...] = ("step-lr", "technique4")
# Their names before the rename, still read from old config.json files and --set.
SAMPLING_RULE_ALIASES: dict[str, str] = {"v1": "step-lr", "v2": "technique4"}


@dataclasses.dataclass(frozen=True)
class NCSNConfig(AbstractConfig):
    """A noise-conditional score network (NCSN, Song & Ermon 2019) and its sampler.

    The network (``variant``):

    * ``"v1"``: NCSN's dilated RefineNet (`zoo.ncsn.RefineNet`), every norm a
      CondInstanceNorm++ with one (gamma, alpha, beta) per noise level; the network
      output is the score (the NCSN paper).
    * ``"v1-unconditional"``: the same RefineNet with unconditional InstanceNorm++ and
      the output divided by sigma (NCSNv2's noise conditioning on NCSN's network; what
      the CPU-trained ``ncsn-mnist`` / ``ncsn-cifar10`` use). ``"v2"`` is its old name,
      still accepted (checkpoints saved before the rename say ``"v2"``).
    * ``"ncsnv2"``, ``"ncsnv2-deeper"``, ``"ncsnv2-deepest"``: the NCSNv2 paper's own
      networks (`zoo.ncsn.NCSNv2`, `NCSNv2Deeper`, `NCSNv2Deepest`: unconditional
      InstanceNorm++, norm-free RefineBlocks with max-pool CRP, output divided by sigma).

    Divide-by-sigma variants train with EMA (``TrainConfig.ema_decay``, 0.999 in NCSNv2).

    The noise ladder is geometric, ``sigma_begin`` down to ``sigma_end`` in
    ``num_scales`` levels (v1: 1 -> 0.01, L = 10; v2 rules: `zoo.ncsn.v2_sigmas`).
    Sampling: annealed Langevin (`zoo.samplers.AnnealedLangevin`) with ``steps_per_level``
    steps per level of size ``step_lr * sigma_i^2 / sigma_L^2``, optionally ending with one
    denoising step (``denoise``). ``sampling_rule`` says where ``step_lr`` comes from:

    * ``"step-lr"``: the config's ``step_lr``, as both official codes do (NCSN: T = 100,
      2e-5; the NCSNv2 presets carry the official configs' ``n_steps_each``, ``step_lr``,
      ``denoise``).
    * ``"technique4"``: solved from the ladder and ``steps_per_level`` by NCSNv2's
      Technique 4 (`zoo.samplers.v2_step_size`); ``step_lr`` is then unused.

    ``"v1"`` and ``"v2"`` are the old names of these two, still accepted (checkpoints
    saved before the rename say them).

    ``compute_dtype``: ``"float32"``, or ``"bfloat16"`` for the convolutions only (inputs
    and kernels rounded to bfloat16, float32 accumulation, results back in float32; weights,
    normalisation, the loss and the sampler stay float32): oneDNN's AMX / AVX512-BF16 kernels
    on CPUs that have them (`zoo._onednn`). It changes no parameter, so
    ``zoo.replace_config(model, compute_dtype="bfloat16")`` (``--set compute_dtype=bfloat16``)
    switches a float32-trained checkpoint; what it costs in quality and buys in speed:
    cards/ncsn-bench.md.
    """

    family: ClassVar[str] = "ncsn"
    type_name: ClassVar[str] = "ncsn.NCSNConfig"

    image_size: int = 28
    channels: int = 1
    ngf: int = 64
    variant: str = "v1"  # "v1" | "v1-unconditional" | "ncsnv2" | "ncsnv2-deeper" | "ncsnv2-deepest"
    sigma_begin: float = 1.0
    sigma_end: float = 0.01
    num_scales: int = 10
    centered: bool = True  # the network sees 2x - 1
    dequantize: bool = True  # x * 255/256 + U(0, 1/256) in training
    sampling_rule: str = "step-lr"  # "step-lr" | "technique4" (old names "v1" | "v2")
    steps_per_level: int = 100
    step_lr: float = 2e-5
    denoise: bool = False
    objective: str = "dsm"  # "dsm" | "ssm" (annealed sliced score matching, SSM-VR: the official algo option)
    compute_dtype: str = "float32"  # "float32" | "bfloat16" (the convolutions' inputs and kernels)

    def __post_init__(self) -> None:
        if self.objective not in ("dsm", "ssm"):
            raise ConfigError(f"objective must be 'dsm' or 'ssm', not {self.objective!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ConfigError(
                f"compute_dtype must be one of {list(COMPUTE_DTYPES)} (the convolutions' precision), "
                f"not {self.compute_dtype!r}"
            )
        if self.variant == "v2":  # the old name of "v1-unconditional"
            object.__setattr__(self, "variant", "v1-unconditional")
        if self.variant not in VARIANT_DOWNSAMPLING:
            raise ConfigError(f"variant must be one of {list(VARIANT_DOWNSAMPLING)}, not {self.variant!r}")
        if self.sampling_rule in SAMPLING_RULE_ALIASES:  # the old names
            object.__setattr__(self, "sampling_rule", SAMPLING_RULE_ALIASES[self.sampling_rule])
        if self.sampling_rule not in SAMPLING_RULES:
            raise ConfigError(
                f"sampling_rule must be one of {list(SAMPLING_RULES)} (step_lr as given, or solved by NCSNv2's "
                f"Technique 4), not {self.sampling_rule!r}"
            )
        halvings = VARIANT_DOWNSAMPLING[self.variant]
        factor = 2**halvings
        if self.image_size % factor or self.image_size < 4 * factor:
            raise ConfigError(
                f"variant {self.variant!r} halves the image size {halvings} time(s): image_size must be a "
                f"multiple of {factor} and >= {4 * factor}, got {self.image_size}"
            )
        if self.ngf < 2 or self.channels < 1:
            raise ConfigError(f"need ngf >= 2 and channels >= 1, got ngf={self.ngf}, channels={self.channels}")
        geometric_sigmas(self.sigma_begin, self.sigma_end, self.num_scales)  # validates

    @property
    def sigmas(self) -> np.ndarray:
        return geometric_sigmas(self.sigma_begin, self.sigma_end, self.num_scales)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)
