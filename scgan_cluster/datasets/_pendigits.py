"""UCI Pen-Based Recognition of Handwritten Digits (Pendigits) from ``pendigits.tra`` / ``pendigits.tes``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from scgan_cluster._settings import logger

from ._images import check_split

__all__ = ["pendigits"]

_FILES = {"train": "pendigits.tra", "test": "pendigits.tes"}
_N_FEATURES = 16
_MAX_VALUE = 100  # the UCI features are coordinates resampled and scaled to 0..100


def _find(folder: Path, split: str) -> Path | None:
    for name in (_FILES[split], _FILES[split] + ".csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    with path.open() as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            fields = [f.strip() for f in line.split(",")]
            if len(fields) != _N_FEATURES + 1:
                raise ValueError(
                    f"{path}, line {lineno}: expected the UCI layout, {_N_FEATURES} integers and "
                    f"the class, comma-separated; got {len(fields)} fields: {line[:60]!r}."
                )
            try:
                rows.append([int(f) for f in fields])
            except ValueError:
                raise ValueError(
                    f"{path}, line {lineno}: expected integers, got {line[:60]!r}."
                ) from None
    if not rows:
        raise ValueError(f"{path} holds no data rows.")
    data = np.asarray(rows, dtype=np.int64)
    x, y = data[:, :_N_FEATURES], data[:, _N_FEATURES]
    if x.min() < 0 or x.max() > _MAX_VALUE:
        raise ValueError(f"{path}: features must lie in 0..{_MAX_VALUE}, got {x.min()}..{x.max()}.")
    if y.min() < 0 or y.max() > 9:
        raise ValueError(f"{path}: classes must be digits 0..9, got {y.min()}..{y.max()}.")
    return x, y


def pendigits(path: str | os.PathLike, *, split: str = "all") -> AnnData:
    """Pendigits (Alpaydin & Alimoglu, UCI): pen trajectories of handwritten digits, 16 features.

    Reads the UCI files ``pendigits.tra`` (7,494 samples) and ``pendigits.tes`` (3,498), or the
    same files named ``pendigits.tra.csv`` / ``pendigits.tes.csv``: one sample per line, 16
    integers in 0..100 (8 resampled (x, y) pen positions) and the digit, comma-separated. The
    features are divided by 100 into [0, 1], the range of the paper's sigmoid generator for this
    dataset (the paper does not state its scaling).

    Parameters
    ----------
    path
        The folder with the two files (or the path of one of them).
    split
        ``"train"`` (``.tra``), ``"test"`` (``.tes``) or ``"all"`` (both present files; the
        paper uses all 10,992 samples and makes its own split).

    Returns
    -------
    AnnData with ``X`` (float32 in [0, 1], variables ``x1, y1, ..., x8, y8``),
    ``obs["label"]`` the digit (int), ``obs["split"]`` the file it came from and
    ``uns["dataset"]`` (name, classes, files, ``scale`` = 100).
    """
    split = check_split(split)
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder. Pass the folder that holds pendigits.tra and pendigits.tes."
        )
    wanted = ["train", "test"] if split == "all" else [split]
    found = {s: _find(folder, s) for s in wanted}
    missing = [s for s, p in found.items() if p is None]
    if missing and (split != "all" or len(missing) == len(wanted)):
        raise FileNotFoundError(
            f"pendigits: {', '.join(_FILES[s] for s in missing)} (or .csv) not found in {folder}."
        )
    if missing:
        logger.warning(
            "pendigits: %s not found in %s; loading the other split only.",
            _FILES[missing[0]],
            folder,
        )
    xs, ys, splits, files = [], [], [], {}
    for s, p in found.items():
        if p is None:
            continue
        x, y = _read(p)
        xs.append(x)
        ys.append(y)
        splits += [s] * len(y)
        files[s] = p.name
    x = np.concatenate(xs).astype(np.float32) / np.float32(_MAX_VALUE)
    y = np.concatenate(ys)
    counters: dict[str, int] = {}
    index = []
    for s in splits:
        index.append(f"{s}_{counters.get(s, 0)}")
        counters[s] = counters.get(s, 0) + 1
    obs = pd.DataFrame(
        {
            "label": y.astype(np.int64),
            "split": pd.Categorical(
                splits, categories=[s for s in ("train", "test") if s in files]
            ),
        },
        index=index,
    )
    var = pd.DataFrame(index=[f"{a}{i}" for i in range(1, 9) for a in ("x", "y")])
    adata = AnnData(x, obs=obs, var=var)
    adata.uns["dataset"] = {
        "name": "pendigits",
        "classes": [str(d) for d in range(10)],
        "path": str(folder),
        "splits": list(files),
        "files": files,
        "scale": _MAX_VALUE,
    }
    return adata
