"""Do the default's outputs describe one clustering? Agreements of labels, proba and latent.

Fits ``tl.clustergan`` with its defaults on every cell of a staged count dataset and measures,
against ``obs["clustergan"]``:

* ``proba_argmax``: share of cells whose ``argmax(obsm["clustergan_proba"])`` is their label;
* ``knn15``: share of cells whose label a 15-nearest-neighbour classifier on
  ``obsm["X_clustergan"]`` reproduces (each cell's neighbours exclude the cell itself);
* ``kmeans_ari``: ARI against the truth of KMeans with K clusters on ``X_clustergan``,
  beside ``labels_ari``, the labels' ARI against the truth.

``after`` measures the model's own outputs (``latent_``, ``proba_``); ``before`` measures, from
the same fitted replicas, one replica's outputs beside the same pooled labels: the latent zn and
softmax(zc) of the replica that agrees most with the others inside the ensemble whose replicas
agree more.

    python benchmarks/coherence.py --dataset zheng2017_sorted8 --data-dir ../shared/data \\
        --out benchmarks/results/coherence_zheng2017_sorted8.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _protocol import machine
from scrna import DATASETS, label_agreement, medoid_outputs
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import scgan_cluster as scg


def agreements(latent: np.ndarray, proba: np.ndarray, labels, truth, k: int, seed: int) -> dict:
    """The three agreements of one set of outputs."""
    km = KMeans(k, n_init=10, random_state=seed).fit_predict(latent.astype(np.float64))
    return {
        **label_agreement(latent, proba, labels),
        "kmeans_ari": float(adjusted_rand_score(truth, km)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=None, help="(default: the recipe's)")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--dump", default=None, help="also write every replica's labels and latent (npz)"
    )
    args = parser.parse_args(argv)
    adata = DATASETS[args.dataset][0](Path(args.data_dir))
    truth = adata.obs["label"].astype(str).to_numpy()
    k = len(np.unique(truth))
    start = time.perf_counter()
    model = scg.ClusterGAN(k, max_iter=args.max_iter, random_state=args.seed, device="cpu")
    model.fit(adata)
    seconds = time.perf_counter() - start
    labels = model.labels_
    zn, proba = medoid_outputs(model)
    result = {
        "dataset": args.dataset,
        "n_cells": int(adata.n_obs),
        "n_clusters": k,
        "seed": args.seed,
        "labels_ari": float(adjusted_rand_score(truth, labels)),
        "before": agreements(zn, proba, labels, truth, k, args.seed),
        "after": agreements(model.latent_, model.proba_, labels, truth, k, args.seed),
        "fit_seconds": round(seconds, 1),
        "machine": f"{machine()['cpu']}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "command": "python benchmarks/coherence.py --dataset "
        f"{args.dataset} --seed {args.seed}"
        + (f" --max-iter {args.max_iter}" if args.max_iter else ""),
    }
    if args.dump:
        np.savez_compressed(
            args.dump,
            runs=model.labels_runs_,
            latents=np.stack([np.hstack([r.latent_, r.proba_]) for r in model.replicas], axis=1),
            weights=model.weights_,
            labels=labels,
            truth=truth,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
