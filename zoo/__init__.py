"""zoo: pretrained Stein's-method and score-based generative models in JAX + Equinox.

import jax, zoo
model = zoo.load("ncsn-mnist")              # or "hf://org/repo@rev", or a folder
images = zoo.sample(model, 16, key=jax.random.key(0))
"""

from . import _malloc as _malloc, nn as nn, samplers as samplers, stein as stein  # _malloc first: zoo/_malloc.py
from ._batch_map import batch_map as batch_map
from ._card import build_card as build_card
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
from ._hub import download as download, push as push
from ._images import save_grid as save_grid, scatter as scatter
from ._load import load as load, load_bundle as load_bundle, resolve as resolve
from ._model import (
    AbstractImageModel as AbstractImageModel,
    AbstractModel as AbstractModel,
    AbstractPointModel as AbstractPointModel,
    AbstractStatelessModel as AbstractStatelessModel,
    evaluate as evaluate,
    model_for as model_for,
    num_params as num_params,
    replace_config as replace_config,
    sample as sample,
    train as train,
)
from ._optim import ema_params as ema_params
from ._registry import (
    ModelEntry as ModelEntry,
    Preset as Preset,
    bundled_path as bundled_path,
    get_preset as get_preset,
    list_models as list_models,
    list_presets as list_presets,
    model_info as model_info,
    register_model as register_model,
    register_preset as register_preset,
)
from ._table import model_table as model_table
from ._train import (
    TrainConfig as TrainConfig,
    TrainResult as TrainResult,
    data_mesh as data_mesh,
    fit as fit,
    hardware as hardware,
    initialize_distributed as initialize_distributed,
)
from ._trainer import AbstractTrainer as AbstractTrainer, GradientTrainer as GradientTrainer
from ._version import __version__ as __version__
