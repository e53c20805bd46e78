"""Data sources for the training loop: dense tensors and scipy sparse matrices behind one protocol."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse

__all__ = ["DenseSource", "SparseSource", "as_source"]


class DenseSource:
    """A dense matrix held once as a float32 tensor on the device; batches are gathered there.

    With ``sample_shape`` (e.g. ``(C, H, W)``) the rows are held, and returned, with that shape.
    """

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


def as_source(
    x, device: torch.device, sample_shape: Sequence[int] | None = None
) -> DenseSource | SparseSource:
    """Wrap a 2-D dense or sparse matrix as a source on ``device``.

    Parameters
    ----------
    x
        numpy array, torch tensor or scipy sparse matrix (cells x features).
    device
        Where batches are delivered (a dense matrix is moved there once).
    sample_shape
        Shape of one row as the networks take it, e.g. ``(C, H, W)`` for flattened images
        (``None``: rows stay vectors).
    """
    if sparse.issparse(x):
        return SparseSource(x, device, sample_shape)
    return DenseSource(x, device, sample_shape)
