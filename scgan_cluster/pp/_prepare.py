"""The paper's preprocessing of a counts matrix (Section 4.1, 10x 73k).

Keep the ``n_top_genes`` genes of highest count variance, transform every entry as
``log2(1 + C)`` and divide by the largest transformed value, so that the data lie in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from scgan_cluster._docs import doc_params
from scgan_cluster._settings import logger
from scgan_cluster._validation import (
    check_adata,
    check_counts,
    check_positive_int,
    get_matrix,
    where_text,
)

__all__ = [
    "UNS_KEY",
    "align_genes",
    "choose_genes",
    "count_scale",
    "fitted_scale",
    "log2_scale",
    "preprocess",
    "top_variance_genes",
]

UNS_KEY = "clustergan_preprocess"
"""Key of ``adata.uns`` where :func:`preprocess` records what it did."""


def top_variance_genes(x, n_top: int) -> np.ndarray:
    """Column indices (ascending) of the ``n_top`` columns of highest variance; ties keep column order."""
    n_vars = x.shape[1]
    if sparse.issparse(x):
        xf = x.astype(np.float64)
        mean = np.asarray(xf.mean(axis=0)).ravel()
        mean_sq = np.asarray(xf.multiply(xf).mean(axis=0)).ravel()
        var = mean_sq - mean**2
    else:
        var = np.var(np.asarray(x), axis=0, dtype=np.float64)
    if n_top >= n_vars:
        return np.arange(n_vars)
    order = np.argsort(-var, kind="stable")
    return np.sort(order[:n_top])


def choose_genes(x, n_top_genes: int) -> np.ndarray:
    """Validate ``n_top_genes`` against the matrix and return the columns of highest count variance."""
    n_top_genes = check_positive_int(n_top_genes, "n_top_genes")
    if n_top_genes > x.shape[1]:
        raise ValueError(
            f"n_top_genes={n_top_genes} is larger than the number of genes ({x.shape[1]}). "
            f"Pass n_top_genes={x.shape[1]} or fewer."
        )
    return top_variance_genes(x, n_top_genes)


def fitted_scale(x_selected, what: str) -> float:
    """The paper's divisor for these counts; an error when every selected value is zero."""
    scale = count_scale(x_selected)
    if scale <= 0:
        raise ValueError(
            f"All selected genes are zero in every cell of {what}; there is nothing to scale."
        )
    return scale


def count_scale(x) -> float:
    """``max(log2(1 + C))`` over the matrix: the paper's divisor (log2 is monotone, so log2(1 + max C))."""
    m = x.max() if sparse.issparse(x) else np.max(np.asarray(x))
    return float(np.log2(1.0 + float(m)))


def log2_scale(x, scale: float):
    """``log2(1 + x) / scale`` as float32; a sparse matrix stays sparse (zeros map to zeros)."""
    if sparse.issparse(x):
        if x.format not in ("csr", "csc"):
            x = x.tocsr()
        y = x.astype(np.float32)
        y.data = (np.log2(1.0 + x.data.astype(np.float64)) / scale).astype(np.float32)
        return y
    return (np.log2(1.0 + np.asarray(x, dtype=np.float64)) / scale).astype(np.float32)


def align_genes(var_names: pd.Index, genes: Sequence[str], what: str = "adata") -> np.ndarray:
    """Positions of ``genes`` in ``var_names``; an error that lists the missing ones."""
    genes = pd.Index([str(g) for g in genes])
    pos = pd.Index(var_names).get_indexer(genes)
    if (pos < 0).any():
        missing = genes[pos < 0]
        raise ValueError(
            f"{len(missing)} of the {len(genes)} genes this transform/model needs are missing from "
            f"{what}.var_names (e.g. {missing[:5].tolist()}). Pass data with the same genes "
            "(check that var_names use the same identifiers, e.g. symbols vs Ensembl IDs)."
        )
    return pos


@doc_params
def preprocess(
    adata: AnnData,
    n_top_genes: int = 720,
    *,
    layer: str | None = None,
    subset: bool = True,
    genes: Sequence[str] | None = None,
    scale: float | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Preprocess raw counts as the ClusterGAN paper does for 10x_73k.

    Keeps the ``n_top_genes`` genes of highest variance of the raw counts, then replaces each
    count C by ``log2(1 + C) / s`` with ``s = max(log2(1 + C))`` over the kept genes, so that values
    lie in [0, 1]. Output is float32; a scipy sparse input stays sparse (zeros stay zeros, the
    matrix is never densified).

    Parameters
    ----------
    {doc_adata}
        Must hold raw (non-negative integer) counts.
    n_top_genes
        Number of genes of highest count variance to keep (the paper: 720).
    {doc_layer}
        The transformed values are written back to the same place (``X`` or that layer).
    subset
        Keep only the selected genes. With ``False`` every gene is transformed (with the scale of
        the selected genes, so unselected genes may exceed 1) and the selection is marked in
        ``adata.var["clustergan_selected"]``.
    genes
        Apply a recorded selection instead of choosing by variance: the genes of an earlier call
        (``ref.uns["clustergan_preprocess"]["genes"]``) or of a model (``model.var_names``).
        Matched by ``var_names``; missing genes are an error. ``n_top_genes`` is then ignored.
    scale
        Apply a recorded divisor instead of the maximum of this data
        (``ref.uns["clustergan_preprocess"]["scale"]``), so that new cells are on the training scale.
    {doc_copy}

    Returns
    -------
    ``None``, or a new AnnData if ``copy=True``. Sets

    ``adata.X`` (or ``adata.layers[layer]``)
        The transformed values, float32.
    ``adata.uns["clustergan_preprocess"]``
        ``flavor`` (``"paper"``), ``n_top_genes``, ``scale`` (the divisor), ``genes`` (the kept
        genes, in order), ``subset`` and, when given, ``layer``. Pass ``genes`` and ``scale`` from
        here to transform new data identically.
    ``adata.var["clustergan_selected"]``
        Boolean, only when ``subset=False``.
    """
    check_adata(adata, copy=copy)
    x = get_matrix(adata, layer)
    check_counts(x, layer, adata)
    if genes is None:
        idx = choose_genes(x, n_top_genes)
    else:
        idx = np.sort(align_genes(adata.var_names, genes))
        if len(set(idx.tolist())) != len(idx):
            raise ValueError("genes contains duplicates.")
    x_sel = x[:, idx]
    if scale is None:
        scale = fitted_scale(x_sel, where_text(layer))
    else:
        scale = float(scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}.")
    selected = np.zeros(adata.n_vars, dtype=bool)
    selected[idx] = True
    gene_names = adata.var_names[idx].astype(str).to_numpy()
    transformed = log2_scale(x_sel if subset else x, scale)

    # every check has passed: from here on only writes
    if copy:
        adata = adata.copy()
    if subset:
        adata._inplace_subset_var(selected)
    else:
        adata.var["clustergan_selected"] = selected
    if layer is None:
        adata.X = transformed
    else:
        adata.layers[layer] = transformed
    info = {
        "flavor": "paper",
        "n_top_genes": len(idx),
        "scale": scale,
        "genes": gene_names,
        "subset": bool(subset),
    }
    if layer is not None:
        info["layer"] = layer
    adata.uns[UNS_KEY] = info
    logger.info(
        "finished: kept %d genes, log2(1 + C) / %.4g into %s; added adata.uns[%r]",
        len(idx),
        scale,
        where_text(layer),
        UNS_KEY,
    )
    return adata if copy else None
