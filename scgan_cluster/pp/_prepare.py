"""Preprocessing of a counts matrix into the generator's range [0, 1].

Two flavors, each a gene selection and a transform that can be replayed on new cells:

* ``"paper"`` (Section 4.1, 10x 73k): keep the ``n_top_genes`` genes of highest count variance,
  transform every entry as ``log2(1 + C)`` and divide by the largest transformed value.
* ``"lognorm"``: scanpy's standard normalisation: each cell's counts are scaled to
  ``target_sum`` (1e4) total counts over all its genes and transformed by ``ln(1 + x)``; the
  ``n_top_genes`` highly variable genes (``scanpy.pp.highly_variable_genes``, flavor "seurat")
  are kept and divided by their largest value. Removes sequencing depth, which the paper's
  transform leaves in the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from scgan_cluster._dask import chunk_results, is_dask, map_rows, row_slices
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
    "FLAVORS",
    "TARGET_SUM",
    "UNS_KEY",
    "apply_transform",
    "fit_transform",
    "library_size",
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

FLAVORS = ("paper", "lognorm")
"""Preprocessing flavors of :func:`preprocess` (see the module docstring)."""

TARGET_SUM = 1e4
"""Total counts per cell after the ``"lognorm"`` flavor's normalisation (scanpy's usual value)."""


CHUNK = 8192
"""Cells read at a time by the passes over an in-memory matrix (a dask matrix uses its own chunks)."""


def _column_sums(chunk, start: int = 0) -> np.ndarray:
    """``(2, n_columns)``: the column sums and sums of squares of a chunk, float64."""
    if sparse.issparse(chunk):
        c = sparse.csr_matrix(chunk)
        v = c.data.astype(np.float64)
        total = np.bincount(c.indices, weights=v, minlength=c.shape[1])
        squares = np.bincount(c.indices, weights=v * v, minlength=c.shape[1])
        return np.stack([total, squares])
    v = np.asarray(chunk, dtype=np.float64)
    return np.stack([v.sum(axis=0), (v * v).sum(axis=0)])


def _passes(x, fn) -> list:
    """``fn(chunk, first_row)`` over the chunks of cells of ``x`` (dask: by dask, in its chunks)."""
    if is_dask(x):
        return chunk_results(x, fn)
    return [fn(x[a:b], a) for a, b in row_slices(x.shape[0], CHUNK)]


def column_variance(x) -> np.ndarray:
    """Variance (ddof 0, float64) of each column, one chunk of cells at a time.

    ``E[x^2] - E[x]^2`` from per-chunk sums: exact sums for counts, so the same numbers for
    a numpy, scipy sparse or dask matrix and any chunking.
    """
    total, squares = np.sum(_passes(x, _column_sums), axis=0)
    n = x.shape[0]
    mean = total / n
    return squares / n - mean**2


def top_variance_genes(x, n_top: int) -> np.ndarray:
    """Column indices (ascending) of the ``n_top`` columns of highest variance; ties keep column order."""
    n_vars = x.shape[1]
    if n_top >= n_vars:
        return np.arange(n_vars)
    order = np.argsort(-column_variance(x), kind="stable")
    return np.sort(order[:n_top])


def check_n_top_genes(x, n_top_genes: int) -> int:
    """``n_top_genes`` validated against the number of genes of ``x``."""
    n_top_genes = check_positive_int(n_top_genes, "n_top_genes")
    if n_top_genes > x.shape[1]:
        raise ValueError(
            f"n_top_genes={n_top_genes} is larger than the number of genes ({x.shape[1]}). "
            f"Pass n_top_genes={x.shape[1]} or fewer."
        )
    return n_top_genes


def choose_genes(x, n_top_genes: int) -> np.ndarray:
    """Validate ``n_top_genes`` against the matrix and return the columns of highest count variance."""
    return top_variance_genes(x, check_n_top_genes(x, n_top_genes))


def fitted_scale(x_selected, what: str) -> float:
    """The paper's divisor for these counts; an error when every selected value is zero."""
    scale = count_scale(x_selected)
    if scale <= 0:
        raise ValueError(
            f"All selected genes are zero in every cell of {what}; there is nothing to scale."
        )
    return scale


def _max(x) -> float:
    """The largest entry of a numpy, scipy sparse or dask matrix (``-inf`` when empty)."""

    def chunk_max(chunk, start: int = 0) -> float:
        if 0 in chunk.shape:
            return -np.inf
        return float(chunk.max() if sparse.issparse(chunk) else np.max(np.asarray(chunk)))

    return max(_passes(x, chunk_max)) if is_dask(x) else chunk_max(x)


def count_scale(x) -> float:
    """``max(log2(1 + C))`` over the matrix: the paper's divisor (log2 is monotone, so log2(1 + max C))."""
    return float(np.log2(1.0 + _max(x)))


def log2_scale(x, scale: float):
    """``log2(1 + x) / scale`` as float32; a sparse matrix stays sparse (zeros map to zeros)."""
    if is_dask(x):
        return map_rows(x, lambda chunk: log2_scale(chunk, scale), x.shape[1])

    def values(v: np.ndarray) -> np.ndarray:  # float64 one slice at a time, float32 out
        out = np.empty(v.shape, dtype=np.float32)
        flat_in, flat_out = v.reshape(-1), out.reshape(-1)
        step = CHUNK * 256
        for a in range(0, flat_in.size, step):
            block = flat_in[a : a + step].astype(np.float64)
            flat_out[a : a + step] = np.log2(1.0 + block) / scale
        return out

    if sparse.issparse(x):
        if x.format not in ("csr", "csc"):
            x = x.tocsr()
        y = x.astype(np.float32)
        y.data = values(x.data)
        return y
    return values(np.ascontiguousarray(x))


def library_size(x, what: str = "adata.X") -> np.ndarray:
    """Total counts of each row, float64; an error naming the empty rows when one sums to zero."""
    if is_dask(x):
        totals = np.concatenate(
            _passes(x, lambda chunk, start: np.asarray(chunk.sum(axis=1), dtype=np.float64).ravel())
        )
    else:
        totals = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    empty = np.flatnonzero(totals <= 0)
    if len(empty):
        raise ValueError(
            f"{len(empty)} cells of {what} have no counts at all (e.g. rows {empty[:5].tolist()}), so "
            "they cannot be normalised by library size. Remove them first, e.g. with "
            "scanpy.pp.filter_cells(adata, min_counts=1), or use flavor='paper'."
        )
    return totals


def _log_normalise(x, totals: np.ndarray, target_sum: float):
    """``ln(1 + target_sum * C / total)`` per cell, float32; sparse stays sparse."""
    if is_dask(x):
        return map_rows(
            x, lambda chunk, t: _log_normalise(chunk, t, target_sum), x.shape[1], totals
        )
    factor = target_sum / totals
    if sparse.issparse(x):  # float64 one chunk of cells at a time
        parts = []
        for a, b in row_slices(x.shape[0], CHUNK):
            y = sparse.csr_matrix(x[a:b], dtype=np.float64)
            y = sparse.csr_matrix(sparse.diags(factor[a:b]) @ y)
            y.data = np.log1p(y.data)
            parts.append(y.astype(np.float32))
        return sparse.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
    out = np.empty(x.shape, dtype=np.float32)
    for a, b in row_slices(x.shape[0], CHUNK):
        out[a:b] = np.log1p(np.asarray(x[a:b], dtype=np.float64) * factor[a:b, None])
    return out


def _highly_variable(logx, n_top: int) -> np.ndarray:
    """Columns (ascending) of scanpy's ``n_top`` highly variable genes (flavor "seurat", log data)."""
    if n_top >= logx.shape[1]:
        return np.arange(logx.shape[1])
    import scanpy as sc

    a = AnnData(
        logx,
        obs=pd.DataFrame(index=[str(i) for i in range(logx.shape[0])]),
        var=pd.DataFrame(index=[str(j) for j in range(logx.shape[1])]),
    )
    sc.pp.highly_variable_genes(a, n_top_genes=n_top, flavor="seurat")
    return np.flatnonzero(a.var["highly_variable"].to_numpy())


def select_genes(x, n_top_genes: int, flavor: str, what: str = "adata.X") -> np.ndarray:
    """Columns (ascending) that ``flavor`` keeps from raw counts ``x``."""
    check_flavor(flavor)
    n_top_genes = check_n_top_genes(x, n_top_genes)
    if flavor == "paper":
        return top_variance_genes(x, n_top_genes)
    return _highly_variable(_log_normalise(x, library_size(x, what), TARGET_SUM), n_top_genes)


def _fit(x, cols: np.ndarray, flavor: str, what: str = "adata.X"):
    """``flavor``'s divisor fitted on raw counts ``x[:, cols]`` and those genes transformed.

    Returns ``(values, record)``; the transform is computed once.
    """
    check_flavor(flavor)
    if flavor == "paper":
        scale = fitted_scale(x[:, cols], what)
        return log2_scale(x[:, cols], scale), {"flavor": "paper", "scale": scale}
    record = {"flavor": "lognorm", "scale": 1.0, "target_sum": TARGET_SUM}
    values = apply_transform(x, cols, record, what)  # not yet divided
    scale = _max(values) if values.shape[0] * values.shape[1] else 0.0
    if scale <= 0:
        raise ValueError(
            f"All selected genes are zero in every cell of {what}; there is nothing to scale."
        )
    record["scale"] = scale
    return _divide(values, scale), record


def _divide(values, scale: float):
    """``values / scale`` in float32, in place for an in-memory matrix, lazily for dask."""
    if is_dask(values):
        return map_rows(values, lambda chunk: _divide(chunk.copy(), scale), values.shape[1])
    if sparse.issparse(values):
        values.data /= np.float32(scale)
    else:
        values /= np.float32(scale)
    return values


def fit_transform(x, n_top_genes: int, flavor: str, what: str = "adata.X"):
    """Choose genes on raw counts ``x`` and transform them by ``flavor``.

    Returns ``(values, cols, record)``: the transformed selected genes, float32 (sparse stays
    sparse), their column indices (ascending) and the record that :func:`apply_transform`
    replays (``flavor``, ``scale`` and, for ``"lognorm"``, ``target_sum``).
    """
    cols = select_genes(x, n_top_genes, flavor, what)
    values, record = _fit(x, cols, flavor, what)
    return values, cols, record


def apply_transform(
    x, cols: np.ndarray, record: dict, what: str = "adata.X", totals: np.ndarray | None = None
):
    """Replay a transform record on raw counts ``x`` (all genes; ``cols``: the genes to return).

    For ``"lognorm"`` each cell's library size is ``totals``, or its total over every column of
    ``x`` when ``totals`` is ``None``.
    """
    flavor = record.get("flavor", "paper")  # records written before flavors existed are "paper"
    check_flavor(flavor)
    scale = float(record["scale"])
    x_sel = x[:, cols]
    if flavor == "paper":
        return log2_scale(x_sel, scale)
    if totals is None:
        totals = library_size(x, what)
    logx = _log_normalise(x_sel, totals, float(record["target_sum"]))
    return _divide(logx, scale)


def check_flavor(flavor: object) -> str:
    """A known preprocessing flavor."""
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {FLAVORS}, got {flavor!r}.")
    return flavor


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
    flavor: Literal["paper", "lognorm"] = "paper",
    copy: bool = False,
) -> AnnData | None:
    """Preprocess raw counts into [0, 1] for ClusterGAN, as the paper does for 10x_73k or scanpy-style.

    ``flavor="paper"`` keeps the ``n_top_genes`` genes of highest variance of the raw counts, then
    replaces each count C by ``log2(1 + C) / s`` with ``s = max(log2(1 + C))`` over the kept
    genes. ``flavor="lognorm"`` scales each cell to 10,000 total counts (over all its genes),
    takes ``ln(1 + x)``, keeps scanpy's ``n_top_genes`` highly variable genes (flavor "seurat")
    and divides by their maximum. Either way the values lie in [0, 1]. Output is float32; a scipy
    sparse input stays sparse (zeros stay zeros, the matrix is never densified).

    Parameters
    ----------
    {doc_adata}
        Must hold raw (non-negative integer) counts.
    n_top_genes
        Number of genes to keep (the paper: 720 of highest count variance).
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
    flavor
        ``"paper"`` (the paper's transform, default here so that this function stays the paper's
        recipe) or ``"lognorm"`` (library-size normalisation, see above).
    {doc_copy}

    Returns
    -------
    ``None``, or a new AnnData if ``copy=True``. Sets

    ``adata.X`` (or ``adata.layers[layer]``)
        The transformed values, float32.
    ``adata.uns["clustergan_preprocess"]``
        ``flavor``, ``n_top_genes``, ``scale`` (the divisor), ``target_sum`` (``"lognorm"``), ``genes`` (the kept
        genes, in order), ``subset`` and, when given, ``layer``. Pass ``genes`` and ``scale`` from
        here to transform new data identically.
    ``adata.var["clustergan_selected"]``
        Boolean, only when ``subset=False``.
    """
    check_adata(adata, copy=copy)
    check_flavor(flavor)
    x = get_matrix(adata, layer)
    check_counts(x, layer, adata)
    what = where_text(layer)
    if genes is None:
        idx = select_genes(x, n_top_genes, flavor, what)
    else:
        idx = np.sort(align_genes(adata.var_names, genes))
        if len(set(idx.tolist())) != len(idx):
            raise ValueError("genes contains duplicates.")
    transformed = None
    if scale is None:
        values, record = _fit(x, idx, flavor, what)
        if subset:
            transformed = values
    else:
        scale = float(scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}.")
        record = {"flavor": flavor, "scale": scale}
        if flavor == "lognorm":
            record["target_sum"] = TARGET_SUM
    selected = np.zeros(adata.n_vars, dtype=bool)
    selected[idx] = True
    gene_names = adata.var_names[idx].astype(str).to_numpy()
    if transformed is None:
        transformed = apply_transform(x, idx if subset else np.arange(adata.n_vars), record, what)

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
        **record,
        "n_top_genes": len(idx),
        "genes": gene_names,
        "subset": bool(subset),
    }
    if layer is not None:
        info["layer"] = layer
    adata.uns[UNS_KEY] = info
    logger.info(
        "finished: kept %d genes, %s transform / %.4g into %s; added adata.uns[%r]",
        len(idx),
        flavor,
        record["scale"],
        what,
        UNS_KEY,
    )
    return adata if copy else None
