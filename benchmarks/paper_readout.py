"""How a trained ClusterGAN ensemble's clusters are read, replica by replica.

For each replica of the ensemble that ``paper_table1.py --ensemble`` trains, on the test split:
the purity / NMI / ARI of the benchmark's readout (KMeans on ``(zn, softmax zc)``, fitted on
the training points), of the cluster code itself (``argmax zc``) and of KMeans on ``zn`` alone,
and how many test points the encoder puts in each zc mode. A zc that uses fewer modes than
there are clusters means the generator draws several clusters' data from one mode (or one
cluster from several), so that the cluster structure sits in ``zn`` instead of ``zc``.

With the checkpoint folder of a finished ``paper_table1.py`` run, nothing is trained again (a
finished checkpoint gives the finished model):

    python benchmarks/paper_readout.py --dataset synthetic --max-iter 50000 --runs 5 \\
        --checkpoint-dir checkpoints

writes ``benchmarks/results/paper_readout_<dataset>.json`` (and prints the table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _data
import numpy as np
from _baselines import clustergan_checkpoint, fit_clustergan
from _protocol import DEFAULT_DATA, RESULTS, machine, paper_split, score, write_json
from sklearn.cluster import KMeans


def readout(dataset: str, max_iter: int, runs: int, data_dir: Path, checkpoint_dir: Path | None):
    """Per replica: the three readouts' test scores and the zc occupancy."""
    data = _data.load(dataset, data_dir)
    split = paper_split(len(data.x), seed=0)
    n = len(split["train"])
    checkpoint = (
        None
        if checkpoint_dir is None
        else clustergan_checkpoint(checkpoint_dir, data.name, n, max_iter, runs, 0)
    )
    model = fit_clustergan(
        data, data.x[split["train"]], max_iter=max_iter, seed=0, n_runs=runs, checkpoint=checkpoint
    )
    x, truth = data.x[split["test"]], data.y[split["test"]]
    rows = []
    for r, rep in enumerate(model.replicas):
        zn, proba = rep._encode(x)
        code = proba.argmax(axis=1)
        zn_only = KMeans(data.n_clusters, n_init=10, random_state=r).fit_predict(zn)
        rows.append(
            {
                "replica": r,
                "kmeans_zn_zc": score(truth, rep.predict(x)),
                "argmax_zc": score(truth, code),
                "kmeans_zn": score(truth, zn_only),
                "zc_occupancy": np.bincount(code, minlength=data.n_clusters).tolist(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--max-iter", type=int, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = readout(args.dataset, args.max_iter, args.runs, args.data_dir, args.checkpoint_dir)
    print("replica | KMeans (zn, zc) | argmax zc | KMeans zn | zc occupancy (test points)")
    for row in rows:
        cells = [
            " / ".join(f"{row[k][m]:.3f}" for m in ("purity", "nmi", "ari"))
            for k in ("kmeans_zn_zc", "argmax_zc", "kmeans_zn")
        ]
        print(f"{row['replica']} | " + " | ".join(cells) + f" | {row['zc_occupancy']}")
    result = {
        "script": "benchmarks/paper_readout.py",
        "command": f"python benchmarks/paper_readout.py --dataset {args.dataset} "
        f"--max-iter {args.max_iter} --runs {args.runs}"
        + (" --checkpoint-dir checkpoints" if args.checkpoint_dir is not None else ""),
        "machine": machine(),
        "metrics": "test purity, NMI, ARI",
        "replicas": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"paper_readout_{args.dataset}.json", result)
    return result


if __name__ == "__main__":
    main()
