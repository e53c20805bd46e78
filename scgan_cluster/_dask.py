"""Dask arrays as cells x genes matrices: checks, per-chunk reductions and lazy row-wise maps.

A dask matrix is read one chunk of cells at a time, always through dask (``dask.compute`` of
per-chunk tasks, or ``map_blocks``), so that every pass runs wherever dask runs: threads on one
machine, or the workers of a ``dask.distributed`` cluster when a client is active. The matrix
must be chunked along the cells only (each chunk holds whole cells); chunks may be numpy arrays
or scipy sparse matrices. Dask is optional: nothing here imports it unless a dask array is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse

__all__ = [
    "ChunkReader",
    "check_dask_matrix",
    "check_numeric",
    "chunk_bounds",
    "chunk_results",
    "is_dask",
    "map_rows",
    "row_slices",
]


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask array (without importing dask)."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "chunks")


def check_numeric(dtype: Any, what: str, hint: str = "") -> np.dtype:
    """``dtype`` as a numpy dtype if it holds numbers (or booleans); a TypeError otherwise."""
    dtype = np.dtype(dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise TypeError(f"{what} has dtype {dtype}; expected numbers.{hint}")
    return dtype


def check_dask_matrix(x: Any, what: str) -> None:
    """A 2-D dask array of numbers, chunked along the cells only; a clear error otherwise."""
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got a dask array of shape {x.shape}.")
    check_numeric(
        x.dtype,
        f"{what} (a dask array)",
        " Convert it with x.astype('float32'), or read the counts layer instead.",
    )
    if any(np.isnan(c) for dim in x.chunks for c in dim):
        raise ValueError(
            f"{what} is a dask array with unknown chunk sizes; call x.compute_chunk_sizes() first."
        )
    if len(x.chunks[1]) > 1:
        raise ValueError(
            f"{what} is a dask array chunked along the genes too ({len(x.chunks[1])} chunks of "
            "columns), but each chunk must hold whole cells. Rechunk it with "
            "x.rechunk({1: -1}) (or read it with chunks=(n_cells_per_chunk, -1))."
        )


def chunk_bounds(x: Any) -> np.ndarray:
    """First row of each chunk of cells, then the number of rows: ``(n_chunks + 1,)`` ints."""
    return np.concatenate([[0], np.cumsum(x.chunks[0])]).astype(int)


def chunk_results(x: Any, fn: Callable[[Any, int], Any]) -> list[Any]:
    """``fn(chunk, first_row)`` of every chunk of cells, computed by dask, in chunk order."""
    import dask

    blocks = x.to_delayed().ravel()
    starts = chunk_bounds(x)[:-1]
    tasks = [dask.delayed(fn)(b, int(s)) for b, s in zip(blocks, starts, strict=True)]
    return list(dask.compute(*tasks))


def map_rows(
    x: Any, fn: Callable[..., Any], n_columns: int, *row_values: np.ndarray, dtype=np.float32
) -> Any:
    """A lazy dask array of ``fn(chunk, *values)`` per chunk of cells (same rows, ``n_columns``).

    Each of ``row_values`` is a vector with one entry per cell; ``fn`` gets the entries of the
    chunk's cells (as a column ``(rows, 1)``), so that only they travel with the chunk's task.
    """
    import dask.array as da

    columns = [
        da.from_array(np.asarray(v).reshape(-1, 1), chunks=(x.chunks[0], (1,))) for v in row_values
    ]
    meta = x._meta
    meta = (
        sparse.csr_matrix((0, 0), dtype=dtype)
        if sparse.issparse(meta)
        else np.empty((0, 0), dtype=dtype)
    )
    return da.map_blocks(
        lambda chunk, *values: fn(chunk, *(np.asarray(v).ravel() for v in values)),
        x,
        *columns,
        chunks=(x.chunks[0], (n_columns,)),
        dtype=dtype,
        meta=meta,
    )


def row_slices(n: int, chunk: int):
    """``(start, stop)`` of consecutive row ranges of at most ``chunk`` rows."""
    for start in range(0, n, chunk):
        yield start, min(start + chunk, n)


class ChunkReader:
    """Consecutive rows of a dask matrix, each of its chunks computed once for a sequential read.

    :meth:`rows` computes the chunks a range of rows overlaps and keeps the last one, so that
    reading the matrix front to back in ranges of any size (e.g. 8,192 or 4,096 rows against
    chunks of 10,000) computes every chunk exactly once.
    """

    def __init__(self, x: Any) -> None:
        self.x = x
        self.bounds = chunk_bounds(x)
        self._index: int | None = None
        self._block: Any = None

    def _chunk(self, i: int) -> Any:
        if self._index != i:
            self._block, self._index = self.x.blocks[i].compute(), i
        return self._block

    def rows(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` (numpy or scipy sparse, as the chunks are)."""
        bounds = self.bounds
        first = int(np.searchsorted(bounds, start, side="right")) - 1
        last = int(np.searchsorted(bounds, stop - 1, side="right")) - 1
        parts = []
        for i in range(first, last + 1):
            lo, hi = max(start, bounds[i]) - bounds[i], min(stop, bounds[i + 1]) - bounds[i]
            parts.append(self._chunk(i)[lo:hi])
        if len(parts) == 1:
            return parts[0]
        if sparse.issparse(parts[0]):
            return sparse.vstack(parts, format="csr")
        return np.concatenate([np.asarray(p) for p in parts])
