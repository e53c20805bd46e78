"""Open an ``.h5ad`` file or ``.zarr`` store with its matrices kept on disk as dask arrays."""

from __future__ import annotations

from pathlib import Path

from anndata import AnnData

from scgan_cluster._validation import check_positive_int

__all__ = ["read_dask"]


def read_dask(path: str | Path, *, chunk_size: int = 10_000) -> AnnData:
    """Open an AnnData file lazily: ``X`` and every layer become dask arrays read from disk.

    ``obs``, ``var`` and ``uns`` are read into memory; the matrices stay on disk and are read
    ``chunk_size`` cells at a time whenever a computation needs them, by the threads of this
    process or by the workers of a ``dask.distributed`` cluster when a client is active (the
    workers must see the same path). :func:`scgan_cluster.pp.preprocess`,
    :func:`scgan_cluster.tl.clustergan` and :class:`scgan_cluster.ClusterGAN` take such an
    AnnData and pass over its cells chunk by chunk, never holding the whole matrix.

    Parameters
    ----------
    path
        An ``.h5ad`` file or a ``.zarr`` store written by anndata.
    chunk_size
        Cells per chunk (each chunk holds every gene of its cells).

    Returns
    -------
    An AnnData whose ``X`` (and layers) are dask arrays, chunks of scipy sparse matrices for a
    sparse matrix on disk.
    """
    import anndata as ad

    chunk_size = check_positive_int(chunk_size, "chunk_size")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or store: {path}")
    lazy = getattr(ad.experimental, "read_elem_lazy", None)
    if lazy is None:
        raise ImportError("read_dask needs anndata >= 0.12 (anndata.experimental.read_elem_lazy).")
    if path.is_dir():
        import zarr

        group = zarr.open(str(path), mode="r")
        return _read(group, lazy, chunk_size)
    import h5py

    with h5py.File(path, "r") as group:  # the dask arrays reopen the file by path when read
        return _read(group, lazy, chunk_size)


def _read(group, lazy, chunk_size: int) -> AnnData:
    from anndata.io import read_elem

    layers = {}
    if "layers" in group:
        layers = {k: lazy(group["layers"][k], chunks=(chunk_size, -1)) for k in group["layers"]}
    if "X" not in group and not layers:
        raise ValueError(
            "This file holds no matrix (neither X nor layers), so there are no counts to "
            "cluster; write the counts into X or a layer of the AnnData first."
        )
    return AnnData(
        X=lazy(group["X"], chunks=(chunk_size, -1)) if "X" in group else None,
        obs=read_elem(group["obs"]),
        var=read_elem(group["var"]),
        uns=read_elem(group["uns"]) if "uns" in group else {},
        layers=layers,
    )
