"""Turn what the user passes (AnnData, numpy, scipy sparse, torch) into one prepared matrix."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse

from scgan_cluster._validation import (
    check_adata,
    check_counts,
    check_finite,
    get_matrix,
    where_text,
)
from scgan_cluster.pp._prepare import (
    UNS_KEY,
    align_genes,
    choose_genes,
    fitted_scale,
    log2_scale,
)

__all__ = ["Prepared", "prepare_fit", "prepare_predict", "is_prepared"]


@dataclass
class Prepared:
    """A float32 feature matrix ready for the networks.

    Attributes
    ----------
    x
        ``(n_obs, n_features)`` numpy array or scipy sparse matrix, float32.
    var_names
        Names of the features (gene names; ``"0"``, ``"1"``, ... for arrays).
    transform
        ``{"genes": [...], "scale": s}`` when the features are ``log2(1 + C) / s`` of counts of
        those genes, else ``None`` (the features were used as given).
    """

    x: np.ndarray | sparse.spmatrix
    var_names: np.ndarray
    transform: dict | None


def _as_matrix(data):
    """Array-like input -> 2-D numpy or scipy sparse matrix."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if sparse.issparse(data) or isinstance(data, np.ndarray):
        x = data
    elif isinstance(data, (pd.DataFrame, list, tuple)):
        x = np.asarray(data)
    else:
        raise TypeError(
            f"Expected an AnnData, numpy array, scipy sparse matrix or torch tensor, got {type(data).__name__}."
        )
    if x.ndim != 2:
        raise ValueError(f"Expected a 2-D matrix (cells x features), got shape {x.shape}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"The input is empty (shape {x.shape}).")
    return x


def _float32(x):
    if sparse.issparse(x):
        return sparse.csr_matrix(x, dtype=np.float32)
    return np.asarray(x, dtype=np.float32)


def is_prepared(adata: AnnData, layer: str | None) -> bool:
    """Whether ``pp.preprocess`` wrote this layer (its record in ``uns`` names the same layer).

    Parameters
    ----------
    adata
        The data.
    layer
        ``None`` for ``X``, else a key of ``adata.layers``.
    """
    info = adata.uns.get(UNS_KEY)
    return isinstance(info, dict) and "scale" in info and info.get("layer") == layer


def _prepared_columns(adata: AnnData) -> np.ndarray:
    if "clustergan_selected" in adata.var and not adata.uns[UNS_KEY].get("subset", True):
        return np.flatnonzero(adata.var["clustergan_selected"].to_numpy(dtype=bool))
    return np.arange(adata.n_vars)


def prepare_fit(
    data,
    *,
    layer: str | None = None,
    preprocess: bool = True,
    n_top_genes: int = 720,
    copy: bool = True,
) -> Prepared:
    """Input for training.

    With ``preprocess=True``: data already prepared by :func:`scgan_cluster.pp.preprocess` are
    used as they are; otherwise the data must be raw counts and the paper's transform is applied
    to a copy. With ``preprocess=False`` the values are used as they are.

    Parameters
    ----------
    data
        AnnData, numpy array, scipy sparse matrix or torch tensor (cells x features).
    layer
        For AnnData: read this layer instead of ``X``.
    preprocess
        Apply (or accept already applied) the paper's preprocessing.
    n_top_genes
        Genes kept when the preprocessing is applied here.
    copy
        Whether the caller will write into a copy (a view of an AnnData is then allowed).
    """
    if isinstance(data, AnnData):
        check_adata(data, copy=copy)
        x = get_matrix(data, layer)
        names = data.var_names.astype(str).to_numpy()
        if preprocess and is_prepared(data, layer):
            cols = _prepared_columns(data)
            x = x[:, cols] if len(cols) < data.n_vars else x
            check_finite(x, where_text(layer))
            info = data.uns[UNS_KEY]
            transform = {"genes": names[cols].tolist(), "scale": float(info["scale"])}
            return Prepared(_float32(x), names[cols], transform)
        adata = data
    else:
        if layer is not None:
            raise ValueError("layer= only applies to AnnData input.")
        x = _as_matrix(data)
        names = np.arange(x.shape[1]).astype(str)
        adata = None
    if not preprocess:
        check_finite(x, where_text(layer) if adata is not None else "The input")
        return Prepared(_float32(x), names, None)
    check_counts(
        x,
        layer,
        adata,
        extra_hint=" Or pass preprocess=False to use the values as they are (they should lie in [0, 1]).",
    )
    cols = choose_genes(x, n_top_genes)
    x_sel = x[:, cols]
    scale = fitted_scale(x_sel, where_text(layer) if adata is not None else "the input")
    transform = {"genes": names[cols].tolist(), "scale": scale}
    if adata is None:
        transform["n_input_features"] = int(x.shape[1])
    return Prepared(log2_scale(x_sel, scale), names[cols], transform)


def prepare_predict(
    data, var_names: np.ndarray, transform: dict | None, *, layer: str | None = None
) -> Prepared:
    """Input for a trained model: aligned to its features and put on its training scale.

    Parameters
    ----------
    data
        AnnData (aligned by ``var_names``) or a matrix with the model's columns.
    var_names
        The model's features, in order.
    transform
        The model's ``{"genes", "scale"[, "n_input_features"]}`` or ``None``.
    layer
        For AnnData: read this layer instead of ``X``.
    """
    n_features = len(var_names)
    if isinstance(data, AnnData):
        check_adata(data, copy=True, allow_view=True)
        x = get_matrix(data, layer)
        pos = align_genes(data.var_names, var_names)
        x = x[:, pos]
        if transform is not None and is_prepared(data, layer):
            scale = float(data.uns[UNS_KEY]["scale"])
            if not np.isclose(scale, transform["scale"]):
                warnings.warn(
                    f"These data were preprocessed with scale {scale:.6g}, the model with "
                    f"{transform['scale']:.6g}; the values are not on the training scale. Pass raw "
                    "counts instead, or rerun pp.preprocess on counts with genes=model.var_names, "
                    "scale=model.scale.",
                    UserWarning,
                    stacklevel=3,
                )
            check_finite(x, where_text(layer))
            return Prepared(_float32(x), np.asarray(var_names), transform)
        what = where_text(layer)
        adata = data
    else:
        if layer is not None:
            raise ValueError("layer= only applies to AnnData input.")
        x = _as_matrix(data)
        if transform is not None and "n_input_features" in transform:
            # trained on an unnamed counts matrix: the kept genes are column positions
            n_in = int(transform["n_input_features"])
            if x.shape[1] != n_in:
                raise ValueError(
                    f"The model was trained on {n_in} columns of counts, got {x.shape[1]}."
                )
            x = x[:, np.asarray(transform["genes"], dtype=int)]
        elif x.shape[1] != n_features:
            raise ValueError(
                f"The model expects {n_features} features (its var_names, in order), got {x.shape[1]}. "
                "Pass an AnnData to align genes by name."
            )
        what = "The input"
        adata = None
    if transform is None:
        check_finite(x, what)
        return Prepared(_float32(x), np.asarray(var_names), None)
    check_counts(x, layer, adata)
    return Prepared(log2_scale(x, float(transform["scale"])), np.asarray(var_names), transform)
