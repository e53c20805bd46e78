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
from ._scrna import (
    TENX73K_CELL_COUNTS,
    TENX73K_LABEL_MAP,
    TENX73K_POPULATIONS,
    ZHENG10_POPULATIONS,
    mouse_bladder,
    pbmc4k,
    read_xy_h5,
    tenx_73k,
    tenx_73k_from_10x,
    worm_neuron,
    zheng2017_sorted,
)
from ._synthetic import synthetic

DATASETS: dict[str, Callable[..., AnnData]] = {
    "synthetic": synthetic,
    "tenx_73k": tenx_73k,
    "tenx_73k_from_10x": tenx_73k_from_10x,
    "zheng2017_sorted": zheng2017_sorted,
    "pbmc4k": pbmc4k,
    "mouse_bladder": mouse_bladder,
    "worm_neuron": worm_neuron,
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
    "TENX73K_CELL_COUNTS",
    "TENX73K_LABEL_MAP",
    "TENX73K_POPULATIONS",
    "ZHENG10_POPULATIONS",
    "coil20",
    "fashion_mnist",
    "mnist",
    "mouse_bladder",
    "pbmc4k",
    "pendigits",
    "read_idx",
    "read_xy_h5",
    "synthetic",
    "tenx_73k",
    "tenx_73k_from_10x",
    "worm_neuron",
    "zheng2017_sorted",
]
