"""Which labelled populations a fit merges or splits: the pooled clusters and every replica.

Reads fits dumped by ``scrna.py --dump FOLDER`` (one ``.npz`` per fit) and prints, for the
training cells of each fit: the crosstab of the labelled populations against the pooled
clusters (the default's ``pool="linkage"`` of every replica of every ensemble, refitted from
the dumped labels), each population's best-matching cluster and its share there, and per
replica the NMI / ARI against the labels and its pool weight. Labels are used only to score.

    python benchmarks/scrna.py --dataset zheng2017_sorted10 --methods --clustergan fast --seed0 45 --dump OUT
    python benchmarks/scrna_crosstab.py OUT/*.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from scgan_cluster.metrics import cluster_metrics
from scgan_cluster.model import Pool
from scgan_cluster.model._pool import replica_weights


def crosstab(path: Path, split: str = "train") -> str:
    """The report of one dumped fit (see the module docstring)."""
    z = np.load(path)
    k = int(z["n_clusters"])
    truth = z[f"truth_{split}"]
    ensembles = sorted(
        int(key.split("_")[1]) for key in z.files if key.startswith("labels_") and split in key
    )
    runs = np.hstack([z[f"labels_{c}_{split}"].astype(np.int64) for c in ensembles])
    _, weights = replica_weights(runs)
    pool = Pool.fit(runs, k, weights, method="linkage", random_state=int(z["random_state"]))
    labels = pool.predict(runs)
    table = pd.crosstab(pd.Series(truth, name="population"), pd.Series(labels, name="cluster"))
    m = cluster_metrics(truth, labels)
    lines = [
        f"{path.name}: K = {k}, {len(truth)} {split} cells; pooled NMI {m['nmi']:.3f} / "
        f"ARI {m['ari']:.3f}",
        table.to_string(),
        "",
        "population -> its largest cluster (share of the population; share of that cluster "
        "that is this population)",
    ]
    for pop, row in table.iterrows():
        c = int(row.idxmax())
        lines.append(
            f"  {pop:<32} -> {c:>2} ({row.max() / row.sum():.2f}; {row.max() / table[c].sum():.2f})"
        )
    lines.append("replicas (ensemble, index): NMI / ARI, pool weight")
    col = 0
    for c in ensembles:
        for r in range(z[f"labels_{c}_{split}"].shape[1]):
            mr = cluster_metrics(truth, runs[:, col])
            lines.append(f"  ({c}, {r}): {mr['nmi']:.3f} / {mr['ari']:.3f}, {weights[col]:.3f}")
            col += 1
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", nargs="+", type=Path)
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    args = parser.parse_args(argv)
    for path in args.dumps:
        print(crosstab(path, args.split))
        print()


if __name__ == "__main__":
    main()
