"""The toy family: a small MLP score model on low-dimensional data (the foundation's example)."""

from .._registry import ModelEntry, Preset, register_model, register_preset
from .._train import TrainConfig
from ._config import ToyScoreConfig as ToyScoreConfig
from ._model import ToyScore as ToyScore


register_preset(
    Preset(
        name="toy/gmm8",
        config=ToyScoreConfig(dim=2, width=128, depth=3, sigma=0.1),
        train=TrainConfig(
            steps=3000, batch_size=256, learning_rate=2e-3, ema_decay=0.99, log_every=100, checkpoint_every=1000
        ),
        dataset="toy:gmm8",
        tags=("score-based", "denoising-score-matching", "langevin"),
        summary="MLP score model on 8 Gaussians on a ring, DSM at sigma 0.1, Langevin sampling",
    )
)
register_model(
    ModelEntry(
        name="toy-gmm8",
        family="toy",
        dataset="toy:gmm8",
        summary="2-D score model on 8 Gaussians (the foundation's example)",
        hub_repo="stein-zoo/toy-gmm8",
        preset="toy/gmm8",
    )
)
