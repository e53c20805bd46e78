"""COIL-20 (Columbia Object Image Library) from the 32 x 32 ``COIL20.mat`` (``fea`` / ``gnd``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from anndata import AnnData

from ._images import images_anndata

__all__ = ["coil20"]

_FILE = "COIL20.mat"


def coil20(path: str | os.PathLike) -> AnnData:
    """COIL-20 (Nene, Nayar & Murase, 1996): 20 objects x 72 poses, grey 32 x 32 images.

    Reads the MATLAB file ``COIL20.mat`` of the deep-subspace-clustering literature: ``fea``
    (1,440 x 1,024, one image per row, pixels in [0, 1]) and ``gnd`` (the object, 1..20). Each
    row stores its image column by column, so it is transposed here to give upright images
    (checked by eye on the staged file; see ``data/README.md``). Objects become labels 0..19.
    Pixels above 1 (a 0..255 variant of the file) are divided by 255.

    Parameters
    ----------
    path
        ``COIL20.mat``, or the folder that holds it.

    Returns
    -------
    AnnData with ``X`` the flattened upright images (float32 in [0, 1], row-major),
    ``obs["label"]`` the object (int, 0..19), ``obs["split"]`` = ``"all"``,
    ``uns["image_shape"] = [1, 32, 32]`` and ``uns["dataset"]``.
    """
    from scipy.io import loadmat

    path = Path(path)
    if path.is_dir():
        path = path / _FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. Pass COIL20.mat or the folder holding it.")
    try:
        mat = loadmat(path)
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ValueError(
            f"{path} is a MATLAB v7.3 (HDF5) file; save it as version 7 or lower "
            "(save('COIL20.mat', 'fea', 'gnd', '-v7'))."
        ) from e
    except ValueError as e:
        raise ValueError(f"{path} is not a readable MATLAB file: {e}") from e
    missing = [k for k in ("fea", "gnd") if k not in mat]
    if missing:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: expected the variables 'fea' and 'gnd', found {keys}.")
    fea = np.asarray(mat["fea"], dtype=np.float64)
    gnd = np.asarray(mat["gnd"]).ravel()
    if fea.ndim != 2 or len(gnd) != fea.shape[0]:
        raise ValueError(
            f"{path}: 'fea' must be (n, pixels) with one 'gnd' entry per row; got {fea.shape} "
            f"and {gnd.shape}."
        )
    side = int(round(np.sqrt(fea.shape[1])))
    if side * side != fea.shape[1]:
        raise ValueError(f"{path}: rows of {fea.shape[1]} pixels are not square images.")
    if not np.isfinite(fea).all() or fea.min() < 0:
        raise ValueError(f"{path}: 'fea' must hold finite, non-negative pixels.")
    if fea.max() > 1:
        if fea.max() > 255:
            raise ValueError(f"{path}: pixels exceed 255 (max {fea.max():.4g}).")
        fea = fea / 255.0
    if not np.array_equal(gnd, np.round(gnd)) or gnd.min() < 1:
        raise ValueError(f"{path}: 'gnd' must hold object numbers 1..K.")
    labels = gnd.astype(np.int64) - 1
    images = fea.reshape(-1, side, side).transpose(0, 2, 1)[:, None].astype(np.float32)
    n_objects = int(labels.max()) + 1
    return images_anndata(
        images,
        labels,
        np.full(len(labels), "all"),
        name="coil20",
        classes=[f"obj{k + 1}" for k in range(n_objects)],
        info={"path": str(path), "splits": ["all"], "files": {"all": path.name}},
    )
