"""Adapters: every kind of input (AnnData, dense or sparse matrices, tensors, images) reaches the trainer here."""

from ._inputs import (
    IMAGE_SHAPE_KEY,
    Prepared,
    image_shape_of,
    is_prepared,
    prepare_fit,
    prepare_predict,
)
from ._sources import DenseSource, SparseSource, as_source

__all__ = [
    "IMAGE_SHAPE_KEY",
    "DenseSource",
    "Prepared",
    "SparseSource",
    "as_source",
    "image_shape_of",
    "is_prepared",
    "prepare_fit",
    "prepare_predict",
]
