"""The benchmark datasets with the paper's ClusterGAN settings (appendix 6.2), from ``../shared/data``.

Each names its entry of ``scgan_cluster.nn.ARCHITECTURES`` (the paper's networks for that data,
whose defaults are the paper's network options) and repeats the paper's zn / beta settings.

Each loader returns a :class:`~_baselines.BenchData` (x float32 in [0, 1]) or raises
``FileNotFoundError`` naming the missing file, so that the scripts run on what is present.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from _baselines import BenchData

from scgan_cluster.datasets import synthetic as make_synthetic

__all__ = ["DATASETS", "load"]


def _idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzipped or not)."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _first(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"none of {names} in {folder}")


def synthetic(data_dir: Path) -> BenchData:
    adata = make_synthetic(random_state=0)
    return BenchData(
        "synthetic",
        np.asarray(adata.X, dtype=np.float32),
        adata.obs["label"].cat.codes.to_numpy().astype(np.int64),
        4,
        architecture="synthetic",
        n_latent=6,
        description="the paper's synthetic data (4 x 2,500 points in R^100), generated with seed 0",
    )


def pendigits(data_dir: Path) -> BenchData:
    folder = data_dir / "pendigits"
    parts = [
        np.loadtxt(_first(folder, f"pendigits.{s}.csv", f"pendigits.{s}"), delimiter=",")
        for s in ("tra", "tes")
    ]
    d = np.vstack(parts)
    return BenchData(
        "pendigits",
        (d[:, :16] / 100.0).astype(np.float32),
        d[:, 16].astype(np.int64),
        10,
        architecture="pendigits",
        n_latent=5,
        description="UCI pendigits.tra + pendigits.tes (10,992 x 16), features / 100",
    )


def _images(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0)[:, None]


def mnist(data_dir: Path) -> BenchData:
    folder = data_dir / "mnist"
    x = _idx(_first(folder, "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"))
    y = _idx(_first(folder, "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"))
    return BenchData(
        "mnist",
        _images(x),
        y.astype(np.int64),
        10,
        architecture="mnist",
        n_latent=30,
        description="the MNIST test set only (10,000 images; the 60,000 training images are not staged)",
    )


def fashion(data_dir: Path) -> BenchData:
    folder = data_dir / "fashion_mnist"
    x = _idx(_first(folder, "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"))
    y = _idx(_first(folder, "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"))
    return BenchData(
        "fashion10",
        _images(x),
        y.astype(np.int64),
        10,
        architecture="fashion_mnist",
        n_latent=40,
        beta_n=0.0,
        description="the Fashion-MNIST test set (10,000 images)",
    )


def coil20(data_dir: Path) -> BenchData:
    from scipy.io import loadmat

    m = loadmat(_first(data_dir / "coil20", "COIL20.mat"))
    # stored column-major (PROVENANCE.md): transpose to upright 32 x 32 images
    x = m["fea"].reshape(-1, 32, 32).transpose(0, 2, 1).astype(np.float32)[:, None]
    return BenchData(
        "coil20",
        np.clip(x, 0.0, 1.0),
        m["gnd"].ravel().astype(np.int64) - 1,
        20,
        architecture="coil20",
        n_latent=20,
        description="COIL-20, 1,440 grey 32 x 32 images, 20 objects",
    )


def tenx_73k(data_dir: Path) -> BenchData:
    from scipy.io import mmread

    folder = data_dir / "10x_73k"
    counts = mmread(_first(folder, "sub_set-720.mtx")).tocsr().toarray()
    remap = {0: 0, 1: 1, 2: 2, 4: 3, 6: 4, 7: 5, 8: 6, 9: 7}
    y = np.array([remap[int(v)] for v in np.loadtxt(folder / "labels.txt")])
    x = np.log2(1.0 + counts)
    return BenchData(
        "10x_73k",
        (x / x.max()).astype(np.float32),
        y,
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
