"""Dataset loaders. Each returns an AnnData with the true labels in ``obs``.

Image loaders (:func:`mnist`, :func:`fashion_mnist`, :func:`coil20`) hold the flattened images
in ``X`` (float32 in [0, 1]) and their shape in ``uns["image_shape"]``, which makes
:class:`scgan_cluster.ClusterGAN` train the paper's conv networks on ``(n, C, H, W)`` batches.
"""

from collections.abc import Callable

from anndata import AnnData

from ._coil20 import coil20
from ._fashion_mnist import FASHION_5_GROUPS, FASHION_CLASSES, fashion_mnist
from ._idx import read_idx
from ._mnist import mnist
from ._pendigits import pendigits
from ._synthetic import synthetic

DATASETS: dict[str, Callable[..., AnnData]] = {
    "synthetic": synthetic,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "pendigits": pendigits,
    "coil20": coil20,
}
"""Registry of loaders by name."""

__all__ = [
    "DATASETS",
    "FASHION_5_GROUPS",
    "FASHION_CLASSES",
    "coil20",
    "fashion_mnist",
    "mnist",
    "pendigits",
    "read_idx",
    "synthetic",
]
