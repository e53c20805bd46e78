"""Pooling replicas into one clustering, and their latents into one embedding.

Both work on arrays (the replicas' labels and latents of some cells), so that training cells
and new cells go through the same functions: :class:`Pool` turns ``(n_cells, R)`` replica
labels into labels and a soft assignment whose column k is cluster k;
:class:`ConsensusEmbedding` turns the R replicas' encoder latents into one latent whose
geometry is the replicas' weighted average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from scgan_cluster._consensus import (
    agreement,
    agreement_weights,
    coassociation_share,
    consensus,
    linkage_consensus,
    row_blocks,
    vote,
)

__all__ = ["POOL_METHODS", "ConsensusEmbedding", "Pool", "replica_weights"]

POOL_METHODS = ("linkage", "vote")
"""Ways :class:`Pool` combines the replicas."""


def replica_weights(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each replica's agreement with the others (mean ARI) and its weight (negatives count 0).

    Parameters
    ----------
    runs
        ``(n_cells, R)`` labels of R >= 2 replicas.
    """
    scores = agreement(np.asarray(runs))
    return scores, agreement_weights(scores)


@dataclass(frozen=True)
class Pool:
    """How the labels of R replicas become one clustering, fitted on training cells.

    ``"linkage"``: each cluster has a profile (its training cells' mean co-association
    embedding, :func:`scgan_cluster._consensus.coassociation_embedding`); a cell's share of
    cluster k is the weighted share of replicas that put it with cluster k's cells, averaged
    over them. ``"vote"``: each replica's ids are matched onto the clusters (``maps``) and a
    cell's share of cluster k is the weight of the replicas that vote k. Either way a cell's
    label is its largest share, for training cells and new cells alike.
    """

    method: Literal["linkage", "vote"]
    n_clusters: int
    weights: np.ndarray
    """``(R,)`` each replica's weight."""
    profiles: np.ndarray | None = None
    """``"linkage"``: ``(K, R * K)`` the clusters' profiles."""
    maps: np.ndarray | None = None
    """``"vote"``: ``(R, K)`` relabelling of each replica onto the cluster ids."""

    @classmethod
    def fit(
        cls,
        runs: np.ndarray,
        n_clusters: int,
        weights: np.ndarray,
        *,
        method: Literal["linkage", "vote"] = "linkage",
        max_cells: int = 5000,
        random_state: int = 0,
    ) -> Pool:
        """Pool the replicas' labels of the training cells.

        Parameters
        ----------
        runs
            ``(n_cells, R)`` labels, R >= 2.
        n_clusters
            K (the replicas' number of labels).
        weights
            ``(R,)`` non-negative replica weights (:func:`replica_weights`).
        method
            ``"linkage"``: average linkage of the weighted co-association, cut at K (on at most
            ``max_cells`` cells, a subset seeded by ``random_state``); ``"vote"``: the weighted
            vote after matching ids (:func:`scgan_cluster._consensus.consensus`).
        max_cells, random_state
            ``"linkage"`` only.
        """
        if method not in POOL_METHODS:
            raise ValueError(f"method must be one of {POOL_METHODS}, got {method!r}.")
        weights = np.asarray(weights, dtype=np.float64)
        if method == "linkage":
            _, _, profiles, _ = linkage_consensus(
                runs, n_clusters, weights=weights, max_cells=max_cells, random_state=random_state
            )
            return cls(method, len(profiles), weights, profiles=profiles)
        _, _, maps, _ = consensus(runs, n_clusters, weights=weights)
        return cls(method, n_clusters, weights, maps=np.asarray(maps, dtype=np.int64))

    def shares(self, runs: np.ndarray) -> np.ndarray:
        """``(n_cells, K)`` each cell's (unnormalised) share of each cluster.

        Parameters
        ----------
        runs
            ``(n_cells, R)`` the same replicas' labels of any cells.
        """
        runs = np.asarray(runs, dtype=np.int64)
        k_runs = (
            self.maps.shape[1]
            if self.maps is not None
            else self.profiles.shape[1] // len(self.weights)
        )
        if self.method == "linkage":
            return coassociation_share(runs, self.profiles, k_runs, self.weights)
        return vote(runs, self.maps, self.n_clusters, self.weights) / self.weights.sum()

    def proba(self, runs: np.ndarray) -> np.ndarray:
        """``(n_cells, K)`` soft assignment: the shares normalised to sum 1 (column k is cluster k).

        Parameters
        ----------
        runs
            ``(n_cells, R)`` replica labels.
        """
        share = self.shares(runs)
        total = share.sum(axis=1, keepdims=True)
        out = np.full_like(share, 1.0 / share.shape[1])
        np.divide(share, total, out=out, where=total > 0)
        return out

    def predict(self, runs: np.ndarray) -> np.ndarray:
        """Labels: each cell's largest share.

        Parameters
        ----------
        runs
            ``(n_cells, R)`` replica labels.
        """
        return self.shares(runs).argmax(axis=1).astype(np.int64)


Latent = np.ndarray | tuple[np.ndarray, ...]
"""One replica's latent: an ``(n_cells, d)`` array, or arrays of the same cells joined column-wise."""


def _rows(latent: Latent, rows: slice) -> np.ndarray:
    """float64 copy of some rows of a replica's latent (its parts joined)."""
    if isinstance(latent, tuple):
        return np.hstack([part[rows] for part in latent]).astype(np.float64)
    return np.asarray(latent[rows], dtype=np.float64)


def _n_rows(latents: list[Latent]) -> int:
    first = latents[0][0] if isinstance(latents[0], tuple) else latents[0]
    return len(first)


@dataclass(frozen=True)
class ConsensusEmbedding:
    """One latent for R replicas: their latents standardised, weighted, joined and projected.

    Replica r's latent (its encoder's zn joined with softmax(zc)) is centred and divided by its
    total standard deviation (the root of the summed variances over its columns), so that each
    replica spans the same total variance, then scaled by ``sqrt(w_r / sum(w))``: the squared
    distance of two cells in the joined latent is the weighted mean of their standardised
    squared distances in the replicas. The joined latent is projected on its leading principal
    axes (``n_components``), fitted on the training cells.

    Fitting and projecting pass over the cells in blocks (means, then variances and the
    covariance accumulated block by block in float64), so that memory holds the replicas' own
    latents and the float32 result, never the joined latent of every cell.
    """

    means: tuple[np.ndarray, ...]
    scales: np.ndarray
    weights: np.ndarray
    components: np.ndarray
    """``(n_components, sum of the replicas' widths)``."""

    @classmethod
    def fit(
        cls, latents: list[Latent], weights: np.ndarray, n_components: int
    ) -> ConsensusEmbedding:
        """Fit on the training cells' latents.

        Parameters
        ----------
        latents
            One ``(n_cells, d_r)`` array per replica, or a tuple of arrays of the same cells
            that make it when joined column-wise (e.g. ``(zn, softmax zc)``).
        weights
            ``(R,)`` replica weights (not all zero).
        n_components
            Dimensions kept (at most the joined width and the cells).
        """
        weights = np.asarray(weights, dtype=np.float64)
        n = _n_rows(latents)
        blocks = row_blocks(n)
        sums = [sum(_rows(lat, rows).sum(axis=0) for rows in blocks) for lat in latents]
        means = tuple(total / max(n, 1) for total in sums)
        squares = [
            sum(((_rows(lat, rows) - mean) ** 2).sum(axis=0) for rows in blocks)
            for lat, mean in zip(latents, means, strict=True)
        ]
        scales = np.array([max(float(np.sqrt((sq / max(n, 1)).sum())), 1e-12) for sq in squares])
        emb = cls(means, scales, weights, np.zeros((0, 0)))
        width = sum(len(mean) for mean in means)
        cov = np.zeros((width, width))
        for rows in blocks:
            joined = emb._join(latents, rows)
            cov += joined.T @ joined
        cov /= max(n - 1, 1)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][: min(int(n_components), n, width)]
        components = vectors[:, order].T
        # sign convention: each axis' largest loading is positive
        flip = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
        components *= np.where(flip == 0, 1.0, flip)[:, None]
        return cls(means, scales, weights, components)

    def _join(self, latents: list[Latent], rows: slice) -> np.ndarray:
        """The standardised, weighted replicas side by side for some rows (float64)."""
        share = np.sqrt(self.weights / self.weights.sum())
        return np.hstack(
            [
                (_rows(lat, rows) - mean) * (w / scale)
                for lat, mean, scale, w in zip(latents, self.means, self.scales, share, strict=True)
            ]
        )

    def transform(self, latents: list[Latent]) -> np.ndarray:
        """``(n_cells, n_components)`` float32 embedding of cells from their replica latents.

        Parameters
        ----------
        latents
            One latent per replica, as in :meth:`fit`.
        """
        if len(latents) != len(self.means):
            raise ValueError(f"Expected {len(self.means)} latents, got {len(latents)}.")
        n = _n_rows(latents)
        out = np.empty((n, len(self.components)), dtype=np.float32)
        for rows in row_blocks(n):
            out[rows] = self._join(latents, rows) @ self.components.T
        return out
