"""Principal components of preprocessed cells, as the networks' input (``ClusterGAN(n_pcs=...)``).

Each feature is standardised on the training cells and clipped at +-10 standard deviations (as
``scanpy.pp.scale(max_value=10)`` does), the clipped values are centred and projected on their
``n_pcs`` leading principal axes, and the projections are divided by three times their standard
deviation over the training cells (so that most values lie in [-1, 1]). The fit reads the
matrix in chunks (dense, scipy sparse or dask, never densified as a whole): its memory is one chunk
plus the ``d x d`` covariance.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from scgan_cluster._dask import ChunkReader, is_dask, row_slices

__all__ = ["PCAProjection", "CLIP", "CHUNK"]

CLIP = 10.0
"""Standardised values are clipped to [-CLIP, CLIP] before the projection (scanpy's ``max_value``)."""

CHUNK = 8192
"""Rows read at a time."""


def _chunks(x, chunk: int = CHUNK):
    # a dask matrix is read through dask (locally or on a cluster), each of its chunks once
    reader = ChunkReader(x) if is_dask(x) else None
    for start, stop in row_slices(x.shape[0], chunk):
        block = x[start:stop] if reader is None else reader.rows(start, stop)
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        yield block.astype(np.float64, copy=False)


class PCAProjection:
    """A fitted map from preprocessed features to scaled principal components, and back.

    Attributes
    ----------
    mean, std
        Per-feature mean and standard deviation (ddof 1; 1 where a feature is constant) of the
        training cells.
    center
        Mean of the clipped standardised training cells (what the axes are centred on).
    components
        ``(n_features, n_pcs)``: the principal axes, each signed so that its largest entry is
        positive.
    scale
        Divisor of the projections: three times their standard deviation on the training cells.
    """

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        center: np.ndarray,
        components: np.ndarray,
        scale: float,
    ) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.center = np.asarray(center, dtype=np.float64)
        self.components = np.asarray(components, dtype=np.float64)
        self.scale = float(scale)

    @property
    def n_pcs(self) -> int:
        return int(self.components.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, x, n_pcs: int) -> PCAProjection:
        """Fit on ``x`` ``(n, d)`` (numpy or scipy sparse): needs ``n_pcs <= min(d, n - 1)``."""
        n, d = x.shape
        if isinstance(n_pcs, bool) or not isinstance(n_pcs, (int, np.integer)) or n_pcs < 1:
            raise ValueError(f"n_pcs must be a positive integer, got {n_pcs!r}.")
        if n_pcs > min(d, n - 1):
            raise ValueError(
                f"n_pcs={n_pcs} is more than the data allow (min(features, cells - 1) = "
                f"{min(d, n - 1)}); pass a smaller n_pcs."
            )
        total = np.zeros(d)
        squares = np.zeros(d)
        for block in _chunks(x):
            total += block.sum(0)
            squares += (block * block).sum(0)
        mean = total / n
        var = np.maximum(squares - n * mean * mean, 0.0) / (n - 1)
        std = np.sqrt(var)
        std[std == 0] = 1.0
        clipped_sum = np.zeros(d)
        gram = np.zeros((d, d))
        for block in _chunks(x):
            z = np.clip((block - mean) / std, -CLIP, CLIP)
            clipped_sum += z.sum(0)
            gram += z.T @ z
        center = clipped_sum / n
        cov = (gram - n * np.outer(center, center)) / (n - 1)
        values, vectors = np.linalg.eigh(cov)
        top_order = np.argsort(values)[::-1][:n_pcs]
        axes = vectors[:, top_order]
        signs = np.sign(axes[np.abs(axes).argmax(0), np.arange(n_pcs)])
        axes = axes * np.where(signs == 0, 1.0, signs)
        top = np.clip(values[top_order], 0.0, None)
        spread = float(np.sqrt(top.sum() / n_pcs))  # sd of the projections over all components
        return cls(mean, std, center, axes, 3.0 * spread if spread > 0 else 1.0)

    def transform(self, x) -> np.ndarray:
        """Scaled principal components of ``x`` ``(n, n_features)``: float32 ``(n, n_pcs)``."""
        if x.shape[1] != self.n_features:
            raise ValueError(f"The projection takes {self.n_features} features, got {x.shape[1]}.")
        out = np.empty((x.shape[0], self.n_pcs), dtype=np.float32)
        start = 0
        for block in _chunks(x):
            z = np.clip((block - self.mean) / self.std, -CLIP, CLIP) - self.center
            out[start : start + len(block)] = (z @ self.components) / self.scale
            start += len(block)
        return out

    def inverse_transform(self, p) -> np.ndarray:
        """Features (on the preprocessed scale) of scaled components ``p``: float32 ``(n, n_features)``.

        Exact for points in the span of the components whose standardised values were not
        clipped; otherwise the nearest such point.
        """
        p = np.asarray(p, dtype=np.float64)
        z = (p * self.scale) @ self.components.T + self.center
        return (z * self.std + self.mean).astype(np.float32)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for ``torch.save`` (float64)."""
        return {
            "mean": torch.from_numpy(self.mean),
            "std": torch.from_numpy(self.std),
            "center": torch.from_numpy(self.center),
            "components": torch.from_numpy(self.components),
            "scale": torch.tensor(self.scale, dtype=torch.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> PCAProjection:
        """The projection a :meth:`state_dict` describes."""
        return cls(
            state["mean"].cpu().numpy(),
            state["std"].cpu().numpy(),
            state["center"].cpu().numpy(),
            state["components"].cpu().numpy(),
            float(state["scale"]),
        )
