"""Dataset loaders. Each returns an AnnData with the true labels in ``obs``."""

from collections.abc import Callable

from anndata import AnnData

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
}
"""Registry of loaders by name."""

__all__ = [
    "DATASETS",
    "TENX73K_CELL_COUNTS",
    "TENX73K_LABEL_MAP",
    "TENX73K_POPULATIONS",
    "ZHENG10_POPULATIONS",
    "mouse_bladder",
    "pbmc4k",
    "read_xy_h5",
    "synthetic",
    "tenx_73k",
    "tenx_73k_from_10x",
    "worm_neuron",
    "zheng2017_sorted",
]
