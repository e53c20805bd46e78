"""Adapters: every kind of input (AnnData, dense or sparse matrices, tensors) reaches the trainer here."""

from ._inputs import Prepared, is_prepared, prepare_fit, prepare_predict
from ._sources import DenseSource, SparseSource, as_source

__all__ = [
    "DenseSource",
    "Prepared",
    "SparseSource",
    "as_source",
    "is_prepared",
    "prepare_fit",
    "prepare_predict",
]
