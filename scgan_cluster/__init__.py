"""scgan_cluster: ClusterGAN (Mukherjee et al., AAAI 2019) for single-cell data, as a scanpy plugin."""

from importlib.metadata import PackageNotFoundError, version

from . import adapters, datasets, metrics, model, nn, pl, pp, recipes, tl, train
from ._fit_tensor import fit_tensor
from ._read import read_dask
from ._settings import settings
from .model import ClusterGAN

try:
    __version__ = version("scgan-cluster")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "ClusterGAN",
    "__version__",
    "adapters",
    "datasets",
    "fit_tensor",
    "metrics",
    "model",
    "nn",
    "pl",
    "pp",
    "read_dask",
    "recipes",
    "settings",
    "tl",
    "train",
]
