"""`ClassifierConfig`: the CNN's image shape, stages, feature width and training options."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._config import AbstractConfig
from .._errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(AbstractConfig):
    """A CNN on (height, width, channels) images in [0, 1].

    Each entry of ``channels`` is one stage: ``convs_per_stage`` 3x3 convolutions (ReLU,
    optional GroupNorm) then 2x2 max pooling. The flattened result goes through one dense
    ReLU layer of width ``feature_dim`` (the feature layer) and a linear layer to the logits.
    """

    family: ClassVar[str] = "classifier"
    type_name: ClassVar[str] = "classifier.ClassifierConfig"

    image_shape: tuple[int, int, int] = (28, 28, 1)
    num_classes: int = 10
    channels: tuple[int, ...] = (16, 32, 64)
    convs_per_stage: int = 1
    feature_dim: int = 128
    group_norm: bool = False  # GroupNorm (8 groups or fewer) after each convolution
    augment: bool = False  # training-time random horizontal flips and +-pad pixel shifts
    augment_pad: int = 4
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ConfigError(f"image_shape must be (height, width, channels), got {self.image_shape}")
        if not self.channels or self.convs_per_stage < 1:
            raise ConfigError("need at least one stage (channels) and convs_per_stage >= 1")
        h, w, _ = self.image_shape
        if h >> len(self.channels) < 1 or w >> len(self.channels) < 1:
            raise ConfigError(f"{len(self.channels)} pooling stages shrink a {h}x{w} image to nothing; use fewer")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes}")
