"""Combining the labels of several clustering runs without labels of truth.

Two ways. The vote (:func:`consensus`): label ids of independent runs are arbitrary, so each run
is first matched to a reference labelling by the one-to-one relabelling that maximises the
number of cells on which they agree (Hungarian algorithm on the K x K contingency table). A
cell's consensus label is the one most runs give it after matching, and its confidence is the
fraction of runs that give it. Memory and time are linear in the number of cells (no cell x cell
co-assignment matrix), so it scales to atlases.

The co-association linkage (:func:`linkage_consensus`) needs no matching: two cells are as close
as the share of runs that put them in the same cluster, and average-linkage clustering of that
similarity is cut at K clusters. It is quadratic in the cells it builds the tree on, so above
``max_cells`` a random subset builds it and every other cell joins the cluster it is co-assigned
with most.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from scgan_cluster._dask import row_slices

ROWS = 1 << 16
"""Cells per block where a pass over the cells is done block by block (bounded memory)."""

__all__ = [
    "agreement",
    "agreement_weights",
    "align_labels",
    "coassociation_embedding",
    "coassociation_share",
    "consensus",
    "linkage_assign",
    "linkage_consensus",
    "row_blocks",
    "vote",
]


def align_labels(reference: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """The relabelling ``m`` (``m[label] = reference label``) that maximises agreement.

    Parameters
    ----------
    reference, labels
        Integer labels in ``[0, n_clusters)`` of the same cells.
    n_clusters
        K.
    """
    table = np.zeros((n_clusters, n_clusters), dtype=np.int64)
    np.add.at(table, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.arange(n_clusters)
    mapping[rows] = cols
    return mapping


def vote(
    runs: np.ndarray, maps: np.ndarray, n_clusters: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Votes ``(n_cells, K)``: how many runs give each cell each (matched) label.

    Parameters
    ----------
    runs
        ``(n_cells, R)`` labels of R runs.
    maps
        ``(R, K)`` relabellings from :func:`align_labels`.
    n_clusters
        K.
    weights
        ``(R,)`` weight of each run's vote; ``None``: one vote each (integer counts).
    """
    n, n_runs = runs.shape
    votes = np.zeros((n, n_clusters), dtype=np.int64 if weights is None else np.float64)
    rows = np.arange(n)
    for r in range(n_runs):
        np.add.at(votes, (rows, maps[r][runs[:, r]]), 1 if weights is None else weights[r])
    return votes


def agreement(runs: np.ndarray) -> np.ndarray:
    """Mean adjusted Rand index of each run with every other run, shape ``(R,)``.

    The run that agrees most with the others (the medoid) is a label-free choice of one run.

    Parameters
    ----------
    runs
        ``(n_cells, R)`` labels of R >= 2 runs.
    """
    n_runs = runs.shape[1]
    pair = np.eye(n_runs)
    for a in range(n_runs):
        for b in range(a + 1, n_runs):
            pair[a, b] = pair[b, a] = adjusted_rand_score(runs[:, a], runs[:, b])
    return (pair.sum(axis=1) - 1.0) / (n_runs - 1)


def agreement_weights(scores: np.ndarray) -> np.ndarray:
    """Vote weights from :func:`agreement` scores: negative ones count 0; all equal if none is positive."""
    weights = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    if weights.sum() <= 0:  # no run agrees with another beyond chance: an equal vote
        weights = np.ones_like(weights)
    return weights


def _checked(
    runs: np.ndarray, n_clusters: int, weights: np.ndarray | str | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Validated ``runs`` (int64), ``weights`` (``"agreement"`` resolved) and the agreement scores."""
    runs = np.asarray(runs, dtype=np.int64)
    if runs.ndim != 2 or runs.shape[1] < 2:
        raise ValueError(f"runs must be (n_cells, R) with R >= 2, got shape {runs.shape}.")
    if runs.size and (runs.min() < 0 or runs.max() >= n_clusters):
        raise ValueError(f"labels must lie in [0, {n_clusters}).")
    scores = agreement(runs)
    if isinstance(weights, str):
        if weights != "agreement":
            raise ValueError(f"weights must be an array, 'agreement' or None, got {weights!r}.")
        weights = agreement_weights(scores)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (runs.shape[1],):
            raise ValueError(
                f"weights must have one value per run ({runs.shape[1]}), got shape {weights.shape}."
            )
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero.")
    return runs, weights, scores


def consensus(
    runs: np.ndarray,
    n_clusters: int,
    *,
    weights: np.ndarray | str | None = None,
    max_rounds: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Majority vote of R clusterings of the same cells after matching their label ids.

    The reference starts as the run that agrees most with the others (:func:`agreement`); every
    run is matched to it, the vote gives new labels, and matching and voting repeat against the
    vote until it no longer changes (at most ``max_rounds`` times). A tied vote keeps the
    reference's label (so two runs give the labels of the first). With ``weights`` each run's
    vote counts its weight (e.g. its agreement with the others, so that runs that disagree with
    the rest count less).

    Parameters
    ----------
    runs
        ``(n_cells, R)`` integer labels in ``[0, n_clusters)``.
    n_clusters
        K.
    weights
        ``(R,)`` non-negative weight of each run's vote, not all zero; ``"agreement"``: each
        run's agreement with the others (the returned ``scores``, negative values as 0; equal
        weights if none is positive); ``None``: equal weights (integer votes).
    max_rounds
        Upper bound on the match-and-vote rounds.

    Returns
    -------
    labels
        ``(n_cells,)`` consensus labels.
    confidence
        ``(n_cells,)`` fraction of runs (of the total weight) that give the consensus label.
    maps
        ``(R, K)`` relabelling of each run onto the consensus ids (for new cells: :func:`vote`).
    scores
        ``(R,)`` the agreement of each run with the others.
    """
    runs, weights, scores = _checked(runs, n_clusters, weights)
    total = runs.shape[1] if weights is None else weights.sum()
    reference = runs[:, int(np.argmax(scores))]
    for _ in range(max_rounds):
        maps = np.stack(
            [align_labels(reference, runs[:, r], n_clusters) for r in range(runs.shape[1])]
        )
        votes = vote(runs, maps, n_clusters, weights)
        # a tie keeps the reference label: it gets a bonus below any difference of two votes
        # (half a vote when counted; 1e-9 of the total weight when weighted)
        tie_break = votes.astype(np.float64)
        bonus = 0.5 if weights is None else 1e-9 * total
        tie_break[np.arange(len(reference)), reference] += bonus
        labels = tie_break.argmax(axis=1)
        if np.array_equal(labels, reference):
            break
        reference = labels
    confidence = votes[np.arange(len(labels)), labels] / total
    return labels, confidence, maps, scores


def coassociation_embedding(
    runs: np.ndarray, n_clusters: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Each run's one-hot labels side by side, ``(n_cells, R * K)``, weighted.

    Run r's block is scaled by ``sqrt(w_r / sum(w))``, so that the dot product of two cells'
    rows is the (weighted) share of runs that put them in the same cluster.

    Parameters
    ----------
    runs
        ``(n_cells, R)`` integer labels in ``[0, n_clusters)``.
    n_clusters
        K.
    weights
        ``(R,)`` non-negative weight of each run, not all zero; ``None``: equal.
    """
    runs = np.asarray(runs, dtype=np.int64)
    n, n_runs = runs.shape
    w = np.ones(n_runs) if weights is None else np.asarray(weights, dtype=np.float64)
    x = np.zeros((n, n_runs * n_clusters))
    x[np.arange(n)[:, None], np.arange(n_runs) * n_clusters + runs] = 1.0
    return x * np.repeat(np.sqrt(w / w.sum()), n_clusters)


def _cut(tree: np.ndarray, n_leaves: int, n_clusters: int) -> np.ndarray:
    """Clusters after the first ``n_leaves - n_clusters`` merges of a scipy linkage.

    Exactly ``min(n_clusters, n_leaves)`` of them (cutting at a height can give fewer when
    merges tie).
    """
    parent = np.arange(2 * n_leaves - 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for step in range(max(n_leaves - n_clusters, 0)):
        a, b = int(tree[step, 0]), int(tree[step, 1])
        parent[root(a)] = parent[root(b)] = n_leaves + step
    roots = np.array([root(i) for i in range(n_leaves)])
    return np.unique(roots, return_inverse=True)[1]


def row_blocks(n: int, rows: int | None = None) -> list[slice]:
    """Slices of at most ``rows`` (default :data:`ROWS`) consecutive rows covering ``range(n)``."""
    return [slice(a, b) for a, b in row_slices(n, ROWS if rows is None else int(rows))]


def _coassociation_tree(
    runs: np.ndarray,
    n_clusters: int,
    weights: np.ndarray | str | None,
    max_cells: int,
    random_state: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The average-linkage tree of the runs' weighted co-association.

    Returns the validated runs, the cells that build the tree (all, or a seeded subset of
    ``max_cells``), their co-association embedding, the tree of their distance (one minus
    co-association), the resolved weights and the runs' agreement scores. Only the tree's cells
    are embedded, so memory does not grow with the other cells.
    """
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    if int(max_cells) < 2:
        raise ValueError(f"max_cells must be at least 2, got {max_cells!r}.")
    runs, weights, scores = _checked(runs, n_clusters, weights)
    n = len(runs)
    tree_cells = np.arange(n)
    if n > max_cells:
        tree_cells = np.sort(
            np.random.default_rng(random_state).choice(n, max_cells, replace=False)
        )
    sub = coassociation_embedding(runs[tree_cells], n_clusters, weights)
    dist = np.clip(1.0 - sub @ sub.T, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    return runs, tree_cells, sub, tree, weights, scores


def linkage_consensus(
    runs: np.ndarray,
    n_clusters: int,
    *,
    weights: np.ndarray | str | None = None,
    max_cells: int = 5000,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Average-linkage clustering of R clusterings' (weighted) co-association, cut at K clusters.

    The distance of two cells is one minus the share of runs (of the total weight) that put
    them in the same cluster; average linkage (UPGMA) on it, stopped at ``n_clusters`` clusters.
    With more than ``max_cells`` cells a random subset of ``max_cells`` builds the tree. Each
    cluster's profile is the mean :func:`coassociation_embedding` of the cells that built it; a
    cell's confidence is its mean co-association with them (the weighted share of runs that put
    it with them, averaged over them), and every cell outside the tree, new cells included,
    joins the cluster it is co-assigned with most. Cluster 0 is the largest.

    Parameters
    ----------
    runs
        ``(n_cells, R)`` integer labels in ``[0, n_clusters)``, R >= 2.
    n_clusters
        K: the runs' number of labels, and of the clusters returned.
    weights
        As in :func:`consensus` (``"agreement"``: each run's agreement with the others).
    max_cells
        Most cells the tree is built on (memory and time grow with its square).
    random_state
        Seed of the subset (used only above ``max_cells``).

    Returns
    -------
    labels
        ``(n_cells,)`` consensus labels.
    confidence
        ``(n_cells,)`` mean co-association of each cell with its cluster.
    profiles
        ``(K, R * K)`` the clusters' profiles (for new cells:
        ``argmax(embedding @ profiles.T)``).
    scores
        ``(R,)`` the agreement of each run with the others.
    """
    runs, tree_cells, sub, tree, weights, scores = _coassociation_tree(
        runs, n_clusters, weights, max_cells, random_state
    )
    n = len(runs)
    groups = _cut(tree, len(sub), n_clusters)
    # ids by decreasing size (ties: the lower first-cell index first); the K largest are kept
    sizes = np.bincount(groups)
    first = np.unique(groups, return_index=True)[1]
    order = np.lexsort((first, -sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    groups = rank[groups]
    profiles = np.stack([sub[groups == c].mean(axis=0) for c in range(len(order))])
    share = coassociation_share(runs, profiles, n_clusters, weights)
    labels = share.argmax(axis=1)  # cells outside the tree, as new cells
    labels[tree_cells] = groups
    confidence = share[np.arange(n), labels]
    return labels.astype(np.int64), confidence, profiles, scores


def coassociation_share(
    runs: np.ndarray, profiles: np.ndarray, n_clusters: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """``(n_cells, K)`` each cell's co-association with each profile of :func:`linkage_consensus`.

    ``coassociation_embedding(runs) @ profiles.T``, computed :data:`ROWS` cells at a time so
    that the ``(n_cells, R * K)`` embedding is never held whole.

    Parameters
    ----------
    runs
        ``(n_cells, R)`` labels of the same R runs (same order) the profiles came from.
    profiles
        ``(K, R * K)`` from :func:`linkage_consensus`.
    n_clusters
        K of the runs.
    weights
        The run weights the profiles were built with.
    """
    runs = np.asarray(runs, dtype=np.int64)
    share = np.empty((len(runs), len(profiles)))
    for rows in row_blocks(len(runs)):
        share[rows] = coassociation_embedding(runs[rows], n_clusters, weights) @ profiles.T
    return share


def linkage_assign(
    runs: np.ndarray, profiles: np.ndarray, n_clusters: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Labels of cells from their runs' labels, for the clusters of :func:`linkage_consensus`.

    Each cell joins the cluster whose profile it is co-assigned with most (the argmax of
    :func:`coassociation_share`, whose parameters these are), as that function places the
    cells outside its tree.
    """
    return coassociation_share(runs, profiles, n_clusters, weights).argmax(axis=1).astype(np.int64)
