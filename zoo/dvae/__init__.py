"""Binary-latent VAEs trained with discrete gradient estimators (RODEO, DisARM, double CV, RLOO...).

    import jax, zoo
    model = zoo.load("dvae-rodeo-binarized-mnist")
    images = zoo.sample(model, 16, key=jax.random.key(0))       # decoder means of prior samples
"""

from .._registry import ModelEntry, Preset, register_model, register_preset
from .._train import TrainConfig
from ._config import DVAEConfig as DVAEConfig
from ._model import DVAE as DVAE
from ._networks import MLP as MLP, Dense as Dense


# The official single-layer setup: batch 100, Adam (eps 1e-7 as in TF), lr 1e-3 (3e-4 for
# Fashion-MNIST), no EMA; the step count is what fits this project's CPU budget.
_MNIST_TRAIN = TrainConfig(
    steps=20_000, batch_size=100, learning_rate=1e-3, eps=1e-7, log_every=100, checkpoint_every=1000, seed=0
)
_FASHION_TRAIN = _MNIST_TRAIN.replace(learning_rate=3e-4)

for _est in ("rodeo", "disarm", "double_cv", "rloo"):
    register_preset(
        Preset(
            name=f"dvae/{_est}-binarized-mnist",
            config=DVAEConfig(architecture="nonlinear", estimator=_est, num_samples=2),
            train=_MNIST_TRAIN,
            dataset="binarized_mnist",
            tags=("vae", "binary-latent", _est.replace("_", "-"), "gradient-estimation"),
            summary=f"nonlinear binary VAE (D=200) on static binarized MNIST, encoder gradient by {_est}, K=2",
        )
    )
# The data sets binarized afresh every step (a new key per step): Fashion-MNIST (the
# bundled checkpoint) and the papers' other two, dynamically binarized MNIST and Omniglot.
_DYNAMIC = {
    "fashion_mnist": (_FASHION_TRAIN, "Fashion-MNIST"),
    "dynamic_mnist": (_MNIST_TRAIN, "MNIST (60k train)"),
    "omniglot": (_MNIST_TRAIN, "Omniglot 28x28"),
}
for _ds, (_train, _label) in _DYNAMIC.items():
    register_preset(
        Preset(
            name=f"dvae/rodeo-{_ds.replace('_', '-')}",
            config=DVAEConfig(architecture="nonlinear", estimator="rodeo", num_samples=2, dynamic_binarization=True),
            train=_train,
            dataset=_ds,
            tags=("vae", "binary-latent", "rodeo", "gradient-estimation"),
            summary=f"nonlinear binary VAE (D=200) on dynamically binarized {_label}, RODEO K=2",
        )
    )
#: The preset that trains on each data set of the issue (static and dynamic MNIST, Fashion-MNIST, Omniglot).
DATASET_PRESETS: dict[str, str] = {
    "binarized_mnist": "dvae/rodeo-binarized-mnist",
    "dynamic_mnist": "dvae/rodeo-dynamic-mnist",
    "fashion_mnist": "dvae/rodeo-fashion-mnist",
    "omniglot": "dvae/rodeo-omniglot",
}
register_model(
    ModelEntry(
        name="dvae-rodeo-binarized-mnist",
        family="dvae",
        dataset="binarized_mnist",
        summary="binary-latent VAE (784-200-200-200, 200 Bernoulli latents) trained with RODEO (K=2)",
        hub_repo="stein-zoo/dvae-rodeo-binarized-mnist",
        preset="dvae/rodeo-binarized-mnist",
    )
)
register_model(
    ModelEntry(
        name="dvae-rodeo-fashion-mnist",
        family="dvae",
        dataset="fashion_mnist",
        summary="binary-latent VAE (784-200-200-200, 200 Bernoulli latents) on Fashion-MNIST, RODEO (K=2)",
        hub_repo="stein-zoo/dvae-rodeo-fashion-mnist",
        preset="dvae/rodeo-fashion-mnist",
    )
)
register_model(
    ModelEntry(
        name="dvae-rodeo-dynamic-mnist",
        family="dvae",
        dataset="dynamic_mnist",
        summary="binary-latent VAE (784-200-200-200, 200 Bernoulli latents) on dynamically binarized MNIST, "
                "RODEO (K=2)",
        hub_repo="stein-zoo/dvae-rodeo-dynamic-mnist",
        preset="dvae/rodeo-dynamic-mnist",
    )
)
register_model(
    ModelEntry(
        name="dvae-rodeo-omniglot",
        family="dvae",
        dataset="omniglot",
        summary="binary-latent VAE (784-200-200-200, 200 Bernoulli latents) on dynamically binarized Omniglot "
                "28x28, RODEO (K=2)",
        hub_repo="stein-zoo/dvae-rodeo-omniglot",
        preset="dvae/rodeo-omniglot",
    )
)
