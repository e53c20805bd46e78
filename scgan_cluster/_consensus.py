"""Combining the labels of several clustering runs without labels of truth.

Label ids of independent runs are arbitrary, so each run is first matched to a reference labelling
by the one-to-one relabelling that maximises the number of cells on which they agree (Hungarian
algorithm on the K x K contingency table). A cell's consensus label is the one most runs give it
after matching, and its confidence is the fraction of runs that give it. Memory and time are
linear in the number of cells (no cell x cell co-assignment matrix), so it scales to atlases.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

__all__ = ["agreement", "agreement_weights", "align_labels", "consensus", "vote"]


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
