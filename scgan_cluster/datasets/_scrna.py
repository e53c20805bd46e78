"""Loaders of labelled single-cell count data: 10x_73k, the Zheng et al. 2017 sorted PBMCs, X/Y HDF5 files.

Every loader returns an AnnData of raw counts (float32, scipy CSR unless stated), the true
classes as 0-based integers in ``obs["label"]`` and their names in ``obs["cell_type"]``
(categorical, categories in label order). What each loader reads is checked (file presence,
shapes, label codes, non-negative integer counts) and a problem is a ``ValueError`` (or
``FileNotFoundError`` for a missing file) that says what was expected. Where the files come
from, their checksums and where to place them: ``data/README.md``.
"""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import io as spio
from scipy import sparse

from scgan_cluster.pp._prepare import choose_genes

__all__ = [
    "TENX73K_CELL_COUNTS",
    "TENX73K_LABEL_MAP",
    "TENX73K_POPULATIONS",
    "ZHENG10_POPULATIONS",
    "mouse_bladder",
    "pbmc4k",
    "read_xy_h5",
    "tenx_73k",
    "tenx_73k_from_10x",
    "worm_neuron",
    "zheng2017_sorted",
]

ZHENG10_POPULATIONS: tuple[str, ...] = (
    "b_cells",
    "cd14_monocytes",
    "cd34",
    "cd4_t_helper",
    "cd56_nk",
    "cytotoxic_t",
    "memory_t",
    "naive_cytotoxic",
    "naive_t",
    "regulatory_t",
)
"""The ten sorted populations of Zheng et al. 2017 (10x Genomics names), in alphabetical order.

The position of a name is its code in the 10x_73k ``labels.txt`` (and ``zheng10_code``)."""

TENX73K_LABEL_MAP: dict[int, int] = {0: 0, 1: 1, 2: 2, 4: 3, 6: 4, 7: 5, 8: 6, 9: 7}
"""The paper's map from the ``labels.txt`` codes of 10x_73k to the classes 0..7."""

TENX73K_POPULATIONS: tuple[str, ...] = tuple(ZHENG10_POPULATIONS[c] for c in TENX73K_LABEL_MAP)
"""The eight populations of 10x_73k, in the order of their classes 0..7."""

TENX73K_CELL_COUNTS: tuple[int, ...] = (10085, 2612, 9232, 8385, 10224, 11953, 10479, 10263)
"""Cells per class of 10x_73k (the eight contiguous blocks of the real ``labels.txt``): the
cell counts of the eight 10x Genomics downloads of Zheng et al. 2017."""

_ENV = "SCGAN_DATA_DIR"


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _as_path(path: object, name: str) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name} must be a str or a path, got {type(path).__name__}.")
    return Path(path).expanduser()


def _locate(path: object, folder: str, files: Sequence[str], what: str) -> Path:
    """The folder holding ``files``: ``path`` itself, ``path / folder``, or ``$SCGAN_DATA_DIR / folder``."""
    if path is None:
        env = os.environ.get(_ENV)
        if not env:
            raise ValueError(
                f"No path given for {what} and {_ENV} is not set. Pass the folder that holds "
                f"{list(files)}, or set {_ENV} to the data folder holding {folder}/ "
                "(see data/README.md)."
            )
        path = env
    base = _as_path(path, "path")
    for candidate in (base, base / folder):
        if candidate.is_dir() and all((candidate / f).is_file() for f in files):
            return candidate
    if base.is_dir():
        present = [f for f in files if (base / f).is_file() or (base / folder / f).is_file()]
        missing = [f for f in files if f not in present]
        raise FileNotFoundError(
            f"{what}: {missing} not found in {base} nor in {base / folder}. Place "
            f"{list(files)} there (see data/README.md)."
        )
    state = "is not a folder" if base.exists() else "does not exist"
    raise FileNotFoundError(f"{what}: {base} {state}. Pass the folder that holds {list(files)}.")


def _locate_file(path: object, folder: str, file: str, what: str) -> Path:
    """A single file given directly, or looked up in a folder as in :func:`_locate`."""
    if path is not None:
        p = _as_path(path, "path")
        if p.is_file():
            return p
    return _locate(path, folder, [file], what) / file


def _check_counts(values: np.ndarray, what: str) -> None:
    """Finite, non-negative integers (the stored values of a sparse matrix suffice)."""
    if not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{what} has dtype {values.dtype}; expected numeric counts.")
    if values.size == 0:
        return
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            raise ValueError(f"{what} contains NaN or infinite values; expected raw counts.")
        if not np.array_equal(values, np.round(values)):
            raise ValueError(
                f"{what} has non-integer values, so it does not hold raw counts "
                "(was it normalised or log-transformed?)."
            )
    if values.min() < 0:
        raise ValueError(
            f"{what} has negative values (min {float(values.min()):.4g}); expected raw counts."
        )


def _integer_codes(values: np.ndarray, what: str) -> np.ndarray:
    """Integer-valued numbers as int64, with a clear error otherwise."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{what} has dtype {values.dtype}; expected integer class codes.")
    if np.issubdtype(values.dtype, np.floating) and not (
        np.isfinite(values).all() and np.array_equal(values, np.round(values))
    ):
        raise ValueError(f"{what} holds non-integer values; expected integer class codes.")
    return values.astype(np.int64)


def _label_obs(
    labels: np.ndarray, names: Sequence[str], index: Sequence[str] | pd.Index
) -> pd.DataFrame:
    """``label`` (int64) and ``cell_type`` (categorical, categories in label order)."""
    names = list(names)
    return pd.DataFrame(
        {
            "label": labels.astype(np.int64),
            "cell_type": pd.Categorical.from_codes(labels, categories=names),
        },
        index=pd.Index(index),
    )


def _tenx73k_obs(codes: np.ndarray, index: Sequence[str] | pd.Index) -> pd.DataFrame:
    lut = np.full(max(TENX73K_LABEL_MAP) + 1, -1, dtype=np.int64)
    for code, label in TENX73K_LABEL_MAP.items():
        lut[code] = label
    obs = _label_obs(lut[codes], TENX73K_POPULATIONS, index)
    obs["label_10x73k_raw"] = codes.astype(np.int64)
    return obs


def _read_mtx(file: Path) -> sparse.coo_matrix:
    opener = gzip.open if file.name.endswith(".gz") else open
    try:
        with opener(file, "rb") as fh:
            m = spio.mmread(fh)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{file} is not a readable MatrixMarket file: {err}") from None
    return sparse.coo_matrix(m)


# --------------------------------------------------------------------------------------------
# 10x_73k, the authors' files
# --------------------------------------------------------------------------------------------


def _read_tenx73k_labels(file: Path) -> np.ndarray:
    lines = [ln.strip() for ln in file.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{file} is empty; expected one label code per line.")
    if any(len(ln.split()) != 1 for ln in lines):
        raise ValueError(f"{file} has lines with several values; expected one label code per line.")
    try:
        raw = np.array(lines, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{file} holds a value that is not a number: {err}") from None
    codes = _integer_codes(raw, str(file))
    unknown = np.setdiff1d(np.unique(codes), list(TENX73K_LABEL_MAP))
    if unknown.size:
        raise ValueError(
            f"{file} holds label codes {unknown.tolist()} that 10x_73k does not use; its codes are "
            f"{sorted(TENX73K_LABEL_MAP)} ({dict(zip(TENX73K_LABEL_MAP, TENX73K_POPULATIONS, strict=True))})."
        )
    return codes


def tenx_73k(
    path: str | os.PathLike | None = None,
    *,
    matrix_file: str | os.PathLike | None = None,
    labels_file: str | os.PathLike | None = None,
) -> AnnData:
    """The paper's 10x_73k data set from the authors' files ``sub_set-720.mtx`` and ``labels.txt``.

    73,233 sorted PBMCs of Zheng et al. 2017 in 8 populations, 720 genes, raw UMI counts, as
    the ClusterGAN authors distributed them (outside any package). The label codes of
    ``labels.txt`` are mapped to classes 0..7 with the paper's map
    ``{0: 0, 1: 1, 2: 2, 4: 3, 6: 4, 7: 5, 8: 6, 9: 7}``; the codes are the alphabetical positions
    of the 10x population names (see :data:`ZHENG10_POPULATIONS`).

    The MatrixMarket file may hold cells x genes or genes x cells: the side whose length equals
    the number of labels is taken as the cells. A square matrix, or one where neither side
    matches, is an error.

    Parameters
    ----------
    path
        Folder holding both files, or a data folder holding ``10x_73k/`` with them. ``None``:
        ``$SCGAN_DATA_DIR/10x_73k``.
    matrix_file
        Path of the count matrix, instead of ``<path>/sub_set-720.mtx`` (``.mtx`` or ``.mtx.gz``).
    labels_file
        Path of the labels, instead of ``<path>/labels.txt``.

    Returns
    -------
    AnnData with ``X`` the counts (float32 CSR, cells x genes), ``var_names`` ``gene_0`` ...
    (the files carry no gene names), and in ``obs``: ``label`` (int 0..7), ``cell_type``
    (categorical, the population names of :data:`TENX73K_POPULATIONS`) and ``label_10x73k_raw``
    (the code of ``labels.txt``).
    """
    folder = None
    if matrix_file is None or labels_file is None:
        needed = [
            n
            for n, given in (("sub_set-720.mtx", matrix_file), ("labels.txt", labels_file))
            if given is None
        ]
        folder = _locate(path, "10x_73k", needed, "10x_73k")
    mtx = (
        _as_path(matrix_file, "matrix_file")
        if matrix_file is not None
        else folder / "sub_set-720.mtx"
    )
    lab = _as_path(labels_file, "labels_file") if labels_file is not None else folder / "labels.txt"
    for f in (mtx, lab):
        if not f.is_file():
            raise FileNotFoundError(f"10x_73k: {f} not found.")
    codes = _read_tenx73k_labels(lab)
    m = _read_mtx(mtx)
    n = len(codes)
    if m.shape[0] == n and m.shape[1] != n:
        x = m.tocsr()
    elif m.shape[1] == n and m.shape[0] != n:
        x = m.T.tocsr()
    elif m.shape[0] == n:
        raise ValueError(
            f"{mtx} is square ({m.shape[0]} x {m.shape[1]}), so whether rows are cells or genes "
            "is ambiguous. Transpose it to cells x genes and load it with scipy/anndata directly."
        )
    else:
        raise ValueError(
            f"{mtx} has shape {m.shape} but {lab} holds {n} labels: neither side of the matrix "
            "matches the number of cells. Check that both files belong to the same data set."
        )
    _check_counts(x.data, str(mtx))
    x = x.astype(np.float32)
    x.sum_duplicates()
    obs = _tenx73k_obs(codes, [f"cell_{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"gene_{j}" for j in range(x.shape[1])])
    return AnnData(x, obs=obs, var=var)


# --------------------------------------------------------------------------------------------
# Zheng et al. 2017 sorted PBMCs (fastTopics pbmc_facs, staged)
# --------------------------------------------------------------------------------------------

_ZHENG_FOLDER = "zheng2017_pbmc_facs_fasttopics"
_ZHENG_FILES = ("counts_csr.npz", "obs.csv", "genes.csv")
_ZHENG_OBS_COLUMNS = ("cell_id", "celltype", "population", "zheng10_code", "in_10x_73k_classes")


def zheng2017_sorted(
    path: str | os.PathLike | None = None,
    *,
    populations: str = "10x_73k",
) -> AnnData:
    """Sorted PBMC populations of Zheng et al. 2017 at small scale, raw counts of all genes.

    The ``pbmc_facs`` data of the fastTopics R package, converted to ``counts_csr.npz``,
    ``obs.csv`` and ``genes.csv`` (see ``data/README.md``): 3,874 cells of the ten bead-enriched
    populations that 10x Genomics published with Zheng et al. 2017, 16,791 genes. The eight
    populations that 10x_73k keeps hold 3,238 cells; for them ``obs["label"]`` uses the 10x_73k
    classes, so this is a small stand-in for 10x_73k with the same classes.

    Parameters
    ----------
    path
        Folder holding the three files, or a data folder holding
        ``zheng2017_pbmc_facs_fasttopics/``. ``None``: ``$SCGAN_DATA_DIR/zheng2017_pbmc_facs_fasttopics``.
    populations
        ``"10x_73k"``: the 3,238 cells of the eight 10x_73k populations, ``obs["label"]`` in
        0..7 as 10x_73k codes them (b_cells, cd14_monocytes, cd34, cd56_nk, memory_t,
        naive_cytotoxic, naive_t, regulatory_t). ``"all"``: all 3,874 cells, ``obs["label"]``
        the ten-population code ``zheng10_code`` (alphabetical, :data:`ZHENG10_POPULATIONS`).

    Returns
    -------
    AnnData with ``X`` the raw UMI counts (float32 CSR), ``var_names`` Ensembl ids with
    ``var["gene_symbol"]``, ``obs_names`` the cell ids of the source, and in ``obs``: ``label``
    (int), ``cell_type`` (categorical population names), with ``populations="10x_73k"`` also
    ``label_10x73k_raw`` (the ``labels.txt`` code), and the source's columns ``barcode``,
    ``celltype`` (the sorting marker names), ``subpop``, ``population``, ``zheng10_code``,
    ``in_10x_73k_classes`` and ``split`` (the R package's train/test split). Cells keep the
    order of the files.
    """
    if populations not in ("10x_73k", "all"):
        raise ValueError(f'populations must be "10x_73k" or "all", got {populations!r}.')
    folder = _locate(path, _ZHENG_FOLDER, _ZHENG_FILES, "zheng2017_sorted")
    try:
        x = sparse.load_npz(folder / "counts_csr.npz")
    except (ValueError, OSError) as err:
        raise ValueError(
            f"{folder / 'counts_csr.npz'} is not a scipy sparse .npz file: {err}"
        ) from None
    obs = pd.read_csv(folder / "obs.csv")
    genes = pd.read_csv(folder / "genes.csv")
    for table, name, columns in (
        (obs, "obs.csv", _ZHENG_OBS_COLUMNS),
        (genes, "genes.csv", ("ensembl", "symbol")),
    ):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(
                f"{folder / name} lacks the columns {missing} (has {list(table.columns)})."
            )
    if x.shape != (len(obs), len(genes)):
        raise ValueError(
            f"counts_csr.npz has shape {x.shape} but obs.csv lists {len(obs)} cells and genes.csv "
            f"{len(genes)} genes; the files do not belong together."
        )
    _check_counts(x.data, str(folder / "counts_csr.npz"))
    codes = _integer_codes(obs["zheng10_code"].to_numpy(), "obs.csv column zheng10_code")
    if codes.size and (codes.min() < 0 or codes.max() >= len(ZHENG10_POPULATIONS)):
        raise ValueError(
            f"obs.csv column zheng10_code must lie in 0..{len(ZHENG10_POPULATIONS) - 1}, "
            f"found {sorted(set(codes.tolist()))}."
        )
    names = np.asarray(ZHENG10_POPULATIONS, dtype=object)[codes]
    source_pop = obs["population"].astype(str).str.replace(r"_filtered$", "", regex=True)
    if not np.array_equal(source_pop.to_numpy(dtype=object), names):
        raise ValueError(
            "obs.csv columns population and zheng10_code disagree; the code must be the "
            f"alphabetical position of the population in {list(ZHENG10_POPULATIONS)}."
        )
    keep = np.isin(codes, list(TENX73K_LABEL_MAP))
    if not np.array_equal(obs["in_10x_73k_classes"].to_numpy(dtype=bool), keep):
        raise ValueError(
            "obs.csv column in_10x_73k_classes disagrees with zheng10_code (it must be True "
            f"exactly for the codes {sorted(TENX73K_LABEL_MAP)})."
        )
    cell_ids = obs["cell_id"].astype(str)
    if not cell_ids.is_unique:
        raise ValueError("obs.csv column cell_id has duplicates.")
    gene_ids = pd.Index(genes["ensembl"].astype(str), name=None)
    if not gene_ids.is_unique:
        raise ValueError("genes.csv column ensembl has duplicates.")

    rest = obs.drop(columns="cell_id").set_index(pd.Index(cell_ids, name=None))
    if populations == "10x_73k":
        rest = rest.loc[keep]
        label_obs = _tenx73k_obs(codes[keep], rest.index)
        x = x[np.flatnonzero(keep)]
    else:
        label_obs = _label_obs(codes, ZHENG10_POPULATIONS, rest.index)
    obs_out = pd.concat([label_obs, rest], axis=1)
    var = pd.DataFrame({"gene_symbol": genes["symbol"].astype(str).to_numpy()}, index=gene_ids)
    return AnnData(sparse.csr_matrix(x, dtype=np.float32), obs=obs_out, var=var)


# --------------------------------------------------------------------------------------------
# X / Y HDF5 files (scDeepCluster / scDCC layout)
# --------------------------------------------------------------------------------------------

_SPARSE_MAX_DENSITY = 0.5
_BLOCK_BYTES = 1 << 27  # read dense X in row blocks of about 128 MiB


def _read_h5_matrix(ds: h5py.Dataset, as_sparse: bool | None, what: str):
    """Read a 2-D dataset in row blocks (aligned to its chunks), checking counts block by block."""
    n_rows, n_cols = ds.shape
    row_bytes = max(1, n_cols * ds.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // row_bytes)
    if ds.chunks is not None:
        chunk_rows = ds.chunks[0]
        step = max(chunk_rows, step // chunk_rows * chunk_rows)
    blocks = []
    for start in range(0, n_rows, step):
        block = sparse.csr_matrix(ds[start : start + step])
        _check_counts(block.data, what)
        blocks.append(block.astype(np.float32))
    x = sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, n_cols))
    x = sparse.csr_matrix(x, dtype=np.float32)
    density = x.nnz / max(1, n_rows * n_cols)
    if as_sparse is None:
        as_sparse = density <= _SPARSE_MAX_DENSITY
    return x if as_sparse else x.toarray()


def read_xy_h5(path: str | os.PathLike, *, as_sparse: bool | None = None) -> AnnData:
    """Read a labelled count matrix stored as datasets ``X`` (cells x genes) and ``Y`` in HDF5.

    The layout of the data files of scDeepCluster and scDCC (Tian et al. 2019, 2021), such as the
    10x PBMC 4k, Mouse Cell Atlas bladder and C. elegans neuron sets (:func:`pbmc4k`,
    :func:`mouse_bladder`, :func:`worm_neuron`). ``X`` must hold raw counts (non-negative
    integers, any numeric dtype) and ``Y`` one integer class code per cell. The files carry no
    gene or class names.

    Parameters
    ----------
    path
        The ``.h5`` file.
    as_sparse
        Return ``X`` as scipy CSR (``True``) or a dense array (``False``). ``None``: CSR when at
        most half the entries are non-zero (where CSR takes less memory than a dense array).

    Returns
    -------
    AnnData with ``X`` the counts (float32), ``obs_names`` ``cell_0`` ..., ``var_names``
    ``gene_0`` ..., and in ``obs``: ``label`` (int, the codes of ``Y`` renumbered 0..K-1 in
    increasing order) and ``cell_type`` (categorical, the original codes of ``Y`` as strings).
    """
    file = _as_path(path, "path")
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found.")
    try:
        fh = h5py.File(file, "r")
    except OSError as err:
        raise ValueError(f"{file} is not a readable HDF5 file: {err}") from None
    with fh:
        missing = [k for k in ("X", "Y") if k not in fh]
        if missing:
            raise ValueError(
                f"{file} lacks the datasets {missing} (has {list(fh.keys())}); expected counts in "
                "X (cells x genes) and class codes in Y."
            )
        if not isinstance(fh["X"], h5py.Dataset) or not isinstance(fh["Y"], h5py.Dataset):
            raise ValueError(
                f"{file}: X and Y must be HDF5 datasets (a dense matrix and a vector), not groups."
            )
        if fh["X"].ndim != 2:
            raise ValueError(f"{file}: X must be 2-D (cells x genes), got shape {fh['X'].shape}.")
        y = np.asarray(fh["Y"][()])
        if y.ndim == 2 and 1 in y.shape:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"{file}: Y must hold one class code per cell, got shape {y.shape}.")
        n_cells, n_genes = fh["X"].shape
        if len(y) != n_cells:
            raise ValueError(
                f"{file}: X has {n_cells} rows (cells) but Y has {len(y)} labels. If X is stored "
                "genes x cells, transpose it before saving."
            )
        if n_cells == 0 or n_genes == 0:
            raise ValueError(f"{file}: X is empty ({n_cells} x {n_genes}).")
        if not np.issubdtype(fh["X"].dtype, np.number):
            raise ValueError(f"{file}: X has dtype {fh['X'].dtype}; expected numeric counts.")
        codes = _integer_codes(y, f"{file}: Y")
        x = _read_h5_matrix(fh["X"], as_sparse, f"{file}: X")
    classes, labels = np.unique(codes, return_inverse=True)
    obs = _label_obs(labels, [str(c) for c in classes], [f"cell_{i}" for i in range(n_cells)])
    var = pd.DataFrame(index=[f"gene_{j}" for j in range(n_genes)])
    return AnnData(x, obs=obs, var=var)


def _published_xy(
    path: object,
    *,
    name: str,
    folder: str,
    file: str,
    shape: tuple[int, int],
    class_counts: dict[int, int],
    as_sparse: bool | None,
) -> AnnData:
    adata = read_xy_h5(_locate_file(path, folder, file, name), as_sparse=as_sparse)
    got = {int(k): int(v) for k, v in adata.obs["cell_type"].value_counts(sort=False).items()}
    if adata.shape != shape or got != class_counts:
        raise ValueError(
            f"This file is not the published {name} data set: expected {shape[0]} cells x "
            f"{shape[1]} genes with class sizes {class_counts}, got {adata.shape[0]} x "
            f"{adata.shape[1]} with {got}. Read other X/Y files with read_xy_h5."
        )
    return adata


def pbmc4k(path: str | os.PathLike | None = None, *, as_sparse: bool | None = None) -> AnnData:
    """10x Genomics PBMC 4k, top 2,000 genes, as distributed with scDCC (``10X_PBMC_top2000.h5``).

    4,271 cells x 2,000 genes, raw counts, 8 classes of sizes 1,292, 702, 606, 459, 450, 332,
    295 and 135 (codes 1..8, no names in the file).

    Caveat: these labels are not a ground truth from sorting. In the scDeepCluster / scDCC
    papers they come from the graph-based clustering of 10x Cell Ranger, so agreement with them
    measures agreement with that clustering, not with known cell types.

    Parameters
    ----------
    path
        The ``.h5`` file, a folder holding it, or a data folder holding
        ``pbmc4k_10x_top2000/``. ``None``: ``$SCGAN_DATA_DIR/pbmc4k_10x_top2000``.
    as_sparse
        As in :func:`read_xy_h5`.

    Returns
    -------
    AnnData as from :func:`read_xy_h5` (``obs["label"]`` 0..7, ``obs["cell_type"]`` "1".."8").
    The shape and class sizes are checked against the published file; an error says so if they
    differ (read other files with :func:`read_xy_h5`).
    """
    return _published_xy(
        path,
        name="pbmc4k",
        folder="pbmc4k_10x_top2000",
        file="10X_PBMC_top2000.h5",
        shape=(4271, 2000),
        class_counts={1: 1292, 2: 702, 3: 606, 4: 459, 5: 450, 6: 332, 7: 295, 8: 135},
        as_sparse=as_sparse,
    )


def mouse_bladder(
    path: str | os.PathLike | None = None, *, as_sparse: bool | None = None
) -> AnnData:
    """Mouse Cell Atlas bladder (Han et al. 2018), top 2,003 genes, as distributed with scDCC.

    ``mouse_bladder_cell_top2000.h5``: 2,746 cells x 2,003 genes, raw counts, 16 cell-type
    classes (codes 1..16, no names in the file; sizes 717, 357, 344, 316, 236, 224, 131, 80,
    75, 64, 44, 38, 41, 36, 30, 13).

    Parameters
    ----------
    path
        The ``.h5`` file, a folder holding it, or a data folder holding
        ``mouse_bladder_top2000/``. ``None``: ``$SCGAN_DATA_DIR/mouse_bladder_top2000``.
    as_sparse
        As in :func:`read_xy_h5`.

    Returns
    -------
    AnnData as from :func:`read_xy_h5` (``obs["label"]`` 0..15, ``obs["cell_type"]``
    "1".."16"), checked against the published shape and class sizes.
    """
    return _published_xy(
        path,
        name="mouse_bladder",
        folder="mouse_bladder_top2000",
        file="mouse_bladder_cell_top2000.h5",
        shape=(2746, 2003),
        class_counts={
            1: 717,
            2: 357,
            3: 344,
            4: 316,
            5: 236,
            6: 224,
            7: 131,
            8: 80,
            9: 75,
            10: 64,
            11: 44,
            12: 38,
            13: 41,
            14: 36,
            15: 30,
            16: 13,
        },
        as_sparse=as_sparse,
    )


def worm_neuron(path: str | os.PathLike | None = None, *, as_sparse: bool | None = None) -> AnnData:
    """C. elegans neurons, sci-RNA-seq (Cao et al. 2017), all genes, as distributed with scDCC.

    ``worm_neuron_cell.h5``: 4,186 cells x 13,488 genes, raw counts (1.4 % non-zero), 10
    neuron classes (codes 1..10, no names in the file; sizes 842, 334, 1,015, 443, 400, 314,
    305, 224, 239, 70). The file stores ``X`` dense in one compressed chunk, so reading it
    briefly needs about 450 MB of memory.

    Parameters
    ----------
    path
        The ``.h5`` file, a folder holding it, or a data folder holding ``worm_neuron/``.
        ``None``: ``$SCGAN_DATA_DIR/worm_neuron``.
    as_sparse
        As in :func:`read_xy_h5`.

    Returns
    -------
    AnnData as from :func:`read_xy_h5` (``obs["label"]`` 0..9, ``obs["cell_type"]``
    "1".."10"), checked against the published shape and class sizes.
    """
    return _published_xy(
        path,
        name="worm_neuron",
        folder="worm_neuron",
        file="worm_neuron_cell.h5",
        shape=(4186, 13488),
        class_counts={
            1: 842,
            2: 334,
            3: 1015,
            4: 443,
            5: 400,
            6: 314,
            7: 305,
            8: 224,
            9: 239,
            10: 70,
        },
        as_sparse=as_sparse,
    )


# --------------------------------------------------------------------------------------------
# 10x_73k rebuilt from the eight 10x Genomics downloads
# --------------------------------------------------------------------------------------------


def _population_folder(directory: Path, population: str) -> Path:
    matches = [
        p
        for p in sorted(directory.iterdir())
        if p.is_dir()
        and (p.name.lower() == population or p.name.lower().startswith(population + "_filtered"))
    ]
    if not matches:
        raise FileNotFoundError(
            f"No folder for the population {population!r} in {directory}. Extract its 10x "
            f"download (filtered gene-barcode matrices) into {directory / population}/ (or "
            f"{population}_filtered_gene_bc_matrices/)."
        )
    if len(matches) > 1:
        raise ValueError(
            f"Several folders in {directory} match the population {population!r}: "
            f"{[m.name for m in matches]}. Keep one."
        )
    return matches[0]


def _first_file(folder: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    return None


def _read_10x_mex(folder: Path, population: str) -> tuple[sparse.csr_matrix, pd.DataFrame, list]:
    """Counts (cells x genes, float32 CSR), genes (id, symbol) and barcodes of one population."""
    found = sorted(p for pattern in ("matrix.mtx", "matrix.mtx.gz") for p in folder.rglob(pattern))
    if not found:
        raise FileNotFoundError(
            f"{population}: no matrix.mtx (or matrix.mtx.gz) under {folder}. Expected the 10x "
            "layout filtered_matrices_mex/hg19/{matrix.mtx,genes.tsv,barcodes.tsv}."
        )
    if len(found) > 1:
        raise ValueError(
            f"{population}: several count matrices under {folder}: "
            f"{[str(p.relative_to(folder)) for p in found]}. Keep one (the hg19 one)."
        )
    mtx = found[0]
    here = mtx.parent
    genes_file = _first_file(here, ("genes.tsv", "genes.tsv.gz", "features.tsv", "features.tsv.gz"))
    barcodes_file = _first_file(here, ("barcodes.tsv", "barcodes.tsv.gz"))
    if genes_file is None or barcodes_file is None:
        missing = [
            name
            for name, found in (
                ("genes.tsv (or features.tsv.gz)", genes_file),
                ("barcodes.tsv", barcodes_file),
            )
            if found is None
        ]
        raise FileNotFoundError(f"{population}: {missing} not found next to {mtx}.")
    genes = pd.read_csv(genes_file, sep="\t", header=None, dtype=str)
    barcodes = pd.read_csv(barcodes_file, sep="\t", header=None, dtype=str)[0].tolist()
    m = _read_mtx(mtx)
    if m.shape != (len(genes), len(barcodes)):
        raise ValueError(
            f"{population}: {mtx} has shape {m.shape} but {genes_file.name} lists {len(genes)} "
            f"genes and {barcodes_file.name} {len(barcodes)} barcodes; a 10x matrix is genes x "
            "cells."
        )
    _check_counts(m.data, str(mtx))
    symbols = genes[1] if genes.shape[1] > 1 else genes[0]
    gene_table = pd.DataFrame({"id": genes[0].to_numpy(), "symbol": symbols.to_numpy()})
    x = m.T.tocsr().astype(np.float32)
    x.sum_duplicates()
    return x, gene_table, barcodes


def tenx_73k_from_10x(directory: str | os.PathLike, *, n_top_genes: int = 720) -> AnnData:
    """Rebuild 10x_73k from the eight per-population downloads of Zheng et al. 2017.

    10x Genomics publishes each bead-enriched PBMC population of Zheng et al. (2017, Nat
    Commun 8:14049) as "filtered gene-barcode matrices" (Cell Ranger MEX format). The real
    10x_73k ``labels.txt`` is eight contiguous blocks whose sizes equal the cell counts of
    b_cells, cd14_monocytes, cd34, cd56_nk, memory_t, naive_cytotoxic, naive_t and
    regulatory_t (:data:`TENX73K_CELL_COUNTS`), in that order. This function concatenates the
    eight matrices in that order (classes 0..7) and keeps the ``n_top_genes`` genes of highest
    variance of the raw counts over all cells (the paper's rule), in their original order.
    Which 720 genes the authors' ``sub_set-720.mtx`` holds is not published, so the gene set
    may differ from theirs.

    Place one folder per population in ``directory``, named after the population (``b_cells``,
    ``cd14_monocytes``, ...) or as the download unpacks (``b_cells_filtered_gene_bc_matrices``,
    ``cd34_filtered``, ...; case-insensitive). Anywhere inside it (e.g.
    ``filtered_matrices_mex/hg19/``, ``hg19/`` or the folder itself) exactly one
    ``matrix.mtx`` with ``genes.tsv`` and ``barcodes.tsv`` next to it; the gzipped Cell Ranger
    v3 names (``matrix.mtx.gz``, ``features.tsv.gz``, ``barcodes.tsv.gz``) are read as well.

    Parameters
    ----------
    directory
        The folder holding the eight population folders.
    n_top_genes
        Number of genes of highest count variance to keep (the paper: 720).

    Returns
    -------
    AnnData with ``X`` the raw counts (float32 CSR), ``obs_names`` ``<barcode>-<population>``,
    ``var_names`` the gene ids (Ensembl) with ``var["gene_symbol"]``, and the ``obs`` columns of
    :func:`tenx_73k`: ``label`` (0..7), ``cell_type`` and ``label_10x73k_raw``.

    Warns
    -----
    UserWarning
        When the number of cells of a population differs from the 10x_73k block size: the
        result is then not the paper's cell set (e.g. another Cell Ranger version's filtering).
    """
    directory = _as_path(directory, "directory")
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder.")
    parts, obs_names, codes = [], [], []
    ref_genes: pd.DataFrame | None = None
    for code, population in zip(TENX73K_LABEL_MAP, TENX73K_POPULATIONS, strict=True):
        x, genes, barcodes = _read_10x_mex(_population_folder(directory, population), population)
        if ref_genes is None:
            ref_genes = genes
            if not pd.Index(genes["id"]).is_unique:
                raise ValueError(f"{population}: the gene ids are not unique.")
        elif not np.array_equal(genes["id"].to_numpy(), ref_genes["id"].to_numpy()):
            raise ValueError(
                f"{population} has other genes (or another gene order) than "
                f"{TENX73K_POPULATIONS[0]}: {len(genes)} vs {len(ref_genes)} genes. All eight "
                "downloads must come from the same reference (hg19)."
            )
        parts.append(x)
        obs_names += [f"{b}-{population}" for b in barcodes]
        codes.append(np.full(x.shape[0], code, dtype=np.int64))
    sizes = [p.shape[0] for p in parts]
    differ = [
        f"{pop}: {n} (10x_73k: {expected})"
        for pop, n, expected in zip(TENX73K_POPULATIONS, sizes, TENX73K_CELL_COUNTS, strict=True)
        if n != expected
    ]
    if differ:
        warnings.warn(
            "The cell counts differ from the 10x_73k labels.txt blocks, so this is not the "
            f"paper's cell set: {'; '.join(differ)}.",
            UserWarning,
            stacklevel=2,
        )
    x = sparse.vstack(parts, format="csr")
    keep = choose_genes(x, n_top_genes)
    x = sparse.csr_matrix(x[:, keep], dtype=np.float32)
    var = pd.DataFrame(
        {"gene_symbol": ref_genes["symbol"].to_numpy()[keep]},
        index=pd.Index(ref_genes["id"].to_numpy()[keep]),
    )
    obs = _tenx73k_obs(np.concatenate(codes), obs_names)
    if not obs.index.is_unique:
        raise ValueError("Barcodes repeat within a population; check the barcodes.tsv files.")
    return AnnData(x, obs=obs, var=var)
