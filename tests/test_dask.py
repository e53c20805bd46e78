"""The dask path: a lazily read matrix gives the in-memory answers, locally and on a cluster."""

import numpy as np
import pytest
from _helpers import make_counts
from anndata import AnnData
from scipy import sparse

import scgan_cluster as scg

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

FAST = {"max_iter": 30, "batch_size": 32}


def dense(m):
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def computed(m):
    return dense(m.compute() if hasattr(m, "compute") else m)


def as_dask(adata: AnnData, chunk: int = 64, to_sparse: bool = True) -> AnnData:
    """A copy whose X is a dask array of ``chunk`` cells per chunk (scipy sparse chunks)."""
    x = sparse.csr_matrix(adata.X) if to_sparse else np.asarray(adata.X)
    out = adata.copy()
    out.X = da.from_array(x, chunks=(chunk, -1), asarray=False)
    return out


@pytest.fixture
def cluster():
    """One in-process worker: every dask computation of the test using it runs there."""
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


@pytest.mark.parametrize("flavor", ["paper", "lognorm"])
@pytest.mark.parametrize("to_sparse", [True, False])
def test_preprocess_of_a_dask_matrix_equals_in_memory(flavor, to_sparse):
    a = make_counts(n_genes=80)
    lazy = as_dask(a, chunk=70, to_sparse=to_sparse)  # chunks that do not divide the cells
    scg.pp.preprocess(a, n_top_genes=25, flavor=flavor)
    scg.pp.preprocess(lazy, n_top_genes=25, flavor=flavor)
    assert hasattr(lazy.X, "dask")  # still lazy
    info, lazy_info = a.uns["clustergan_preprocess"], lazy.uns["clustergan_preprocess"]
    np.testing.assert_array_equal(lazy_info["genes"], info["genes"])
    assert lazy_info["scale"] == info["scale"]
    np.testing.assert_array_equal(lazy.var_names, a.var_names)
    np.testing.assert_allclose(computed(lazy.X), dense(a.X), rtol=1e-6)


def test_a_dask_matrix_on_a_cluster_gives_the_in_memory_model(cluster):
    a = make_counts()
    lazy = as_dask(a)
    model = scg.ClusterGAN(3, flavor="paper", random_state=0, **FAST).fit(a)
    with distributed.get_task_stream(cluster) as tasks:
        on_cluster = scg.ClusterGAN(3, flavor="paper", random_state=0, **FAST).fit(lazy)
    # the cluster's worker did the reading: every chunk, in the passes and the training's draws
    assert len(tasks.data) >= lazy.X.numblocks[0]
    np.testing.assert_array_equal(on_cluster.var_names_, model.var_names_)
    assert on_cluster.fit_params_["scale"] == model.fit_params_["scale"]
    np.testing.assert_array_equal(on_cluster.labels_, model.labels_)
    np.testing.assert_allclose(on_cluster.latent_, model.latent_, atol=1e-5)
    np.testing.assert_array_equal(on_cluster.predict(lazy), model.predict(a))


def test_tl_clustergan_default_recipe_on_a_preprocessed_dask_anndata():
    a = make_counts()
    lazy = as_dask(a, chunk=100)
    settings = {"n_clusters": 3, "random_state": 0, "max_iter": 20, "n_top_genes": 30}
    scg.pp.preprocess(a, n_top_genes=30, flavor="lognorm")
    scg.pp.preprocess(lazy, n_top_genes=30, flavor="lognorm")
    lazy.X = lazy.X.persist()  # the prepared values kept in memory (a cluster's: its workers')
    scg.tl.clustergan(a, **settings)
    scg.tl.clustergan(lazy, **settings)
    np.testing.assert_array_equal(lazy.obs["clustergan"], a.obs["clustergan"])
    np.testing.assert_allclose(lazy.obsm["X_clustergan"], a.obsm["X_clustergan"], atol=1e-5)


def test_dask_source_prefetch_serves_the_announced_rows_and_reads_others():
    import torch

    from scgan_cluster.adapters import as_source

    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    src = as_source(da.from_array(x, chunks=(6, -1)), torch.device("cpu"))
    src.prefetch(torch.tensor([[5, 1], [5, 17]]))
    np.testing.assert_array_equal(src.take(torch.tensor([17, 5, 5])).numpy(), x[[17, 5, 5]])
    np.testing.assert_array_equal(src.take(torch.tensor([2, 19, 2])).numpy(), x[[2, 19, 2]])
    np.testing.assert_array_equal(src.take(torch.arange(3, 9)).numpy(), x[3:9])


def test_bad_dask_input_is_refused_before_training_and_the_adata_is_untouched():
    a = make_counts()
    model = scg.ClusterGAN(3, flavor="paper", **FAST)
    # chunks that split the genes
    split = a.copy()
    split.X = da.from_array(np.asarray(a.X), chunks=(100, 20))
    with pytest.raises(ValueError, match=r"rechunk\(\{1: -1\}\)"):
        model.fit(split)
    with pytest.raises(ValueError, match="chunked along the genes"):
        scg.pp.preprocess(split)
    assert split.n_vars == a.n_vars
    assert "clustergan_preprocess" not in split.uns
    # a dtype that is not numbers
    text = a.copy()
    text.X = da.from_array(np.asarray(a.X).astype(str), chunks=(100, -1))
    with pytest.raises(TypeError, match="expected numbers"):
        scg.pp.preprocess(text)
    # values that are not counts (found by a pass over the chunks)
    logged = as_dask(a)
    logged.X = logged.X.map_blocks(lambda b: b.multiply(0.5).tocsr(), dtype=np.float32)
    with pytest.raises(ValueError, match="non-integer values"):
        scg.tl.clustergan(logged, n_clusters=3, **FAST)
    assert "clustergan" not in logged.obs
    assert not model.is_trained
    # genes that differ from the model's
    trained = scg.ClusterGAN(3, flavor="paper", random_state=0, **FAST).fit(a)
    other = as_dask(a)
    other.var_names = [f"x{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match="missing from adata.var_names"):
        trained.predict(other)


def test_backed_anndata_is_refused_with_the_dask_way_to_read_it(tmp_path):
    import anndata as ad

    a = make_counts()
    path = tmp_path / "cells.h5ad"
    a.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    with pytest.raises(ValueError, match="scgan_cluster.read_dask"):
        scg.pp.preprocess(backed)
    backed.file.close()


@pytest.mark.filterwarnings("ignore:Writing zarr v2 data:UserWarning")
def test_read_dask_keeps_the_matrix_on_disk_and_fits_like_in_memory(tmp_path):
    a = make_counts()
    a.X = sparse.csr_matrix(a.X)
    a.layers["counts"] = a.X.copy()
    for path in (tmp_path / "cells.h5ad", tmp_path / "cells.zarr"):
        if path.suffix == ".h5ad":
            a.write_h5ad(path)
        else:
            a.write_zarr(path)
        lazy = scg.read_dask(path, chunk_size=128)
        assert lazy.X.chunks[0] == (128, 128, 44)
        assert hasattr(lazy.layers["counts"], "dask")
        np.testing.assert_array_equal(computed(lazy.X), a.X.toarray())
        assert list(lazy.obs["truth"]) == list(a.obs["truth"])
        scg.pp.preprocess(lazy, n_top_genes=20)
        b = a.copy()
        scg.pp.preprocess(b, n_top_genes=20)
        np.testing.assert_array_equal(lazy.var_names, b.var_names)
        np.testing.assert_allclose(computed(lazy.X), b.X.toarray(), rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="No such file"):
        scg.read_dask(tmp_path / "missing.h5ad")
    empty = tmp_path / "empty.h5ad"
    AnnData(obs=a.obs).write_h5ad(empty)
    with pytest.raises(ValueError, match="no counts to"):
        scg.read_dask(empty)


def test_worker_processes_read_the_h5ad_and_give_the_in_memory_model(tmp_path):
    """A cluster whose workers are other processes: every task is pickled to them and reads
    the file itself, as on a multi-machine cluster."""
    a = make_counts()
    a.X = sparse.csr_matrix(a.X)
    path = tmp_path / "cells.h5ad"
    a.write_h5ad(path)
    settings = {"flavor": "paper", "random_state": 0, "n_top_genes": 30, **FAST}
    ref = scg.ClusterGAN(3, **settings).fit(a)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as lc,
        distributed.Client(lc) as client,
    ):
        lazy = scg.read_dask(path, chunk_size=100)
        model = scg.ClusterGAN(3, **settings).fit(lazy)
        np.testing.assert_array_equal(model.var_names_, ref.var_names_)
        np.testing.assert_array_equal(model.labels_, ref.labels_)
        np.testing.assert_allclose(model.latent_, ref.latent_, atol=1e-5)
        np.testing.assert_array_equal(model.predict(lazy), ref.labels_)
        # the worker processes ran the tasks (their state logs the tasks' transitions)
        ran = client.run(lambda dask_worker: dask_worker.state.transition_counter)
        assert len(ran) == 2
        assert sum(ran.values()) > 0
    assert "clustergan" not in lazy.obs


@pytest.mark.parametrize("to_sparse", [True, False])
def test_chunk_reader_computes_each_chunk_once_for_a_front_to_back_read(to_sparse):
    import dask

    from scgan_cluster._dask import ChunkReader

    x = np.arange(200, dtype=np.float32).reshape(50, 4)
    lazy = da.from_array(sparse.csr_matrix(x) if to_sparse else x, chunks=(12, -1), asarray=False)
    computed_chunks = []
    lazy = lazy.map_blocks(lambda b: computed_chunks.append(b.shape[0]) or b, meta=lazy._meta)
    reader = ChunkReader(lazy)
    with dask.config.set(scheduler="synchronous"):  # the chunks computed in this process
        got = [dense(reader.rows(a, min(a + 7, 50))) for a in range(0, 50, 7)]
    np.testing.assert_array_equal(np.concatenate(got), x)
    assert computed_chunks == [12, 12, 12, 12, 2]
