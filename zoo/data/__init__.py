"""Data sets for the zoo, loaded into memory as numpy arrays.

Layout: every image set is float32 NHWC in [0, 1]: (N, 28, 28, 1) for ``mnist``,
``binarized_mnist``, ``dynamic_mnist``, ``fashion_mnist`` and ``omniglot``, and
(N, 32, 32, 3) for ``cifar10``. Sets with ``binary=True`` (``binarized_mnist``) hold
exactly {0., 1.}. ``dynamic_mnist`` is grey MNIST (``binary=False``) meant to be
binarized per batch with `binarize`. ``mnist_k4`` is grey MNIST quantised to 4 levels
(`quantize`: equal-width bins), stored as the grey values ``level / 3``. Labels are int32 (N,) or None. The toy sets
(``toy:gmm8``, ``toy:spirals``, ``toy:checkerboard``) are float32 (N, 2).

Raw files are looked up in `data_dir()`; derived caches go to `cache_dir()`.

    import zoo.data as zd
    train = zd.load("binarized_mnist", "train")
    for xb in zd.batches(train.x, 128, seed=0, epoch=3):
        ...
"""

from ._batching import batch_at as batch_at, batches as batches
from ._binarize import binarize as binarize
from ._dataset import Dataset as Dataset
from ._load import available as available, load as load, splits as splits
from ._paths import cache_dir as cache_dir, data_dir as data_dir
from ._quantize import quantize as quantize
