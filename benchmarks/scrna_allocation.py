"""How a fixed budget is best split between the two ensembles, read from stored replicas.

A recipe of two ensembles (the genes, and the cells' principal components) pools every replica
by co-association linkage. The fits of one recipe on one dataset all see the same training and
validation cells (``scrna.py``'s split does not depend on the fit's seed), and every replica of
every fit is one draw of the same training with its own seed. So the dumps of F fits
(``scrna.py --dump``) hold F * R replicas of each ensemble, and a recipe with ``g`` genes
replicas and ``p`` component replicas can be read out of them without training: draw ``g`` of
the genes replicas and ``p`` of the component replicas (without replacement, across fits), pool
them by the recipe's linkage (``scrna_readout.readout_pool``: agreement-weighted, as a fit
pools its own), and score the pooled labels. Each allocation is drawn ``--draws`` times per
dataset.

Only the training and validation cells are scored (the test cells are pooled with the rest, as
a fit labels them, but never scored or written), so an allocation can be chosen here and judged
on the test cells by fits of the chosen recipe afterwards. A dump's folder names its dataset.

    python benchmarks/scrna_allocation.py DUMPS/*/*.npz --allocations 5+5 4+10 3+15 2+20 0+25 \\
        --draws 8 --out benchmarks/results/scrna_allocation.json
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from _protocol import score, write_json
from scrna_readout import SPLITS, readout_pool

SCORED = ("train", "val")
NUMBERS = ("train_nmi", "train_ari", "val_nmi", "val_ari")


def parse_allocation(text: str) -> tuple[int, int]:
    """``"3+15"``: 3 replicas of the first ensemble (the genes), 15 of the second."""
    try:
        g, p = (int(part) for part in text.split("+"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"an allocation is two counts joined by '+', such as 3+15; got {text!r}"
        ) from None
    if g < 0 or p < 0 or g + p < 2:
        raise argparse.ArgumentTypeError(
            f"an allocation needs counts >= 0 and at least two replicas in all; got {text!r}"
        )
    return g, p


def load_replicas(paths: list[Path]) -> dict[str, dict]:
    """Per dataset (a dump's folder name): each ensemble's replica labels of every fit side by
    side per split, the labels of truth and K. The fits must share their cells."""
    grouped: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        grouped[path.parent.name].append(path)
    out = {}
    for dataset, files in sorted(grouped.items()):
        dumps = [np.load(f) for f in sorted(files)]
        first = dumps[0]
        for f, z in zip(sorted(files), dumps, strict=True):
            same = all(np.array_equal(z[f"truth_{s}"], first[f"truth_{s}"]) for s in SPLITS)
            if not same or int(z["n_clusters"]) != int(first["n_clusters"]):
                raise ValueError(f"{f} does not share the cells of {sorted(files)[0]}")
        out[dataset] = {
            "k": int(first["n_clusters"]),
            "truth": {s: first[f"truth_{s}"] for s in SCORED},
            "ensembles": [
                {s: np.concatenate([z[f"labels_{c}_{s}"] for z in dumps], axis=1) for s in SPLITS}
                for c in range(2)
            ],
            "fits": len(dumps),
        }
    return out


def draw_scores(data: dict, allocation: tuple[int, int], draws: int) -> np.ndarray:
    """``(draws, 4)``: training NMI, ARI, validation NMI, ARI of the pooled labels of each draw
    (draw d: replicas chosen by ``default_rng(d)``, the pool seeded with d)."""
    have = [e["train"].shape[1] for e in data["ensembles"]]
    if any(n > h for n, h in zip(allocation, have, strict=True)):
        raise ValueError(
            f"allocation {allocation} needs more replicas than the dumps hold ({have})"
        )
    rows = []
    for d in range(draws):
        rng = np.random.default_rng(d)
        picks = [rng.choice(h, n, replace=False) for n, h in zip(allocation, have, strict=True)]
        fit = {
            s: {
                "labels": np.concatenate(
                    [e[s][:, pick] for e, pick in zip(data["ensembles"], picks, strict=True)],
                    axis=1,
                )
            }
            for s in SPLITS
        }
        labels = readout_pool(fit, data["k"], "linkage", d)  # the recipe's pool, as a fit's
        scored = {s: score(data["truth"][s], labels[s]) for s in SCORED}
        rows.append([scored[s][m] for s in SCORED for m in ("nmi", "ari")])
    return np.asarray(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", nargs="+", type=Path, help="npz files of scrna.py --dump")
    parser.add_argument(
        "--allocations", nargs="+", type=parse_allocation, required=True, metavar="G+P"
    )
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    datasets = load_replicas(args.dumps)
    table: dict[str, dict] = {}
    for dataset, data in datasets.items():
        for g, p in args.allocations:
            rows = draw_scores(data, (g, p), args.draws)
            mean = rows.mean(axis=0)
            table.setdefault(f"{g}+{p}", {})[dataset] = {
                **{n: round(float(v), 4) for n, v in zip(NUMBERS, mean, strict=True)},
                "mean": round(float(mean.mean()), 4),
                "sd_of_draws": round(float(rows.mean(axis=1).std()), 4),
            }
            print(
                f"{dataset:20s} {g:2d}+{p:<2d} train {mean[0]:.3f} / {mean[1]:.3f}  "
                f"val {mean[2]:.3f} / {mean[3]:.3f}  mean {mean.mean():.4f}",
                flush=True,
            )
    for alloc, per in table.items():
        per["over datasets"] = round(float(np.mean([v["mean"] for v in per.values()])), 4)
        print(f"{alloc:>6}: mean of the four numbers over datasets {per['over datasets']:.4f}")
    if args.out:
        write_json(
            args.out,
            {
                "script": "benchmarks/scrna_allocation.py",
                "dumps": {d: v["fits"] for d, v in datasets.items()},
                "draws": args.draws,
                "scored": "training and validation cells only",
                "allocations": table,
            },
        )


if __name__ == "__main__":
    main()
