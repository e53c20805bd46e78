"""Dataset loaders. Each returns an AnnData with the true labels in ``obs``."""

from collections.abc import Callable

from anndata import AnnData

from ._synthetic import synthetic

DATASETS: dict[str, Callable[..., AnnData]] = {"synthetic": synthetic}
"""Registry of loaders by name."""

__all__ = ["DATASETS", "synthetic"]
