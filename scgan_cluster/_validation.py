"""Input checks shared by pp, tl and the model. Each raises a ValueError/TypeError that says what to do."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from anndata import AnnData
from scipy import sparse

from scgan_cluster._dask import check_dask_matrix, check_numeric, chunk_results, is_dask

__all__ = [
    "check_adata",
    "get_matrix",
    "check_finite",
    "check_counts",
    "check_n_clusters",
    "check_positive_int",
    "resolve_device",
    "where_text",
]


def where_text(layer: str | None) -> str:
    """``"adata.X"`` or ``"adata.layers['counts']"``."""
    return "adata.X" if layer is None else f"adata.layers[{layer!r}]"


def check_adata(adata: object, *, copy: bool, allow_view: bool = False) -> AnnData:
    """Type, view, emptiness and var_names checks of an AnnData argument."""
    if not isinstance(adata, AnnData):
        raise TypeError(
            f"Expected an AnnData object, got {type(adata).__name__}. "
            "Wrap a matrix with anndata.AnnData(X), or use scgan_cluster.ClusterGAN for arrays."
        )
    if adata.is_view and not copy and not allow_view:
        raise ValueError(
            "adata is a view of another AnnData, and results cannot be written into a view. "
            "Pass adata.copy(), or call with copy=True."
        )
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"adata is empty ({adata.n_obs} cells x {adata.n_vars} genes).")
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"adata.var_names are not unique (e.g. {dup}). Call adata.var_names_make_unique() first."
        )
    return adata


def get_matrix(adata: AnnData, layer: str | None):
    """``adata.X`` or ``adata.layers[layer]``, with a clear error for an unknown layer."""
    if layer is None:
        x = adata.X
        if x is None:
            raise ValueError("adata.X is None. Pass layer= to name the layer that holds the data.")
    else:
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a str or None, got {type(layer).__name__}.")
        if layer not in adata.layers:
            raise ValueError(
                f"Layer {layer!r} not found in adata.layers; available layers: {list(adata.layers)}."
            )
        x = adata.layers[layer]
    if adata.isbacked:
        raise ValueError(
            "adata is backed (read with backed='r'), and ClusterGAN reads large files through "
            "dask instead: open it with scgan_cluster.read_dask(path), which keeps the matrix on "
            "disk and reads it a chunk of cells at a time (or load it with adata.to_memory())."
        )
    if is_dask(x):
        check_dask_matrix(x, where_text(layer))
        return x
    if not (isinstance(x, np.ndarray) or sparse.issparse(x)):
        raise TypeError(
            f"{where_text(layer)} is a {type(x).__name__}; expected a numpy array, a scipy sparse "
            "matrix or a dask array."
        )
    if x.ndim != 2:
        raise ValueError(f"{where_text(layer)} must be 2-D, got shape {x.shape}.")
    return x


def _values(x) -> np.ndarray:
    return x.data if sparse.issparse(x) else np.asarray(x)


def _value_stats(x, integers: bool = True) -> dict[str, float]:
    """Stored values of a matrix: how many, how many not finite, the smallest, how many not integer.

    A dask matrix is read once, a chunk of cells at a time; an in-memory one is scanned in
    slices, so that the temporaries stay small. ``integers=False`` skips the integer count.
    """

    def stats(chunk, start: int = 0) -> tuple[int, int, float, int]:
        v = np.asarray(_values(chunk)).reshape(-1)
        size, not_finite, lowest, not_integer = v.size, 0, np.inf, 0
        step = 1 << 20
        for a in range(0, v.size, step):
            part = v[a : a + step]
            if np.issubdtype(part.dtype, np.floating):
                ok = np.isfinite(part)
                n_ok = int(ok.sum())
                if n_ok < part.size:  # this slice's non-finite values are left out
                    not_finite += part.size - n_ok
                    part = part[ok]
                if integers:
                    not_integer += int((part != np.round(part)).sum())
            if part.size:
                lowest = min(lowest, float(part.min()))
        return size, not_finite, lowest, not_integer

    parts = chunk_results(x, stats) if is_dask(x) else [stats(x)]
    return {
        "size": sum(p[0] for p in parts),
        "not_finite": sum(p[1] for p in parts),
        "min": min(p[2] for p in parts),
        "not_integer": sum(p[3] for p in parts),
    }


def _check_dtype(x, what: str) -> np.dtype:
    return check_numeric(x.dtype if is_dask(x) else _values(x).dtype, what)


def _raise_not_finite(stats: dict[str, float], what: str) -> None:
    if stats["not_finite"]:
        raise ValueError(
            f"{what} contains {stats['not_finite']} NaN or infinite values; remove or impute them first."
        )


def check_finite(x, what: str) -> None:
    """Numeric dtype and no NaN / inf (looks only at stored values of a sparse matrix)."""
    dtype = _check_dtype(x, what)
    if np.issubdtype(dtype, np.floating):
        _raise_not_finite(_value_stats(x, integers=False), what)


def check_counts(
    x, layer: str | None, adata: AnnData | None = None, *, extra_hint: str = ""
) -> None:
    """Raw counts: finite, non-negative integers. The message names the layer to pass instead."""
    what = where_text(layer) if adata is not None else "The input"
    _check_dtype(x, what)
    stats = _value_stats(x)
    _raise_not_finite(stats, what)
    hint = ""
    if adata is not None:
        others = [k for k in adata.layers if k != layer]
        hint = (
            f" Pass layer= with the layer that holds raw counts (layers here: {others})"
            if others
            else " Pass layer= with a layer that holds raw counts"
        ) + "."
    hint += extra_hint
    if stats["size"] and stats["min"] < 0:
        raise ValueError(
            f"{what} has negative values (min {stats['min']:.4g}), so it does not hold raw counts.{hint}"
        )
    if stats["not_integer"]:
        raise ValueError(f"{what} has non-integer values, so it does not hold raw counts.{hint}")


def check_positive_int(value: object, name: str) -> int:
    """An integer >= 1 (bools rejected): TypeError for a non-integer, ValueError below 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    return int(value)


def check_n_clusters(n_clusters: object, n_obs: int) -> int:
    """2 <= n_clusters <= n_obs."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, numbers.Integral):
        raise TypeError(f"n_clusters must be an integer, got {n_clusters!r}.")
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}.")
    if n_clusters > n_obs:
        raise ValueError(f"n_clusters={n_clusters} exceeds the number of cells ({n_obs}).")
    return int(n_clusters)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> cuda, then mps, then cpu (after :attr:`settings.device`); else ``torch.device(device)``."""
    from ._settings import settings

    if device is None or (isinstance(device, str) and device == "auto"):
        device = settings.device
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for, but CUDA is not available here. Use device='auto'."
        )
    return dev
