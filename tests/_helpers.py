"""Helpers shared by the tests (importable because pytest puts tests/ on the path)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData
from scipy import sparse

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCGAN_DATA_DIR", REPO.parent / "shared" / "data"))
# the marks of a test that needs CUDA: selected by ``-m gpu``, skipped where there is none
ON_CUDA = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def make_counts(
    n_per_cluster: int = 100, n_clusters: int = 3, n_genes: int = 60, seed: int = 0
) -> AnnData:
    """Poisson counts with cluster-specific marker genes; ``obs["truth"]`` holds the clusters."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 1.0, size=n_genes)
    means = np.tile(base, (n_clusters, 1))
    block = n_genes // (2 * n_clusters)
    for k in range(n_clusters):
        means[k, k * block : (k + 1) * block] *= 12.0
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    counts = rng.poisson(means[labels]).astype(np.float32)
    obs = pd.DataFrame(
        {"truth": pd.Categorical(labels.astype(str))}, index=[f"c{i}" for i in range(len(labels))]
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return AnnData(counts, obs=obs, var=var)


def snapshot(adata: AnnData) -> dict:
    """Everything a tool could touch, as plain copies, to compare before and after."""

    def dense(m):
        if m is None:
            return None
        return m.toarray() if sparse.issparse(m) else np.array(m, copy=True)

    return {
        "shape": adata.shape,
        "X": dense(adata.X),
        "X_type": type(adata.X),
        "layers": {k: dense(v) for k, v in adata.layers.items()},
        "obs": adata.obs.copy(),
        "var": adata.var.copy(),
        "obsm": {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
        "uns_keys": sorted(adata.uns.keys()),
    }


def assert_unchanged(adata: AnnData, before: dict) -> None:
    after = snapshot(adata)
    assert after["shape"] == before["shape"]
    assert after["X_type"] is before["X_type"]
    np.testing.assert_array_equal(after["X"], before["X"])
    assert after["layers"].keys() == before["layers"].keys()
    for k in before["layers"]:
        np.testing.assert_array_equal(after["layers"][k], before["layers"][k])
    pd.testing.assert_frame_equal(after["obs"], before["obs"])
    pd.testing.assert_frame_equal(after["var"], before["var"])
    assert after["obsm"].keys() == before["obsm"].keys()
    assert after["uns_keys"] == before["uns_keys"]


# the MNIST networks' layout at a tiny width, for fast training tests on images
TINY_CONV = {
    "generator_fc": (16,),
    "generator_start_channels": 8,
    "generator_channels": (4,),
    "conv_channels": (4, 8),
    "fc_hidden": (16,),
}


def make_images(n_per_cluster: int = 20, n_clusters: int = 3, shape=(1, 8, 8), seed: int = 0):
    """uint8 images (n, C, H, W): cluster k lights up the k-th band of rows; labels alongside."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    x = rng.integers(0, 40, size=(len(labels), c, h, w))
    band = h // n_clusters
    for i, k in enumerate(labels):
        x[i, :, k * band : (k + 1) * band, :] += 200
    return x.astype(np.uint8), labels
