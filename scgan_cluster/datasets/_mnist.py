"""MNIST from its original IDX files (also the reader behind Fashion-MNIST, which shares the format)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from anndata import AnnData

from scgan_cluster._settings import logger

from ._idx import read_idx
from ._images import check_split, images_anndata

__all__ = ["mnist"]

_PREFIX = {"train": "train", "test": "t10k"}


def _candidates(prefix: str, kind: str, ndim: int) -> list[str]:
    # LeCun's names (train-images-idx3-ubyte), the dotted variant of some mirrors
    # (train-images.idx3-ubyte), each plain or gzipped
    names = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [n + ext for n in names for ext in (".gz", "")]


def _find(folder: Path, split: str, kind: str) -> Path | None:
    ndim = 3 if kind == "images" else 1
    for name in _candidates(_PREFIX[split], kind, ndim):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_split(folder: Path, split: str, name: str, n_classes: int):
    img_path, lab_path = _find(folder, split, "images"), _find(folder, split, "labels")
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"{img_path}: expected unsigned-byte images of 3 dimensions (n, rows, cols), got "
            f"{images.dtype} with shape {images.shape}."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{lab_path}: expected unsigned-byte labels of 1 dimension, got {labels.dtype} with "
            f"shape {labels.shape}."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{name} {split}: {len(images)} images in {img_path.name} but {len(labels)} labels in "
            f"{lab_path.name}."
        )
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"{lab_path}: labels must lie in 0..{n_classes - 1}, got {labels.max()}.")
    return images, labels, img_path, lab_path


def load_idx_dataset(
    path: str | os.PathLike, split: str, *, name: str, classes: list[str]
) -> AnnData:
    """The loader shared by MNIST and Fashion-MNIST (same file names, same format)."""
    split = check_split(split)
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder. Pass the folder that holds the {name} IDX files "
            "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)."
        )
    wanted = ["train", "test"] if split == "all" else [split]
    present, missing = [], {}
    for s in wanted:
        absent = [k for k in ("images", "labels") if _find(folder, s, k) is None]
        if absent:
            missing[s] = [_candidates(_PREFIX[s], k, 3 if k == "images" else 1)[1] for k in absent]
        else:
            present.append(s)
    if not present or (split != "all" and missing):
        found = sorted(p.name for p in folder.iterdir() if "ubyte" in p.name)
        complete = [
            s
            for s in ("train", "test")
            if _find(folder, s, "images") is not None and _find(folder, s, "labels") is not None
        ]
        hint = (
            f" The {complete[0]} split is complete: pass split={complete[0]!r}." if complete else ""
        )
        raise FileNotFoundError(
            f"{name}: missing {', '.join(f'{s}: {m}' for s, m in missing.items())} "
            f"(plain or .gz) in {folder}; IDX files there: {found}.{hint}"
        )
    if missing:
        logger.warning(
            "%s: only the %s split is present in %s (missing: %s); loading that.",
            name,
            " and ".join(present),
            folder,
            "; ".join(f"{s}: {', '.join(m)}" for s, m in missing.items()),
        )
    parts, labels, splits, files = [], [], [], {}
    for s in present:
        images, y, img_path, lab_path = _read_split(folder, s, name, len(classes))
        parts.append(images)
        labels.append(y)
        splits += [s] * len(y)
        files[s] = [img_path.name, lab_path.name]
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"{name}: the splits have images of different sizes {sorted(shapes)}.")
    pixels = np.concatenate(parts).astype(np.float32) / np.float32(255)
    return images_anndata(
        pixels[:, None],
        np.concatenate(labels),
        np.asarray(splits),
        name=name,
        classes=classes,
        info={"path": str(folder), "splits": present, "files": files},
    )


def mnist(path: str | os.PathLike, *, split: str = "all") -> AnnData:
    """MNIST handwritten digits, read from the original IDX files.

    The folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or gzipped (``.gz``;
    the dotted names ``train-images.idx3-ubyte`` of some mirrors are accepted too). Headers,
    types and sizes are checked (see :func:`read_idx`). Pixels are scaled to [0, 1] by 1/255, as
    in the paper (its generators end in a sigmoid).

    Parameters
    ----------
    path
        The folder with the IDX files.
    split
        ``"train"`` (60,000 images), ``"test"`` (10,000) or ``"all"``: every split whose image
        and label files are both present (a missing split is logged as a warning; the paper
        uses all 70,000 images and makes its own train / validation / test split).

    Returns
    -------
    AnnData with ``X`` the flattened 28 x 28 images (float32 in [0, 1], row-major),
    ``obs["label"]`` the digit (int), ``obs["split"]`` the file split it came from,
    ``uns["image_shape"] = [1, 28, 28]`` (which makes :class:`scgan_cluster.ClusterGAN` use the
    conv networks) and ``uns["dataset"]`` (name, classes, files read).

    Examples
    --------
    >>> adata = scgan_cluster.datasets.mnist("data/mnist", split="test")
    >>> adata.uns["image_shape"]
    [1, 28, 28]
    """
    return load_idx_dataset(path, split, name="mnist", classes=[str(d) for d in range(10)])
