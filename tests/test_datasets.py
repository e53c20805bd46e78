import gzip
import io
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from _helpers import SHARED_DATA
from scipy import io as spio
from scipy import sparse

import scgan_cluster as scg


def test_synthetic_matches_the_papers_recipe():
    a = scg.datasets.synthetic()
    assert a.shape == (10000, 100)
    assert a.obs["label"].value_counts().to_dict() == {str(k): 2500 for k in range(4)}
    w, u = a.uns["synthetic"]["W"], a.uns["synthetic"]["U"]
    assert w.shape == (10, 2)
    assert u.shape == (100, 10)
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    np.testing.assert_allclose(a.X, sig(sig(a.obsm["Z"] @ w.T) @ u.T), rtol=1e-5)
    assert a.X.dtype == np.float32
    assert a.X.min() > 0
    assert a.X.max() < 1
    b = scg.datasets.synthetic(random_state=0)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, scg.datasets.synthetic(random_state=1).X)
    assert scg.datasets.DATASETS["synthetic"] is scg.datasets.synthetic


def test_synthetic_options_and_errors():
    a = scg.datasets.synthetic(10, 3, n_features=7, n_hidden=4)
    assert a.shape == (30, 7)
    assert a.obs["label"].nunique() == 3
    with pytest.raises(ValueError, match="n_per_cluster"):
        scg.datasets.synthetic(0)
    with pytest.raises(ValueError, match="cluster_std"):
        scg.datasets.synthetic(cluster_std=0)


@pytest.mark.slow
def test_mlp_clustergan_clusters_the_synthetic_data():
    a = scg.datasets.synthetic()
    scg.tl.clustergan(a, 4, flavor="paper", preprocess=False, max_iter=5000, random_state=0)
    acc = scg.metrics.hungarian_accuracy(a.obs["label"], a.obs["clustergan"])
    assert acc >= 0.95


# --------------------------------------------------------------------------------------------
# single-cell count loaders (scgan_cluster/datasets/_scrna.py)
# --------------------------------------------------------------------------------------------

ZHENG_DIR = SHARED_DATA / "zheng2017_pbmc_facs_fasttopics"
LABELS_73K = SHARED_DATA / "10x_73k_labels_only" / "labels.txt"
# class sizes from ../shared/data/PROVENANCE.md
ZHENG8_COUNTS = [795, 168, 701, 686, 238, 238, 198, 214]
ZHENG10_COUNTS = [795, 168, 701, 256, 686, 380, 238, 238, 198, 214]
TENX73K_COUNTS = [10085, 2612, 9232, 8385, 10224, 11953, 10479, 10263]
XY_STAGED = {
    "pbmc4k": (
        "pbmc4k_10x_top2000/10X_PBMC_top2000.h5",
        (4271, 2000),
        [1292, 702, 606, 459, 450, 332, 295, 135],
    ),
    "mouse_bladder": (
        "mouse_bladder_top2000/mouse_bladder_cell_top2000.h5",
        (2746, 2003),
        [717, 357, 344, 316, 236, 224, 131, 80, 75, 64, 44, 38, 41, 36, 30, 13],
    ),
    "worm_neuron": (
        "worm_neuron/worm_neuron_cell.h5",
        (4186, 13488),
        [842, 334, 1015, 443, 400, 314, 305, 224, 239, 70],
    ),
}


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"staged data file {path} is absent (set SCGAN_DATA_DIR; see data/README.md)")


def _label_counts(a) -> list[int]:
    return np.bincount(a.obs["label"].to_numpy()).tolist()


def _assert_raw_counts_csr(a) -> None:
    assert isinstance(a.X, sparse.csr_matrix)
    assert a.X.dtype == np.float32
    assert a.X.data.min() >= 0
    np.testing.assert_array_equal(a.X.data, np.round(a.X.data))
    assert a.obs["label"].dtype == np.int64
    assert isinstance(a.obs["cell_type"].dtype, pd.CategoricalDtype)


# ---- Zheng et al. 2017 sorted populations (staged) -----------------------------------------


@pytest.fixture(scope="module")
def zheng8():
    _need(ZHENG_DIR)
    return scg.datasets.zheng2017_sorted(ZHENG_DIR)


def test_zheng2017_sorted_staged_10x73k_populations(zheng8):
    a = zheng8
    assert a.shape == (3238, 16791)
    _assert_raw_counts_csr(a)
    assert _label_counts(a) == ZHENG8_COUNTS
    assert list(a.obs["cell_type"].cat.categories) == list(scg.datasets.TENX73K_POPULATIONS)
    codes = a.obs["label"].to_numpy()
    assert (a.obs["cell_type"].cat.codes.to_numpy() == codes).all()
    raw = a.obs["label_10x73k_raw"].to_numpy()
    np.testing.assert_array_equal(raw, a.obs["zheng10_code"].to_numpy())
    np.testing.assert_array_equal(np.array([0, 1, 2, 4, 6, 7, 8, 9])[codes], raw)
    assert {"barcode", "celltype", "subpop", "population", "split"} <= set(a.obs.columns)
    assert a.var_names[0].startswith("ENSG")
    assert a.var_names.is_unique
    assert "gene_symbol" in a.var
    assert a.obs_names[0] == "CGTGATGATTTCAC-1-b_cells"
    # the independent 8-class conversion staged next to the files agrees cell by cell
    mimic = ZHENG_DIR / "zheng8_top720var_counts.npz"
    if mimic.exists():
        z = np.load(mimic, allow_pickle=False)
        np.testing.assert_array_equal(z["cell_id"].astype(str), a.obs_names.to_numpy())
        np.testing.assert_array_equal(z["y"], codes)
        cols = a.var_names.get_indexer(z["genes_ensembl"].astype(str))
        np.testing.assert_array_equal(a.X[:, cols].toarray(), z["X"])


def test_zheng2017_sorted_staged_all_populations(zheng8):
    a = scg.datasets.zheng2017_sorted(ZHENG_DIR.parent, populations="all")  # data folder works
    assert a.shape == (3874, 16791)
    _assert_raw_counts_csr(a)
    assert a.X.nnz == 2_767_251
    assert _label_counts(a) == ZHENG10_COUNTS
    np.testing.assert_array_equal(a.obs["label"], a.obs["zheng10_code"])
    assert list(a.obs["cell_type"].cat.categories) == list(scg.datasets.ZHENG10_POPULATIONS)
    assert "label_10x73k_raw" not in a.obs
    sub = a[a.obs["in_10x_73k_classes"].to_numpy()]
    np.testing.assert_array_equal(sub.obs_names, zheng8.obs_names)
    assert (sub.X != zheng8.X).nnz == 0


def _write_zheng(folder: Path, *, counts=None, codes=(0, 2, 3, 9), drop=None, population=None):
    folder.mkdir(parents=True, exist_ok=True)
    names = scg.datasets.ZHENG10_POPULATIONS
    codes = np.asarray(codes)
    counts = np.arange(len(codes) * 3).reshape(len(codes), 3) if counts is None else counts
    sparse.save_npz(folder / "counts_csr.npz", sparse.csr_matrix(np.asarray(counts, np.int32)))
    obs = pd.DataFrame(
        {
            "cell_id": [f"c{i}" for i in range(len(codes))],
            "barcode": [f"b{i}" for i in range(len(codes))],
            "celltype": "x",
            "subpop": "y",
            "population": population or [names[c] for c in codes],
            "zheng10_code": codes,
            "in_10x_73k_classes": np.isin(codes, [0, 1, 2, 4, 6, 7, 8, 9]),
            "split": "train",
        }
    )
    if drop:
        obs = obs.drop(columns=drop)
    obs.to_csv(folder / "obs.csv", index=False)
    pd.DataFrame({"ensembl": ["E1", "E2", "E3"], "symbol": ["A", "B", "C"]}).to_csv(
        folder / "genes.csv", index=False
    )
    return folder


def test_zheng2017_sorted_tiny_files_and_errors(tmp_path, monkeypatch):
    f = _write_zheng(tmp_path / "zheng2017_pbmc_facs_fasttopics")
    a = scg.datasets.zheng2017_sorted(f)
    assert a.obs["label"].tolist() == [0, 2, 7]  # codes 0, 2, 9; code 3 (cd4_t_helper) dropped
    assert a.obs["cell_type"].tolist() == ["b_cells", "cd34", "regulatory_t"]
    np.testing.assert_array_equal(a.X.toarray(), [[0, 1, 2], [3, 4, 5], [9, 10, 11]])
    b = scg.datasets.zheng2017_sorted(f, populations="all")
    assert b.obs["label"].tolist() == [0, 2, 3, 9]
    monkeypatch.setenv("SCGAN_DATA_DIR", str(tmp_path))
    assert scg.datasets.zheng2017_sorted().shape == (3, 3)
    monkeypatch.delenv("SCGAN_DATA_DIR")
    with pytest.raises(ValueError, match="SCGAN_DATA_DIR is not set"):
        scg.datasets.zheng2017_sorted()
    with pytest.raises(ValueError, match="populations"):
        scg.datasets.zheng2017_sorted(f, populations="eight")
    with pytest.raises(FileNotFoundError, match="elsewhere does not exist"):
        scg.datasets.zheng2017_sorted(tmp_path / "elsewhere")
    (f / "genes.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"\['genes.csv'\] not found"):
        scg.datasets.zheng2017_sorted(f)
    f = _write_zheng(tmp_path / "neg", counts=-np.ones((4, 3)))
    with pytest.raises(ValueError, match="negative"):
        scg.datasets.zheng2017_sorted(f)
    f = _write_zheng(tmp_path / "shape", counts=np.ones((3, 3)), codes=(0, 2, 3, 9))
    with pytest.raises(ValueError, match="do not belong together"):
        scg.datasets.zheng2017_sorted(f)
    f = _write_zheng(tmp_path / "col", drop=["zheng10_code"])
    with pytest.raises(ValueError, match="lacks the columns"):
        scg.datasets.zheng2017_sorted(f)
    f = _write_zheng(tmp_path / "pop", population=["b_cells", "cd34", "cd34", "naive_t"])
    with pytest.raises(ValueError, match="disagree"):
        scg.datasets.zheng2017_sorted(f)
    f = _write_zheng(tmp_path / "code", codes=(0, 2, 3, 10), population=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"must lie in 0\.\.9"):
        scg.datasets.zheng2017_sorted(f)


# ---- 10x_73k from the authors' files ------------------------------------------------------


def _write_mtx(file: Path, m) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spio.mmwrite(buf, sparse.coo_matrix(m))
    data = buf.getvalue()
    file.write_bytes(gzip.compress(data) if file.name.endswith(".gz") else data)
    return file


def test_tenx_73k_real_labels_with_a_generated_matrix(tmp_path):
    _need(LABELS_73K)
    n = 73233
    rng = np.random.default_rng(0)
    rows = rng.choice(n, 300, replace=False)
    m = sparse.coo_matrix((rng.integers(1, 50, 300), (rows, rng.integers(0, 720, 300))), (n, 720))
    folder = tmp_path / "10x_73k"
    _write_mtx(folder / "sub_set-720.mtx", m)
    (folder / "labels.txt").symlink_to(LABELS_73K)
    a = scg.datasets.tenx_73k(tmp_path)  # a data folder holding 10x_73k/
    assert a.shape == (n, 720)
    _assert_raw_counts_csr(a)
    assert abs(a.X - m.tocsr()).sum() == 0
    assert a.X.nnz == 300
    assert _label_counts(a) == TENX73K_COUNTS == list(scg.datasets.TENX73K_CELL_COUNTS)
    labels = a.obs["label"].to_numpy()
    assert (np.diff(labels) >= 0).all()  # eight contiguous blocks in population order
    assert a.obs["cell_type"].iloc[0] == "b_cells"
    assert a.obs["cell_type"].iloc[-1] == "regulatory_t"
    raw = a.obs["label_10x73k_raw"].value_counts().to_dict()
    assert raw == {0: 10085, 1: 2612, 2: 9232, 4: 8385, 6: 10224, 7: 11953, 8: 10479, 9: 10263}
    # genes x cells on disk is read the same way (explicit paths)
    _write_mtx(tmp_path / "t.mtx.gz", m.T)
    b = scg.datasets.tenx_73k(matrix_file=tmp_path / "t.mtx.gz", labels_file=LABELS_73K)
    assert (b.X != a.X).nnz == 0
    np.testing.assert_array_equal(b.obs["label"], labels)


def test_tenx_73k_tiny_files_and_errors(tmp_path):
    codes = [0, 9, 4, 4, 1]
    (tmp_path / "labels.txt").write_text("".join(f"{c:.18e}\n" for c in codes))
    counts = np.array([[1, 0, 2], [0, 0, 0], [3, 1, 0], [0, 5, 0], [7, 0, 1]])
    _write_mtx(tmp_path / "sub_set-720.mtx", counts)
    a = scg.datasets.tenx_73k(tmp_path)
    assert a.obs["label"].tolist() == [0, 7, 3, 3, 1]
    assert a.obs["cell_type"].tolist() == [
        "b_cells",
        "regulatory_t",
        "cd56_nk",
        "cd56_nk",
        "cd14_monocytes",
    ]
    assert a.obs["label_10x73k_raw"].tolist() == codes
    np.testing.assert_array_equal(a.X.toarray(), counts)
    assert list(a.var_names) == ["gene_0", "gene_1", "gene_2"]
    assert scg.datasets.DATASETS["tenx_73k"] is scg.datasets.tenx_73k

    def load(mat, labels):
        d = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        _write_mtx(d / "sub_set-720.mtx", mat)
        (d / "labels.txt").write_text(labels)
        return scg.datasets.tenx_73k(d)

    good = "0\n1\n2\n"
    with pytest.raises(ValueError, match=r"label codes \[3, 5\]"):
        load(np.ones((3, 2)), "3\n5\n0\n")
    with pytest.raises(ValueError, match="non-integer"):
        load(np.ones((3, 2)), "0\n1.5\n0\n")
    with pytest.raises(ValueError, match="not a number"):
        load(np.ones((3, 2)), "0\nb_cells\n0\n")
    with pytest.raises(ValueError, match="empty"):
        load(np.ones((3, 2)), "\n")
    with pytest.raises(ValueError, match="neither side"):
        load(np.ones((4, 2)), good)
    with pytest.raises(ValueError, match="square"):
        load(np.ones((3, 3)), good)
    with pytest.raises(ValueError, match="negative"):
        load(-np.ones((3, 2)), good)
    with pytest.raises(ValueError, match="non-integer"):
        load(np.full((3, 2), 0.5), good)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "sub_set-720.mtx").write_text("not a matrix\n")
    (bad / "labels.txt").write_text(good)
    with pytest.raises(ValueError, match="not a readable MatrixMarket"):
        scg.datasets.tenx_73k(bad)
    (bad / "sub_set-720.mtx").unlink()
    with pytest.raises(FileNotFoundError, match="sub_set-720.mtx"):
        scg.datasets.tenx_73k(bad)
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        scg.datasets.tenx_73k(tmp_path, labels_file=tmp_path / "nothing.txt")


# ---- X / Y HDF5 files ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(XY_STAGED))
def xy_staged(request):
    name = request.param
    rel, _, _ = XY_STAGED[name]
    _need(SHARED_DATA / rel)
    return name, getattr(scg.datasets, name)(SHARED_DATA)


def test_xy_h5_staged(xy_staged):
    name, a = xy_staged
    rel, shape, sizes = XY_STAGED[name]
    assert a.shape == shape
    _assert_raw_counts_csr(a)
    assert _label_counts(a) == sizes
    assert list(a.obs["cell_type"].cat.categories) == [str(k) for k in range(1, len(sizes) + 1)]
    with h5py.File(SHARED_DATA / rel, "r") as f:
        y = f["Y"][()]
        x_head = f["X"][:50]
    np.testing.assert_array_equal(a.obs["label"].to_numpy(), y.astype(int) - 1)
    np.testing.assert_array_equal(a.X[:50].toarray(), x_head.astype(np.float32))
    assert scg.datasets.DATASETS[name] is getattr(scg.datasets, name)


def _write_xy(file: Path, x, y) -> Path:
    with h5py.File(file, "w") as f:
        if x is not None:
            chunks = (2, x.shape[1]) if np.ndim(x) == 2 else None  # read in several row blocks
            f.create_dataset("X", data=x, chunks=chunks)
        f.create_dataset("Y", data=y)
    return file


def test_read_xy_h5_tiny_files(tmp_path, monkeypatch):
    monkeypatch.setattr(scg.datasets._scrna, "_BLOCK_BYTES", 1)  # read X in blocks of 2 rows
    x = np.zeros((5, 4))
    x[0, 1], x[2, 3], x[4, 0] = 2, 7, 1
    a = scg.datasets.read_xy_h5(_write_xy(tmp_path / "a.h5", x, np.array([3.0, 5, 3, 10, 5])))
    assert isinstance(a.X, sparse.csr_matrix)
    assert a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), x)
    assert a.obs["label"].tolist() == [0, 1, 0, 2, 1]
    assert list(a.obs["cell_type"].cat.categories) == ["3", "5", "10"]
    assert a.obs["cell_type"].tolist() == ["3", "5", "3", "10", "5"]
    dense = scg.datasets.read_xy_h5(tmp_path / "a.h5", as_sparse=False)
    assert isinstance(dense.X, np.ndarray)
    assert dense.X.dtype == np.float32
    full = np.arange(1, 21).reshape(5, 4)  # no zeros: stays dense by default
    b = scg.datasets.read_xy_h5(_write_xy(tmp_path / "b.h5", full, np.arange(5)[:, None]))
    assert isinstance(b.X, np.ndarray)
    np.testing.assert_array_equal(b.X, full)
    assert b.obs["label"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="not the published pbmc4k"):
        scg.datasets.pbmc4k(tmp_path / "b.h5")
    x[4, 2] = -1  # in the last block
    with pytest.raises(ValueError, match="negative"):
        scg.datasets.read_xy_h5(_write_xy(tmp_path / "c.h5", x, np.zeros(5)))


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (None, np.zeros(3), r"lacks the datasets \['X'\]"),
        (np.ones((3, 2)), np.zeros(4), "3 rows .* 4 labels"),
        (np.ones(3), np.zeros(3), "must be 2-D"),
        (np.ones((3, 2)), np.zeros((3, 2)), "one class code per cell"),
        (-np.ones((3, 2)), np.zeros(3), "negative"),
        (np.full((3, 2), 0.5), np.zeros(3), "non-integer values, so it does not hold"),
        (np.array([[1.0, np.nan], [0, 1], [1, 1]]), np.zeros(3), "NaN"),
        (np.ones((3, 2)), np.array([0, 0.5, 1]), "Y holds non-integer"),
    ],
)
def test_read_xy_h5_errors(tmp_path, x, y, match):
    f = _write_xy(tmp_path / "bad.h5", x, y)
    with pytest.raises(ValueError, match=match):
        scg.datasets.read_xy_h5(f)


def test_read_xy_h5_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        scg.datasets.read_xy_h5(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        scg.datasets.read_xy_h5(tmp_path / "text.h5")
    with h5py.File(tmp_path / "group.h5", "w") as h:
        h.create_group("X")
        h.create_dataset("Y", data=np.zeros(3))
    with pytest.raises(ValueError, match="not groups"):
        scg.datasets.read_xy_h5(tmp_path / "group.h5")
    with pytest.raises(TypeError, match="path"):
        scg.datasets.read_xy_h5(3)
    with pytest.raises(FileNotFoundError, match="10X_PBMC_top2000.h5"):
        scg.datasets.pbmc4k(tmp_path)


# ---- 10x_73k rebuilt from the eight 10x downloads -------------------------------------------

# a mix of the layouts users get from the 10x downloads (v2 MEX, plain, Cell Ranger v3 gzipped)
LAYOUTS = {
    "b_cells": "b_cells/filtered_matrices_mex/hg19",
    "cd14_monocytes": "cd14_monocytes_filtered_gene_bc_matrices/filtered_matrices_mex/hg19",
    "cd34": "cd34_filtered/hg19",
    "cd56_nk": "CD56_NK",
    "memory_t": "memory_t/filtered_feature_bc_matrix",
    "naive_cytotoxic": "naive_cytotoxic/hg19",
    "naive_t": "naive_t_filtered_gene_bc_matrices/hg19",
    "regulatory_t": "regulatory_t",
}


def _write_10x(root: Path, n_cells=5, n_genes=30, seed=0, genes_of=None):
    """Per-population 10x folders; returns the stacked cells x genes counts."""
    rng = np.random.default_rng(seed)
    lam = rng.permutation(np.linspace(0.2, 15.0, n_genes))
    blocks = []
    for k, pop in enumerate(scg.datasets.TENX73K_POPULATIONS):
        d = root / LAYOUTS[pop]
        d.mkdir(parents=True)
        c = rng.poisson(lam * (1 + k % 3), size=(n_cells, n_genes))
        blocks.append(c)
        ids = [f"ENSG{j:05d}" for j in range(n_genes)] if genes_of is None else genes_of(pop)
        genes = "".join(f"{g}\tSYM{g[4:]}\n" for g in ids)
        barcodes = "".join(f"BC{i}-1\n" for i in range(n_cells))
        if pop == "memory_t":  # Cell Ranger v3
            _write_mtx(d / "matrix.mtx.gz", c.T)
            genes = "".join(f"{g}\tSYM{g[4:]}\tGene Expression\n" for g in ids)
            (d / "features.tsv.gz").write_bytes(gzip.compress(genes.encode()))
            (d / "barcodes.tsv.gz").write_bytes(gzip.compress(barcodes.encode()))
        else:
            _write_mtx(d / "matrix.mtx", c.T)
            (d / "genes.tsv").write_text(genes)
            (d / "barcodes.tsv").write_text(barcodes)
    return np.vstack(blocks)


def test_tenx_73k_from_10x_tiny_downloads(tmp_path, monkeypatch):
    counts = _write_10x(tmp_path)
    with pytest.warns(
        UserWarning, match=r"not the paper's cell set: b_cells: 5 \(10x_73k: 10085\)"
    ):
        a = scg.datasets.tenx_73k_from_10x(tmp_path, n_top_genes=10)
    assert a.shape == (40, 10)
    _assert_raw_counts_csr(a)
    assert a.obs["label"].tolist() == np.repeat(np.arange(8), 5).tolist()
    assert a.obs["cell_type"].tolist() == np.repeat(scg.datasets.TENX73K_POPULATIONS, 5).tolist()
    assert a.obs["label_10x73k_raw"].tolist() == np.repeat([0, 1, 2, 4, 6, 7, 8, 9], 5).tolist()
    assert list(a.obs.columns) == ["label", "cell_type", "label_10x73k_raw"]
    assert a.obs_names[0] == "BC0-1-b_cells"
    # the 10 genes of highest raw-count variance over all 40 cells, in gene order
    var = counts.var(axis=0)
    top = np.sort(np.argsort(-var)[:10])
    assert np.sort(var)[-10] > np.sort(var)[-11]  # no tie at the cut in this data
    assert a.var_names.tolist() == [f"ENSG{j:05d}" for j in top]
    assert a.var["gene_symbol"].tolist() == [f"SYM{j:05d}" for j in top]
    np.testing.assert_array_equal(a.X.toarray(), counts[:, top])
    assert scg.datasets.DATASETS["tenx_73k_from_10x"] is scg.datasets.tenx_73k_from_10x
    # with the expected block sizes there is no warning
    monkeypatch.setattr(scg.datasets._scrna, "TENX73K_CELL_COUNTS", (5,) * 8)
    b = scg.datasets.tenx_73k_from_10x(tmp_path, n_top_genes=30)
    np.testing.assert_array_equal(b.X.toarray(), counts)


def test_tenx_73k_from_10x_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(scg.datasets._scrna, "TENX73K_CELL_COUNTS", (5,) * 8)
    _write_10x(tmp_path / "ok")
    with pytest.raises(ValueError, match="n_top_genes=31 is larger"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "ok", n_top_genes=31)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "none")

    def other_genes(pop):
        ids = [f"ENSG{j:05d}" for j in range(30)]
        return ids[::-1] if pop == "naive_t" else ids

    _write_10x(tmp_path / "genes", genes_of=other_genes)
    with pytest.raises(ValueError, match="naive_t has other genes"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "genes")

    _write_10x(tmp_path / "missing")
    shutil.rmtree(tmp_path / "missing" / "cd34_filtered")
    with pytest.raises(FileNotFoundError, match="population 'cd34'"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "missing")

    _write_10x(tmp_path / "twice")
    shutil.copytree(
        tmp_path / "twice" / "regulatory_t", tmp_path / "twice" / "REGULATORY_T_filtered"
    )
    with pytest.raises(ValueError, match="Several folders .* 'regulatory_t'"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "twice")

    _write_10x(tmp_path / "barcodes")
    (tmp_path / "barcodes" / "CD56_NK" / "barcodes.tsv").write_text("A\nB\n")
    with pytest.raises(ValueError, match="cd56_nk: .* genes x cells"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "barcodes")

    _write_10x(tmp_path / "nogenes")
    (tmp_path / "nogenes" / "CD56_NK" / "genes.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="cd56_nk: .*genes.tsv"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "nogenes")

    _write_10x(tmp_path / "nomatrix")
    (tmp_path / "nomatrix" / "regulatory_t" / "matrix.mtx").unlink()
    with pytest.raises(FileNotFoundError, match="regulatory_t: no matrix.mtx"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "nomatrix")

    _write_10x(tmp_path / "neg")
    _write_mtx(tmp_path / "neg" / "regulatory_t" / "matrix.mtx", -np.ones((30, 5)))
    with pytest.raises(ValueError, match="negative"):
        scg.datasets.tenx_73k_from_10x(tmp_path / "neg")


# ---------------------------------------------------------------- IDX, MNIST, Fashion-MNIST

from _helpers import SHARED_DATA, TINY_CONV  # noqa: E402

_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def write_idx(path, array, *, gz=False, code=None):
    array = np.asarray(array)
    code = _CODES[array.dtype.type] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) - (0 if dtype == np.uint8 else 7)).reshape(2, 3, 4).astype(dtype)
    # the name says nothing: compression is recognised by content
    out = scg.datasets.read_idx(write_idx(tmp_path / "f", a, gz=gz))
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_read_idx_errors(tmp_path):
    good = write_idx(tmp_path / "g", np.zeros((2, 2), dtype=np.uint8)).read_bytes()
    cases = {
        "magic": (b"\x01" + good[1:], "two zero bytes"),
        "type": (good[:2] + b"\x07" + good[3:], "unknown IDX type code"),
        "truncated": (good[:-1], "truncated"),
        "trailing": (good + b"\x00", "trailing bytes"),
        "header": (good[:6], "inside its IDX header"),
        "ndim0": (b"\x00\x00\x08\x00", "0 dimensions"),
        "gzip": (gzip.compress(good)[:-6], "cannot be decompressed"),
    }
    for name, (raw, msg) in cases.items():
        p = tmp_path / name
        p.write_bytes(raw)
        with pytest.raises(ValueError, match=msg):
            scg.datasets.read_idx(p)


def _write_mnist_like(folder, *, splits=("train", "test"), n=(6, 4), gz=True, dotted=False):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, k in zip(splits, n, strict=False):
        prefix = "train" if split == "train" else "t10k"
        sep = "." if dotted else "-"
        ext = ".gz" if gz else ""
        images = rng.integers(0, 256, size=(k, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=k, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{ext}", images, gz=gz)
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{ext}", labels, gz=gz)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize(("gz", "dotted"), [(True, False), (False, False), (False, True)])
def test_mnist_on_written_idx_files(tmp_path, gz, dotted):
    data = _write_mnist_like(tmp_path / "m", gz=gz, dotted=dotted)
    a = scg.datasets.mnist(tmp_path / "m")
    assert a.shape == (10, 784)
    assert a.uns["image_shape"] == [1, 28, 28]
    assert a.X.dtype == np.float32
    np.testing.assert_allclose(a.X[:6], data["train"][0].reshape(6, -1) / 255, rtol=1e-6)
    np.testing.assert_allclose(a.X[6:], data["test"][0].reshape(4, -1) / 255, rtol=1e-6)
    assert a.obs["label"].dtype == np.int64
    np.testing.assert_array_equal(
        a.obs["label"], np.concatenate([data["train"][1], data["test"][1]])
    )
    assert a.obs["split"].tolist() == ["train"] * 6 + ["test"] * 4
    t = scg.datasets.mnist(tmp_path / "m", split="test")
    assert t.n_obs == 4
    np.testing.assert_array_equal(t.X, a.X[6:])
    assert scg.datasets.DATASETS["mnist"] is scg.datasets.mnist


def test_mnist_partial_files_and_errors(tmp_path, capsys):
    _write_mnist_like(tmp_path / "m", splits=("test",), n=(3,))
    scg.settings.verbosity = "warning"
    a = scg.datasets.mnist(tmp_path / "m")  # "all": what is present, with a warning
    assert a.n_obs == 3
    assert set(a.obs["split"]) == {"test"}
    assert "only the test split is present" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="pass split='test'"):
        scg.datasets.mnist(tmp_path / "m", split="train")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        scg.datasets.mnist(tmp_path / "nothing")
    with pytest.raises(ValueError, match="split must be"):
        scg.datasets.mnist(tmp_path / "m", split="validation")
    empty = tmp_path / "e"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="missing"):
        scg.datasets.mnist(empty)
    # wrong contents
    bad = tmp_path / "bad"
    _write_mnist_like(bad, splits=("test",), n=(3,), gz=False)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2], dtype=np.uint8))
    with pytest.raises(ValueError, match="3 images .* but 2 labels"):
        scg.datasets.mnist(bad)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2, 12], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        scg.datasets.mnist(bad)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.int32))
    with pytest.raises(ValueError, match="unsigned-byte labels"):
        scg.datasets.mnist(bad)
    write_idx(bad / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
    write_idx(bad / "t10k-images-idx3-ubyte", np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(ValueError, match="3 dimensions"):
        scg.datasets.mnist(bad)


def test_fashion_mnist_on_written_idx_files(tmp_path):
    data = _write_mnist_like(tmp_path / "f")
    a = scg.datasets.fashion_mnist(tmp_path / "f")
    assert a.uns["dataset"]["classes"][9] == "Ankle boot"
    fine = np.concatenate([data["train"][1], data["test"][1]])
    np.testing.assert_array_equal(a.obs["label"], fine)
    b = scg.datasets.fashion_mnist(tmp_path / "f", n_classes=5)
    groups = {0: 0, 3: 0, 1: 1, 2: 2, 4: 2, 6: 2, 8: 3, 5: 4, 7: 4, 9: 4}
    np.testing.assert_array_equal(b.obs["label"], [groups[int(v)] for v in fine])
    np.testing.assert_array_equal(b.obs["label_fine"], fine)
    assert len(b.uns["dataset"]["classes"]) == 5
    with pytest.raises(ValueError, match="n_classes"):
        scg.datasets.fashion_mnist(tmp_path / "f", n_classes=3)


def test_image_loader_feeds_the_conv_networks(tmp_path):
    _write_mnist_like(tmp_path / "m", n=(16, 4))
    a = scg.datasets.mnist(tmp_path / "m")
    model = scg.model.GANEnsemble(
        3, architecture_options=TINY_CONV, max_iter=2, batch_size=8, n_latent=3
    ).fit(a)
    assert model.architecture == "mnist"
    assert model.generate(2).shape == (2, 1, 28, 28)


def test_staged_mnist():
    folder = SHARED_DATA / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the staged MNIST test images are not in {folder}")
    a = scg.datasets.mnist(folder, split="test")
    assert a.shape == (10000, 784)
    assert np.bincount(a.obs["label"]).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert a.X.min() == 0.0
    assert a.X.max() == 1.0
    # the first test digit is a 7 with ink in the middle, not at the border
    img = a.X[0].reshape(28, 28)
    assert a.obs["label"].iloc[0] == 7
    assert img[:4].sum() == 0
    assert img[8:20, 8:20].sum() > 20
    train_labels = scg.datasets.read_idx(folder / "train-labels-idx1-ubyte.gz")
    assert np.bincount(train_labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        with pytest.raises(FileNotFoundError, match="split='test'"):
            scg.datasets.mnist(folder, split="train")


def test_staged_fashion_mnist_labels():
    folder = SHARED_DATA / "fashion_mnist"
    labels = list(folder.glob("*labels-idx1-ubyte*")) if folder.is_dir() else []
    if not labels:
        pytest.skip(f"no staged Fashion-MNIST label files in {folder}")
    for p in labels:
        y = scg.datasets.read_idx(p)
        assert y.dtype == np.uint8
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10
        assert (counts == counts[0]).all()  # Fashion-MNIST is balanced


# ---------------------------------------------------------------- Pendigits
def _write_pendigits(folder, *, suffix=""):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, name, n in (("train", "pendigits.tra", 5), ("test", "pendigits.tes", 3)):
        x = rng.integers(0, 101, size=(n, 16))
        y = rng.integers(0, 10, size=n)
        lines = [",".join(f"{v:3d}" for v in row) + f",{c}" for row, c in zip(x, y, strict=True)]
        (folder / (name + suffix)).write_text("\n".join(lines) + "\n")
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("suffix", ["", ".csv"])
def test_pendigits_on_written_files(tmp_path, suffix):
    data = _write_pendigits(tmp_path / "p", suffix=suffix)
    a = scg.datasets.pendigits(tmp_path / "p")
    assert a.shape == (8, 16)
    assert list(a.var_names[:4]) == ["x1", "y1", "x2", "y2"]
    np.testing.assert_allclose(a.X, np.vstack([data["train"][0], data["test"][0]]) / 100, rtol=1e-6)
    np.testing.assert_array_equal(
        a.obs["label"], np.concatenate([data["train"][1], data["test"][1]])
    )
    assert a.obs["split"].tolist() == ["train"] * 5 + ["test"] * 3
    assert scg.datasets.pendigits(tmp_path / "p", split="test").n_obs == 3
    # a file path works as well as its folder
    assert (
        scg.datasets.pendigits(tmp_path / "p" / ("pendigits.tra" + suffix), split="train").n_obs
        == 5
    )


def test_pendigits_errors(tmp_path):
    folder = tmp_path / "p"
    _write_pendigits(folder)
    (folder / "pendigits.tes").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="line 1: expected the UCI layout"):
        scg.datasets.pendigits(folder)
    (folder / "pendigits.tes").write_text(",".join(["1"] * 16) + ",x\n")
    with pytest.raises(ValueError, match="expected integers"):
        scg.datasets.pendigits(folder)
    (folder / "pendigits.tes").write_text(",".join(["101"] * 16) + ",1\n")
    with pytest.raises(ValueError, match=r"0..100"):
        scg.datasets.pendigits(folder)
    (folder / "pendigits.tes").unlink()
    with pytest.raises(FileNotFoundError, match="pendigits.tes"):
        scg.datasets.pendigits(folder, split="test")
    assert scg.datasets.pendigits(folder).n_obs == 5  # "all": the present split, with a warning


def test_staged_pendigits():
    folder = SHARED_DATA / "pendigits"
    if not (folder / "pendigits.tra.csv").is_file() and not (folder / "pendigits.tra").is_file():
        pytest.skip(f"the staged Pendigits files are not in {folder}")
    a = scg.datasets.pendigits(folder)
    assert a.shape == (10992, 16)
    train = a.obs["split"] == "train"
    assert np.bincount(a.obs["label"][train]).tolist() == [
        780,
        779,
        780,
        719,
        780,
        720,
        720,
        778,
        719,
        719,
    ]
    assert np.bincount(a.obs["label"][~train]).tolist() == [
        363,
        364,
        364,
        336,
        364,
        335,
        336,
        364,
        336,
        336,
    ]
    assert a.X.min() == 0.0
    assert a.X.max() == 1.0
    np.testing.assert_allclose(
        a.X[0] * 100, [47, 100, 27, 81, 57, 37, 26, 0, 0, 23, 56, 53, 100, 90, 40, 98]
    )
    assert a.obs["label"].iloc[0] == 8


# ---------------------------------------------------------------- COIL-20
def test_coil20_on_a_written_mat_file_is_upright(tmp_path):
    from scipy.io import savemat

    n, side = 6, 8
    images = np.zeros((n, side, side))
    images[:, 0, :] = 1.0  # a bright top row, a dim left column
    images[:, :, 0] = 0.5
    images[:, 0, 0] = 1.0
    fea = np.stack([im.ravel(order="F") for im in images])  # column-major, as COIL20.mat stores
    gnd = np.array([[1], [1], [2], [2], [3], [3]], dtype=np.uint8)
    savemat(tmp_path / "COIL20.mat", {"fea": fea, "gnd": gnd})
    a = scg.datasets.coil20(tmp_path)  # the folder works as well as the file
    assert a.shape == (n, side * side)
    assert a.uns["image_shape"] == [1, side, side]
    img = a.X[0].reshape(side, side)
    np.testing.assert_allclose(img[0], 1.0)
    np.testing.assert_allclose(img[1:, 0], 0.5)
    np.testing.assert_array_equal(a.obs["label"], [0, 0, 1, 1, 2, 2])
    assert set(a.obs["split"]) == {"all"}
    savemat(tmp_path / "x.mat", {"fea": fea * 255, "gnd": gnd})
    np.testing.assert_allclose(scg.datasets.coil20(tmp_path / "x.mat").X, a.X, rtol=1e-6)
    savemat(tmp_path / "y.mat", {"X": fea, "Y": gnd})
    with pytest.raises(ValueError, match="'fea' and 'gnd'"):
        scg.datasets.coil20(tmp_path / "y.mat")
    savemat(tmp_path / "z.mat", {"fea": fea[:, :10], "gnd": gnd})
    with pytest.raises(ValueError, match="not square"):
        scg.datasets.coil20(tmp_path / "z.mat")
    with pytest.raises(FileNotFoundError, match="COIL20.mat"):
        scg.datasets.coil20(tmp_path / "missing")


def test_staged_coil20():
    path = SHARED_DATA / "coil20" / "COIL20.mat"
    if not path.is_file():
        pytest.skip(f"the staged COIL-20 file is not at {path}")
    from scipy.io import loadmat

    a = scg.datasets.coil20(path)
    assert a.shape == (1440, 1024)
    assert a.uns["image_shape"] == [1, 32, 32]
    assert np.bincount(a.obs["label"]).tolist() == [72] * 20
    fea = loadmat(path)["fea"]
    # pixel (row r, column c) of the upright image is entry c * 32 + r of the stored row
    img = a.X[100].reshape(32, 32)
    assert img[3, 17] == pytest.approx(fea[100, 17 * 32 + 3])
    assert img[17, 3] == pytest.approx(fea[100, 3 * 32 + 17])
