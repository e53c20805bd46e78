"""The benchmark datasets with the paper's ClusterGAN settings (appendix 6.2), from ``../shared/data``.

Each names its entry of ``scgan_cluster.nn.ARCHITECTURES`` (the paper's networks for that data,
whose defaults are the paper's network options) and repeats the paper's zn / beta settings.

Each loader reads the files through :mod:`scgan_cluster.datasets` and returns a :class:`~_baselines.BenchData` (x float32 in [0, 1]), or
raises ``FileNotFoundError`` naming what is missing, so that the scripts run on what is present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _baselines import BenchData

from scgan_cluster import datasets as loaders
from scgan_cluster.pp import preprocess

__all__ = ["DATASETS", "load"]


def synthetic(data_dir: Path) -> BenchData:
    adata = loaders.synthetic(random_state=0)
    return BenchData(
        "synthetic",
        np.asarray(adata.X, dtype=np.float32),
        adata.obs["label"].cat.codes.to_numpy().astype(np.int64),
        4,
        architecture="synthetic",
        n_latent=6,
        description="the paper's synthetic data (4 x 2,500 points in R^100), generated with seed 0",
    )


def _x(adata) -> np.ndarray:
    x = np.asarray(adata.X, dtype=np.float32)
    shape = adata.uns.get("image_shape")
    return x if shape is None else x.reshape(-1, *(int(v) for v in shape))


def _y(adata) -> np.ndarray:
    return np.asarray(adata.obs["label"]).astype(np.int64)


def pendigits(data_dir: Path) -> BenchData:
    adata = loaders.pendigits(data_dir / "pendigits")
    return BenchData(
        "pendigits",
        _x(adata),
        _y(adata),
        10,
        architecture="pendigits",
        n_latent=5,
        description="UCI pendigits.tra + pendigits.tes (10,992 x 16), features / 100",
    )


def mnist(data_dir: Path) -> BenchData:
    adata = loaders.mnist(data_dir / "mnist")
    n = adata.n_obs
    which = (
        "the MNIST test set only (10,000 images; the 60,000 training images are not staged)"
        if n == 10_000
        else f"MNIST, {n:,} images"
    )
    return BenchData(
        "mnist", _x(adata), _y(adata), 10, architecture="mnist", n_latent=30, description=which
    )


def fashion(data_dir: Path) -> BenchData:
    adata = loaders.fashion_mnist(data_dir / "fashion_mnist")
    return BenchData(
        "fashion10",
        _x(adata),
        _y(adata),
        10,
        architecture="fashion_mnist",
        n_latent=40,
        beta_n=0.0,
        description=f"Fashion-MNIST, {adata.n_obs:,} images",
    )


def coil20(data_dir: Path) -> BenchData:
    adata = loaders.coil20(data_dir / "coil20")
    return BenchData(
        "coil20",
        _x(adata),
        _y(adata),
        20,
        architecture="coil20",
        n_latent=20,
        description="COIL-20, 1,440 grey 32 x 32 images, 20 objects",
    )


def tenx_73k(data_dir: Path) -> BenchData:
    adata = loaders.tenx_73k(data_dir)
    prepared = preprocess(adata, 720, copy=True)  # the paper's log2(1 + C) / max
    return BenchData(
        "10x_73k",
        np.asarray(prepared.X.toarray(), dtype=np.float32),
        adata.obs["label"].to_numpy(),
        8,
        architecture="mlp",
        n_latent=30,
        description="10x_73k (73,233 cells x 720 genes), log2(1 + C) / max",
    )


DATASETS = {
    "synthetic": synthetic,
    "pendigits": pendigits,
    "mnist": mnist,
    "fashion": fashion,
    "coil20": coil20,
    "10x_73k": tenx_73k,
}


def load(name: str, data_dir: Path) -> BenchData:
    """Load dataset ``name`` (a key of :data:`DATASETS`) from ``data_dir``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
    return DATASETS[name](Path(data_dir))
