"""Fashion-MNIST from its IDX files, with the paper's 5-class grouping."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from anndata import AnnData

from ._mnist import load_idx_dataset

__all__ = ["fashion_mnist", "FASHION_CLASSES", "FASHION_5_GROUPS"]

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
"""The ten Fashion-MNIST classes, by label."""

FASHION_5_GROUPS = [[0, 3], [1], [2, 4, 6], [8], [5, 7, 9]]
"""The paper's Fashion-5 (section 4.1): {T-shirt/top, Dress}, {Trouser}, {Pullover, Coat,
Shirt}, {Bag}, {Sandal, Sneaker, Ankle boot}."""


def fashion_mnist(path: str | os.PathLike, *, split: str = "all", n_classes: int = 10) -> AnnData:
    """Fashion-MNIST (Zalando), read from its IDX files: the MNIST file names and format.

    Parameters
    ----------
    path
        The folder with ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``.
    split
        ``"train"``, ``"test"`` or ``"all"`` (every split whose files are present), as for
        :func:`mnist`.
    n_classes
        10 (the dataset's classes) or 5: the paper's "Fashion-5" grouping of similar classes
        (:data:`FASHION_5_GROUPS`).

    Returns
    -------
    AnnData as :func:`mnist` returns, with ``obs["label"]`` the class (0-9, or the group 0-4
    for ``n_classes=5``), ``obs["label_fine"]`` the 10-class label and
    ``uns["dataset"]["classes"]`` the names.
    """
    if n_classes not in (10, 5):
        raise ValueError(f"n_classes must be 10 or 5 (the paper's Fashion-5), got {n_classes!r}.")
    adata = load_idx_dataset(path, split, name="fashion_mnist", classes=FASHION_CLASSES)
    fine = adata.obs["label"].to_numpy()
    adata.obs["label_fine"] = fine
    if n_classes == 5:
        group = np.empty(10, dtype=np.int64)
        for g, members in enumerate(FASHION_5_GROUPS):
            group[members] = g
        adata.obs["label"] = pd.Series(group[fine], index=adata.obs_names)
        adata.uns["dataset"]["name"] = "fashion_mnist_5"
        adata.uns["dataset"]["classes"] = [
            " / ".join(FASHION_CLASSES[m] for m in members) for members in FASHION_5_GROUPS
        ]
        adata.uns["dataset"]["fine_classes"] = FASHION_CLASSES
    return adata
