"""Data sources for the training loop: dense tensors and scipy sparse matrices behind one protocol."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

__all__ = ["DenseSource", "SparseSource", "as_source"]


class DenseSource:
    """A dense matrix held once as a float32 tensor on the device; batches are gathered there."""

    def __init__(self, x: np.ndarray | torch.Tensor, device: torch.device) -> None:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
        self.data = t.to(device=device, dtype=torch.float32)
        self.device = torch.device(device)
        self.n_obs = int(self.data.shape[0])

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        return self.data[idx.to(self.device)]


class SparseSource:
    """A scipy sparse matrix kept in CSR on the host; only the rows of a batch are densified."""

    def __init__(self, x, device: torch.device) -> None:
        self.data = sparse.csr_matrix(x, dtype=np.float32)
        self.device = torch.device(device)
        self.n_obs = int(self.data.shape[0])

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        rows = self.data[idx.cpu().numpy()].toarray()
        return torch.from_numpy(rows).to(self.device, non_blocking=True)


def as_source(x, device: torch.device) -> DenseSource | SparseSource:
    """Wrap a 2-D dense or sparse matrix as a source on ``device``.

    Parameters
    ----------
    x
        numpy array, torch tensor or scipy sparse matrix (cells x features).
    device
        Where batches are delivered (a dense matrix is moved there once).
    """
    if sparse.issparse(x):
        return SparseSource(x, device)
    return DenseSource(x, device)
