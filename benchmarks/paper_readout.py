"""How a trained ClusterGAN ensemble's clusters are read, replica by replica.

For each replica of the ensemble that ``paper_table1.py --ensemble`` trains, on the test split:
the purity / NMI / ARI of the benchmark's readout (KMeans on ``(zn, softmax zc)``, fitted on
the training points), of the cluster code itself (``argmax zc``) and of KMeans on ``zn`` alone,
how many test points the encoder puts in each zc mode, and how far the generator's samples lie
from the training points (mean distance to the nearest one, next to the test points' own). A zc
that uses fewer modes than there are clusters means the generator draws several clusters' data
from one mode (or one cluster from several), so that the cluster structure sits in ``zn``
instead of ``zc``; samples far from the data mean the critic lets the generator miss it.

With the checkpoint folder of a finished ``paper_table1.py`` run, nothing is trained again (a
finished checkpoint gives the finished model):

    python benchmarks/paper_readout.py --dataset synthetic --max-iter 50000 --runs 5 \\
        --checkpoint-dir checkpoints

writes ``benchmarks/results/paper_readout_<dataset>.json`` (and prints the table); with
``--architecture-option KEY=VALUE`` (as given to ``paper_table1.py``) it reads the ensemble
trained with those network options, into ``paper_readout_<dataset>_<KEY>-<VALUE>.json``; with
``--separate`` the runs that ``paper_table1.py`` trained one at a time (without ``--ensemble``),
into ``paper_readout_<dataset>_separate.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _data
import numpy as np
from _baselines import (
    architecture_options,
    clustergan_checkpoint,
    fit_clustergan,
    options_suffix,
    with_options,
)
from _protocol import DEFAULT_DATA, RESULTS, machine, paper_split, score, write_json
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors


def readout(
    dataset: str,
    max_iter: int,
    runs: int,
    data_dir: Path,
    checkpoint_dir: Path | None,
    options: dict | None = None,
    *,
    separate: bool = False,
):
    """Per replica: the three readouts' test scores, the zc occupancy and how far the generated
    samples lie from the training points; and the test points' own distance to them.

    ``options``: network options that replace the dataset's, as ``paper_table1.py
    --architecture-option``. ``separate``: the runs were trained one at a time (``paper_table1.py``
    without ``--ensemble``), seed r's run from its own checkpoint, instead of as one ensemble.
    """
    data = _data.load(dataset, data_dir)
    split = paper_split(len(data.x), seed=0)
    n = len(split["train"])

    def trained(seed: int, n_rep: int):
        checkpoint = (
            None
            if checkpoint_dir is None
            else clustergan_checkpoint(checkpoint_dir, data.name, n, max_iter, n_rep, seed, options)
        )
        return fit_clustergan(
            with_options(data, options),
            data.x[split["train"]],
            max_iter=max_iter,
            seed=seed,
            checkpoint=checkpoint,
            **({"n_runs": n_rep} if n_rep else {}),
        )

    models = [trained(r, 0) for r in range(runs)] if separate else trained(0, runs).replicas
    x, truth = data.x[split["test"]], data.y[split["test"]]
    train = data.x[split["train"]].reshape(n, -1)
    nearest = NearestNeighbors(n_neighbors=1).fit(train)
    rows = []
    for r, rep in enumerate(models):
        zn, proba = rep._encode(x)
        code = proba.argmax(axis=1)
        zn_only = KMeans(data.n_clusters, n_init=10, random_state=r).fit_predict(zn)
        fake = np.asarray(rep.generate(len(x), random_state=r)).reshape(len(x), -1)
        rows.append(
            {
                "replica": r,
                "kmeans_zn_zc": score(truth, rep.predict(x)),
                "argmax_zc": score(truth, code),
                "kmeans_zn": score(truth, zn_only),
                "zc_occupancy": np.bincount(code, minlength=data.n_clusters).tolist(),
                # how far G's samples lie from the data: mean distance to the nearest training
                # point, of as many generated samples as there are test points (the test
                # points' own distance is the result's "test_nearest_distance")
                "generated_nearest_distance": round(float(nearest.kneighbors(fake)[0].mean()), 4),
            }
        )
    real = float(nearest.kneighbors(x.reshape(len(x), -1))[0].mean())
    return rows, round(real, 4)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--max-iter", type=int, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint-dir", type=Path, default=None)
    parser.add_argument(
        "--architecture-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="as paper_table1.py's: read the ensemble trained with these network options",
    )
    parser.add_argument(
        "--separate",
        action="store_true",
        help="the runs were trained one at a time (paper_table1.py without --ensemble)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        options = architecture_options(args.architecture_option)
    except ValueError as e:
        parser.error(str(e))
    rows, real = readout(
        args.dataset,
        args.max_iter,
        args.runs,
        args.data_dir,
        args.checkpoint_dir,
        options,
        separate=args.separate,
    )
    print(
        "replica | KMeans (zn, zc) | argmax zc | KMeans zn | zc occupancy (test points) "
        f"| generated samples' distance to the nearest training point (test points: {real})"
    )
    for row in rows:
        cells = [
            " / ".join(f"{row[k][m]:.3f}" for m in ("purity", "nmi", "ari"))
            for k in ("kmeans_zn_zc", "argmax_zc", "kmeans_zn")
        ]
        print(
            f"{row['replica']} | " + " | ".join(cells) + f" | {row['zc_occupancy']} "
            f"| {row['generated_nearest_distance']}"
        )
    result = {
        "script": "benchmarks/paper_readout.py",
        "command": f"python benchmarks/paper_readout.py --dataset {args.dataset} "
        f"--max-iter {args.max_iter} --runs {args.runs}"
        + (" --separate" if args.separate else "")
        + (" --checkpoint-dir checkpoints" if args.checkpoint_dir is not None else "")
        + "".join(f" --architecture-option {pair}" for pair in args.architecture_option),
        "architecture_options": options,
        "machine": machine(),
        "metrics": "test purity, NMI, ARI",
        "test_nearest_distance": real,
        "replicas": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"paper_readout_{args.dataset}{options_suffix(options)}"
    write_json(args.out / f"{name}{'_separate' if args.separate else ''}.json", result)
    return result


if __name__ == "__main__":
    main()
