"""zoo: pretrained Stein's-method and score-based generative models in JAX + Equinox.

import jax, zoo
model = zoo.load("ncsn-mnist")              # or "hf://org/repo@rev", or a folder
images = zoo.sample(model, 16, key=jax.random.key(0))
"""

from . import samplers as samplers
from ._checkpoint import (
    Checkpoint as Checkpoint,
    annotate as annotate,
    load_checkpoint as load_checkpoint,
    save as save,
)
from ._config import AbstractConfig as AbstractConfig
from ._errors import (
    CheckpointError as CheckpointError,
    ConfigError as ConfigError,
    DataError as DataError,
    HubError as HubError,
    UnknownModelError as UnknownModelError,
    ZooError as ZooError,
)
from ._load import load as load, load_bundle as load_bundle, resolve as resolve
from ._model import (
    AbstractModel as AbstractModel,
    evaluate as evaluate,
    num_params as num_params,
    sample as sample,
    train as train,
)
from ._optim import ema_params as ema_params
from ._registry import (
    ModelEntry as ModelEntry,
    Preset as Preset,
    get_preset as get_preset,
    list_models as list_models,
    list_presets as list_presets,
    model_info as model_info,
    register_model as register_model,
    register_preset as register_preset,
)
from ._train import (
    TrainConfig as TrainConfig,
    TrainResult as TrainResult,
    fit as fit,
    initialize_distributed as initialize_distributed,
)
from ._version import __version__ as __version__
