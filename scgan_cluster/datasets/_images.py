"""Shared assembly of an AnnData of flattened images with labels (used by the image loaders)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from scgan_cluster.adapters import IMAGE_SHAPE_KEY

SPLITS = ("train", "test", "all")


def check_split(split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    return str(split)


def images_anndata(
    images: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    *,
    name: str,
    classes: list[str],
    info: dict,
) -> AnnData:
    """``images`` (n, C, H, W) float32 in [0, 1] -> AnnData with flattened X and ``uns["image_shape"]``."""
    n, c, h, w = images.shape
    if c == 1:
        var = [f"px_{r}_{q}" for r in range(h) for q in range(w)]
    else:
        var = [f"px_{k}_{r}_{q}" for k in range(c) for r in range(h) for q in range(w)]
    counters: dict[str, int] = {}
    index = []
    for s in splits:
        index.append(f"{s}_{counters.get(s, 0)}")
        counters[s] = counters.get(s, 0) + 1
    obs = pd.DataFrame(
        {
            "label": np.asarray(labels, dtype=np.int64),
            "split": pd.Categorical(splits, categories=[s for s in SPLITS if s in counters]),
        },
        index=index,
    )
    adata = AnnData(
        np.ascontiguousarray(images.reshape(n, -1), dtype=np.float32),
        obs=obs,
        var=pd.DataFrame(index=var),
    )
    adata.uns[IMAGE_SHAPE_KEY] = [int(c), int(h), int(w)]
    adata.uns["dataset"] = {"name": name, "classes": list(classes), **info}
    return adata
