"""Data sources for the training loop: dense tensors and scipy sparse matrices behind one protocol."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse

from scgan_cluster._dask import ChunkReader, is_dask

__all__ = ["DENSE_ON_ACCELERATOR_BYTES", "DaskSource", "DenseSource", "SparseSource", "as_source"]

DENSE_ON_ACCELERATOR_BYTES = 2**30
"""A sparse matrix whose dense float32 copy takes at most this many bytes is held dense on a
GPU (or another accelerator), so that batches are gathered there without the host."""


class DenseSource:
    """A dense matrix held once as a float32 tensor on the device; batches are gathered there.

    With ``sample_shape`` (e.g. ``(C, H, W)``) the rows are held, and returned, with that shape.
    The training loop moves each block's row indices to the device once
    (``gathers_on_device``), so that no batch passes through the host.
    """

    gathers_on_device = True

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        device: torch.device,
        sample_shape: Sequence[int] | None = None,
    ) -> None:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
        if sample_shape is not None:
            t = t.reshape(t.shape[0], *(int(s) for s in sample_shape))
        self.data = t.to(device=device, dtype=torch.float32)
        self.device = torch.device(device)
        self.n_obs = int(self.data.shape[0])

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        # index_select copies whole rows; on CPU it is several times faster than ``data[idx]``
        return torch.index_select(self.data, 0, idx.to(self.device))


class SparseSource:
    """A scipy sparse matrix kept in CSR on the host; only the rows of a batch are densified.

    With ``sample_shape`` the densified rows are reshaped to ``(len(idx), *sample_shape)``.
    """

    def __init__(self, x, device: torch.device, sample_shape: Sequence[int] | None = None) -> None:
        self.data = sparse.csr_matrix(x, dtype=np.float32)
        self.device = torch.device(device)
        self.n_obs = int(self.data.shape[0])
        self.sample_shape = None if sample_shape is None else tuple(int(s) for s in sample_shape)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.data[idx.cpu().numpy()].toarray()
        if self.sample_shape is not None:
            rows = rows.reshape(rows.shape[0], *self.sample_shape)
        return torch.from_numpy(rows).to(self.device, non_blocking=True)


class DaskSource:
    """A dask matrix (cells x features, chunked along the cells) read a few rows at a time.

    Nothing is held but the rows of the current block of training draws: the loop announces
    the rows a block of iterations will use (:meth:`prefetch`), they are read in one dask
    computation, and the block's batches are gathered from them. Other reads (:meth:`take` of
    rows not announced, e.g. the chunks that encoding walks through) are computed when asked.
    """

    def __init__(self, x, device: torch.device, sample_shape: Sequence[int] | None = None) -> None:
        self.data = x
        self.device = torch.device(device)
        self.n_obs = int(x.shape[0])
        self.sample_shape = None if sample_shape is None else tuple(int(s) for s in sample_shape)
        self._rows: np.ndarray | None = None  # the prefetched rows (ascending) ...
        self._values: torch.Tensor | None = None  # ... and their values, on the device
        self._reader = ChunkReader(x)  # ranges read front to back compute each chunk once

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        """Rows (ascending, unique) as a float32 tensor on the device."""
        if len(rows) and rows[-1] - rows[0] + 1 == len(rows):  # a range (e.g. encoding)
            block = self._reader.rows(int(rows[0]), int(rows[-1]) + 1)
        else:
            block = self.data[rows].compute()
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        block = np.ascontiguousarray(block, dtype=np.float32)
        if self.sample_shape is not None:
            block = block.reshape(block.shape[0], *self.sample_shape)
        return torch.from_numpy(block).to(self.device)

    def prefetch(self, idx: torch.Tensor) -> None:
        """Read the rows in ``idx`` (any shape) now, for the :meth:`take` calls that follow."""
        self._rows = np.unique(idx.cpu().numpy().ravel())
        self._values = self._read(self._rows)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        wanted = idx.cpu().numpy()
        if self._rows is not None:
            pos = np.searchsorted(self._rows, wanted)
            pos_ok = pos < len(self._rows)
            if pos_ok.all() and np.array_equal(self._rows[pos], wanted):
                return torch.index_select(self._values, 0, torch.from_numpy(pos).to(self.device))
        rows, inverse = np.unique(wanted, return_inverse=True)
        values = self._read(rows)
        return torch.index_select(values, 0, torch.from_numpy(inverse.ravel()).to(self.device))


def as_source(
    x, device: torch.device, sample_shape: Sequence[int] | None = None
) -> DenseSource | SparseSource | DaskSource:
    """Wrap a 2-D dense or sparse matrix as a source on ``device``.

    Parameters
    ----------
    x
        numpy array, torch tensor, scipy sparse matrix or dask array (cells x features).
    device
        Where batches are delivered (a dense matrix is moved there once; on a device other
        than the CPU, so is a sparse matrix whose dense copy fits in
        :data:`DENSE_ON_ACCELERATOR_BYTES`).
    sample_shape
        Shape of one row as the networks take it, e.g. ``(C, H, W)`` for flattened images
        (``None``: rows stay vectors).
    """
    if is_dask(x):
        return DaskSource(x, device, sample_shape)
    if sparse.issparse(x):
        dense_bytes = 4 * int(x.shape[0]) * int(np.prod(x.shape[1:]))
        if torch.device(device).type == "cpu" or dense_bytes > DENSE_ON_ACCELERATOR_BYTES:
            return SparseSource(x, device, sample_shape)
        x = x.toarray()
    return DenseSource(x, device, sample_shape)
