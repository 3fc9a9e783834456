"""Deep energy-based models on binary and categorical data (Grathwohl et al., 2021, "Oops I Took A
Gradient"): Bernoulli RBM, lattice Ising model, ResNet EBM and categorical (one-hot) MLP EBM, trained
by PCD with Gibbs-with-Gradients and evaluated by AIS."""

from .._registry import ModelEntry, Preset, register_model, register_preset
from .._train import TrainConfig
from ._ais import (
    AISKernel as AISKernel,
    AISResult as AISResult,
    AnnealedTarget as AnnealedTarget,
    ais as ais,
    ais_log_likelihood as ais_log_likelihood,
    bootstrap_std as bootstrap_std,
    log_likelihood_summary as log_likelihood_summary,
)
from ._categorical_ebm import (
    CategoricalEBM as CategoricalEBM,
    CategoricalMLP as CategoricalMLP,
    CategoricalMLPTarget as CategoricalMLPTarget,
    categorical_data_logits as categorical_data_logits,
)
from ._config import (
    CategoricalEBMConfig as CategoricalEBMConfig,
    RBMConfig as RBMConfig,
    ResNetEBMConfig as ResNetEBMConfig,
)
from ._erdos_renyi import erdos_renyi_coupling as erdos_renyi_coupling, erdos_renyi_ising as erdos_renyi_ising
from ._fhmm import FHMM as FHMM, FHMMPosterior as FHMMPosterior
from ._ising import IsingTarget as IsingTarget, lattice_coupling as lattice_coupling, lattice_ising as lattice_ising
from ._metrics import (
    autocorrelation as autocorrelation,
    effective_sample_size as effective_sample_size,
    hamming_kernel as hamming_kernel,
    mmd as mmd,
)
from ._pcd import (
    AbstractPCDModel as AbstractPCDModel,
    PCDState as PCDState,
    PCDTrainer as PCDTrainer,
    data_mean_logits as data_mean_logits,
    init_buffer as init_buffer,
    initial_chains as initial_chains,
    pcd_loss as pcd_loss,
)
from ._potts import (
    DensePottsTarget as DensePottsTarget,
    PottsTarget as PottsTarget,
    lattice_potts as lattice_potts,
    symmetric_couplings as symmetric_couplings,
)
from ._raise import (
    RAISEKernel as RAISEKernel,
    raise_log_likelihood as raise_log_likelihood,
    raise_log_prob as raise_log_prob,
)
from ._rbm import RBM as RBM, RBMTarget as RBMTarget, rbm_log_z_exact as rbm_log_z_exact
from ._rbm_path import (
    RBMPath as RBMPath,
    RBMPathAISKernel as RBMPathAISKernel,
    RBMPathRAISEKernel as RBMPathRAISEKernel,
    rbm_path_ais as rbm_path_ais,
    rbm_path_raise_log_prob as rbm_path_raise_log_prob,
)
from ._resnet import ResNetEBM as ResNetEBM
from ._structure import (
    PairwiseMRF as PairwiseMRF,
    PairwiseMRFConfig as PairwiseMRFConfig,
    coupling_rmse as coupling_rmse,
)


register_preset(
    Preset(
        name="ebm/rbm-mnist",
        config=RBMConfig(visible=784, hidden=500, train_sampler="block_gibbs", sampling_steps=10, buffer_size=1000,
                         sample_steps=1000, ais_steps=20000, ais_chains=100),
        train=TrainConfig(steps=10000, batch_size=100, learning_rate=1e-3, ema_decay=0.999, log_every=100,
                          checkpoint_every=500, keep_checkpoints=2),
        dataset="binarized_mnist",
        tags=("rbm", "block-gibbs", "binary"),
        summary="Bernoulli RBM 784x500 on static binarized MNIST, PCD with 10 block-Gibbs sweeps (1000 chains)",
    )
)
register_model(
    ModelEntry(
        name="rbm-mnist",
        family="ebm",
        dataset="binarized_mnist",
        summary="Bernoulli RBM 784x500 on binarized MNIST (the GWG paper's sampler-benchmark target)",
        hub_repo="stein-zoo/rbm-mnist",
        preset="ebm/rbm-mnist",
    )
)

register_preset(
    Preset(
        name="ebm/resnet-binarized-mnist",
        config=ResNetEBMConfig(channels=16, num_blocks=2, sampling_steps=10, buffer_size=2000, reinit_freq=0.0,
                               l2=0.01, sample_steps=2000, ais_steps=5000, ais_chains=100),
        train=TrainConfig(steps=8000, batch_size=32, learning_rate=1e-4, warmup_steps=1000, ema_decay=0.999,
                          log_every=50, checkpoint_every=250, keep_checkpoints=2),
        dataset="binarized_mnist",
        tags=("gibbs-with-gradients", "binary"),
        summary="ResNet EBM (16 channels, 4 residual blocks) on static binarized MNIST, PCD with 10 GWG steps per "
        "update, replay buffer 2000 (a CPU-sized version of the paper's resnet-64 / 40 steps / 50k iterations)",
    )
)
register_preset(
    Preset(
        name="ebm/resnet-rbm-binarized-mnist",
        config=ResNetEBMConfig(channels=16, num_blocks=2, base_dist=False, rbm_hidden=500, buffer_init_sweeps=200,
                               gibbs_mh_steps=3, gwg_steps_per_cycle=3, sampling_steps=2, buffer_size=2000,
                               reinit_freq=0.0, l2=0.01, sample_steps=1000, sample_init="noise", ais_steps=20000,
                               ais_chains=100, ais_path="rbm"),
        train=TrainConfig(steps=8000, batch_size=100, learning_rate=2e-4, warmup_steps=200, ema_decay=0.999,
                          log_every=50, checkpoint_every=250, keep_checkpoints=2),
        dataset="binarized_mnist",
        tags=("gibbs-with-gradients", "binary", "rbm"),
        summary="ResNet EBM (16 channels, 4 residual blocks) times an RBM (500 hidden units, warm-started from "
        "rbm-mnist) on static binarized MNIST; PCD whose sampler cycles block-Gibbs-proposal MH and GWG steps "
        "(zoo train ... --init-from rbm-mnist)",
    )
)
register_model(
    ModelEntry(
        name="ebm-gwg-binarized-mnist",
        family="ebm",
        dataset="binarized_mnist",
        summary="ResNet EBM times an RBM (warm-started from rbm-mnist) on static binarized MNIST, trained by PCD "
        "with Gibbs-with-Gradients and block-Gibbs-proposal MH",
        hub_repo="stein-zoo/ebm-gwg-binarized-mnist",
        preset="ebm/resnet-rbm-binarized-mnist",
    )
)
register_preset(
    Preset(
        name="ebm/categorical-mnist-k4",
        config=CategoricalEBMConfig(num_positions=784, num_values=4, hidden=128, num_layers=2, sampling_steps=20,
                                    buffer_size=1000, sample_steps=20000, ais_steps=50000, ais_chains=100),
        train=TrainConfig(steps=10000, batch_size=100, learning_rate=3e-4, warmup_steps=500, ema_decay=0.999,
                          log_every=50, checkpoint_every=250, keep_checkpoints=2),
        dataset="mnist_k4",
        tags=("gibbs-with-gradients", "categorical"),
        summary="Categorical EBM (MLP energy 3136-128-128-1 on one-hot pixels plus the data-marginal base) on MNIST "
        "quantised to 4 grey levels, PCD with 20 categorical GWG steps per update, replay buffer 1000",
    )
)
register_model(
    ModelEntry(
        name="ebm-categorical-mnist-k4",
        family="ebm",
        dataset="mnist_k4",
        summary="Categorical EBM (MLP energy on one-hot pixels plus the data-marginal base) on MNIST quantised to 4 "
        "grey levels, trained by PCD with categorical Gibbs-with-Gradients",
        preset="ebm/categorical-mnist-k4",
    )
)
register_model(
    ModelEntry(
        name="potts-lattice-8x8-k3",
        family="ebm",
        dataset="synthetic:lattice-potts3-8x8",
        summary="Couplings of an 8x8 lattice Potts model (K=3) learned from 2000 samples by PCD with categorical "
        "Gibbs-with-Gradients (structure learning, scripts/gwg_structure.py)",
    )
)
