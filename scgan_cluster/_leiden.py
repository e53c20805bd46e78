"""Leiden clustering with a requested number of clusters (resolution found by bisection)."""

from __future__ import annotations

import numpy as np
import scanpy as sc
from anndata import AnnData

__all__ = ["leiden_graph_k", "leiden_latent_k"]

_KEY = "_scgan_leiden"


def leiden_graph_k(
    adata: AnnData,
    n_clusters: int,
    random_state: int = 0,
    *,
    max_steps: int = 30,
    n_iterations: int = 2,
) -> tuple[np.ndarray, float]:
    """Leiden labels of ``adata``'s neighbour graph with ``n_clusters`` clusters, or the closest below.

    The resolution is bisected on [0.01, 5] (more clusters at higher resolution) until leiden
    (igraph flavour, ``n_iterations`` iterations, -1: until it converges; undirected) gives exactly ``n_clusters``; if no tried
    resolution does, the labelling with the most clusters not above ``n_clusters`` is kept, and
    if every one had more (a graph of more than ``n_clusters`` disconnected parts), the one with
    the fewest. Cluster 0 is the largest (scanpy's order). ``adata`` needs ``sc.pp.neighbors``
    to have run; a temporary ``obs`` column is removed again.

    Returns
    -------
    labels
        ``(n_obs,)`` int64.
    resolution
        The resolution that gave them.
    """
    lo, hi = 0.01, 5.0
    best: tuple[int, np.ndarray, float] | None = None
    fewest: tuple[int, np.ndarray, float] | None = None
    try:
        for _ in range(max_steps):
            res = (lo + hi) / 2
            sc.tl.leiden(
                adata,
                resolution=res,
                random_state=random_state,
                key_added=_KEY,
                flavor="igraph",
                n_iterations=n_iterations,
                directed=False,
            )
            labels = adata.obs[_KEY].cat.codes.to_numpy().astype(np.int64)
            n = int(labels.max()) + 1
            if n <= n_clusters and (best is None or n > best[0]):
                best = (n, labels, res)
            if fewest is None or n < fewest[0]:
                fewest = (n, labels, res)
            if n == n_clusters:
                break
            if n < n_clusters:
                lo = res
            else:
                hi = res
    finally:
        if _KEY in adata.obs:
            del adata.obs[_KEY]
        adata.uns.pop(_KEY, None)
    if best is None:  # even the lowest resolution tried split the graph too finely
        best = fewest
    assert best is not None
    return best[1], best[2]


def leiden_latent_k(
    x: np.ndarray, n_clusters: int, random_state: int = 0, *, n_neighbors: int = 15
) -> np.ndarray:
    """Leiden with ``n_clusters`` clusters on the ``n_neighbors``-nearest-neighbour graph of the rows of ``x``.

    The graph is scanpy's (``sc.pp.neighbors`` on ``x`` as given, UMAP connectivities); see
    :func:`leiden_graph_k` for the resolution search. When the graph has more than
    ``n_clusters`` disconnected parts, which leiden never joins, the smallest cluster is merged
    into the one with the nearest mean until ``n_clusters`` are left. Returns ``(n,)`` int64
    labels in ``[0, n_clusters)``, cluster 0 the largest.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    graph = AnnData(x)
    sc.pp.neighbors(
        graph,
        n_neighbors=max(2, min(n_neighbors, x.shape[0] - 1)),
        use_rep="X",
        random_state=random_state,
    )
    labels = leiden_graph_k(graph, n_clusters, random_state)[0]
    return _merge_down(x, labels, n_clusters)


def _merge_down(x: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Merge the smallest cluster into the nearest (by mean) until at most ``n_clusters``; ids by size."""
    labels = labels.copy()
    ids = list(np.unique(labels))
    while len(ids) > n_clusters:
        sizes = [int((labels == c).sum()) for c in ids]
        small = ids[int(np.argmin(sizes))]
        means = {c: x[labels == c].mean(axis=0) for c in ids}
        others = [c for c in ids if c != small]
        dist = [float(np.sum((means[c] - means[small]) ** 2)) for c in others]
        labels[labels == small] = others[int(np.argmin(dist))]
        ids = others
    # relabel 0.. by decreasing size (ties: lower old id first)
    uniq, counts = np.unique(labels, return_counts=True)
    order = uniq[np.lexsort((uniq, -counts))]
    remap = np.empty(int(uniq.max()) + 1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[labels]
