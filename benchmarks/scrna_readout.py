"""Label-free readouts of one ClusterGAN fit's replicas, scored from ``scrna.py --dump`` files.

A fit of the default recipe trains two ensembles (genes and principal components) and reads
one labelling out of their replicas. This scores other ways of reading it, on the same
replicas, without training again:

- ``kept``: the matched majority vote of the replicas of the ensemble whose replicas agree
  most (that ensemble's own labels, :class:`scgan_cluster.model.GANEnsemble`).
- ``pooled``: every replica of every ensemble in one vote weighted by its agreement with the
  others (:class:`scgan_cluster.model.Pool`, ``method="vote"``; a recipe's ``pool="vote"``).
- ``onehot_kmeans``: KMeans on the replicas' one-hot labels side by side, each replica's block
  scaled by the square root of its vote weight, so that the squared distance of two cells is
  the weighted number of replicas that separate them (a co-association consensus in memory
  linear in the cells); new cells go to the nearest centre.
- ``pooled_refined``: the same KMeans started from the pooled vote's clusters (a local
  improvement of the pooled vote on the co-association).
- ``linkage``: average-linkage clustering of the training cells on the same weighted
  co-association, cut at K clusters; every cell joins the cluster it is co-assigned with most
  on average (:class:`scgan_cluster.model.Pool`, ``method="linkage"``: the default recipe's
  ``pool``).
- ``latent_kmeans``: KMeans on the replicas' encoder latents (zn, softmax zc) side by side,
  each replica scaled by the square root of its weight; new cells go to the nearest centre
  (``latent_kmeans_kept``: the kept ensemble's replicas only).
- ``latent_leiden``: leiden (resolution bisected to K clusters) on the 15-neighbour graph of the
  same side-by-side latents; new cells go to the nearest cluster mean.

``kept``, ``pooled`` and ``linkage`` label the cells as ``scrna.py`` does (its ``_consensus``,
``_pooled`` and ``_linkage`` entries). Every readout is also given its label-free ``fit``: the
weighted mean adjusted Rand index of its training-cell labels with each replica's (the
quantity a median partition maximises). Labels of truth are used only to score.

    python benchmarks/scrna_readout.py DUMPS/*/auto_*.npz --out benchmarks/results/scrna_readout.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _protocol import aggregate, score, write_json
from scrna import RESULTS, _as_list, append_runs, write_table
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, pairwise_distances_argmin

from scgan_cluster._consensus import coassociation_embedding, consensus, vote
from scgan_cluster._leiden import leiden_latent_k
from scgan_cluster.model import Pool, replica_weights
from scgan_cluster.recipes import RECIPES

SPLITS = ("train", "val", "test")
Fit = dict[str, dict[str, np.ndarray]]  # split -> {"labels": (n, R), "latent": (n, R, d)}


def per_split(scores: dict[str, dict[str, float]]) -> str:
    """``train 0.812/0.743  val ...``: NMI/ARI of each split, as the readout prints them."""
    return "  ".join(f"{s} {scores[s]['nmi']:.3f}/{scores[s]['ari']:.3f}" for s in SPLITS)


def load_fit(
    path: Path, n_candidates: int | None = None
) -> tuple[Fit, Fit, dict[str, np.ndarray], int]:
    """A dump's kept ensemble, all its ensembles together, the truth per split, and K.

    ``n_candidates``: read only the first that many ensembles (the kept one is then the one
    of them whose replicas agree most, as the fit would have chosen among them).
    """
    z = np.load(path)
    chosen = int(z["chosen"])
    n_cand = len(z["agreement"])
    if n_candidates is not None and n_candidates < n_cand:
        if n_candidates < 1:
            raise ValueError(f"n_candidates must be at least 1, got {n_candidates}")
        n_cand = n_candidates
        chosen = int(np.argmax(z["agreement"][:n_cand]))
    kept = {
        s: {"labels": z[f"labels_{chosen}_{s}"], "latent": z[f"latent_{chosen}_{s}"]}
        for s in SPLITS
    }
    both = {
        s: {
            "labels": np.concatenate([z[f"labels_{c}_{s}"] for c in range(n_cand)], axis=1),
            "latent": np.concatenate([z[f"latent_{c}_{s}"] for c in range(n_cand)], axis=1),
        }
        for s in SPLITS
    }
    truth = {s: z[f"truth_{s}"] for s in SPLITS}
    # a dump without n_clusters was trained with K = the labelled classes
    k = int(z["n_clusters"]) if "n_clusters" in z.files else len(np.unique(truth["train"]))
    return kept, both, truth, k


def fit_seed(path: Path) -> int:
    """The ``random_state`` of a dump's fit (recorded, or the ``_<seed>.npz`` of its name)."""
    z = np.load(path)
    if "random_state" in z.files:
        return int(z["random_state"])
    return int(path.stem.rsplit("_", 1)[1])


def _weights(runs: np.ndarray) -> np.ndarray:
    """Each replica's vote: its agreement with the others (as the recipes' pools weigh it)."""
    return replica_weights(runs)[1]


def _onehot(fit: Fit, k: int) -> dict[str, np.ndarray]:
    """Per split, the replicas' weighted one-hot labels side by side (co-association embedding)."""
    w = _weights(fit["train"]["labels"])
    return {s: coassociation_embedding(fit[s]["labels"], k, w) for s in SPLITS}


def _latents(fit: Fit) -> dict[str, np.ndarray]:
    """Per split, the replicas' latents side by side, each scaled by sqrt of its weight share."""
    w = _weights(fit["train"]["labels"])
    scale = np.sqrt(w / w.sum())[None, :, None]
    return {s: (fit[s]["latent"] * scale).reshape(len(fit[s]["latent"]), -1) for s in SPLITS}


def readout_kept(fit: Fit, k: int, seed: int, random_state: int) -> dict[str, np.ndarray]:
    """The unweighted matched vote of one ensemble, as :class:`GANEnsemble` labels cells."""
    runs = fit["train"]["labels"].astype(np.int64)
    labels, _, maps, _ = consensus(runs, k)
    out = {"train": labels}
    for s in SPLITS[1:]:
        out[s] = vote(fit[s]["labels"].astype(np.int64), maps, k).argmax(axis=1)
    return out


def readout_pool(fit: Fit, k: int, method: str, random_state: int) -> dict[str, np.ndarray]:
    """Every replica pooled by :class:`scgan_cluster.model.Pool` (fitted on the training
    cells' labels, each cell labelled by its largest share), as a recipe's ``pool``."""
    runs = fit["train"]["labels"].astype(np.int64)
    pool = Pool.fit(
        runs,
        k,
        _weights(runs),
        method=method,
        max_cells=RECIPES["lognorm"].pool_max_cells,
        random_state=random_state,
    )
    return {s: pool.predict(fit[s]["labels"].astype(np.int64)) for s in SPLITS}


def readout_onehot_kmeans(fit: Fit, k: int, seed: int, random_state: int) -> dict[str, np.ndarray]:
    x = _onehot(fit, k)
    km = KMeans(k, n_init=10, random_state=seed).fit(x["train"])
    return {"train": km.labels_} | {s: km.predict(x[s]) for s in SPLITS[1:]}


def readout_pooled_refined(fit: Fit, k: int, seed: int, random_state: int) -> dict[str, np.ndarray]:
    x = _onehot(fit, k)
    start = readout_pool(fit, k, "vote", random_state)["train"]
    centres = np.stack([x["train"][start == c].mean(axis=0) for c in np.unique(start)])
    km = KMeans(len(centres), init=centres, n_init=1).fit(x["train"])
    return {"train": km.labels_} | {s: km.predict(x[s]) for s in SPLITS[1:]}


def readout_latent_kmeans(fit: Fit, k: int, seed: int, random_state: int) -> dict[str, np.ndarray]:
    x = _latents(fit)
    km = KMeans(k, n_init=10, random_state=seed).fit(x["train"].astype(np.float64))
    return {"train": km.labels_} | {
        s: pairwise_distances_argmin(x[s], km.cluster_centers_) for s in SPLITS[1:]
    }


def readout_latent_leiden(fit: Fit, k: int, seed: int, random_state: int) -> dict[str, np.ndarray]:
    x = _latents(fit)
    labels = leiden_latent_k(x["train"], k, seed)
    means = np.stack([x["train"][labels == c].mean(axis=0) for c in range(labels.max() + 1)])
    return {"train": labels} | {s: pairwise_distances_argmin(x[s], means) for s in SPLITS[1:]}


# name -> (the replicas it reads: "kept" or "both"; fn(fit, K, KMeans seed, the fit's seed))
READOUTS: dict[str, tuple[str, Callable]] = {
    "kept": ("kept", readout_kept),
    "pooled": ("both", lambda f, k, seed, rs: readout_pool(f, k, "vote", rs)),
    "onehot_kmeans": ("both", readout_onehot_kmeans),
    "pooled_refined": ("both", readout_pooled_refined),
    "linkage": ("both", lambda f, k, seed, rs: readout_pool(f, k, "linkage", rs)),
    "latent_kmeans": ("both", readout_latent_kmeans),
    "latent_kmeans_kept": ("kept", readout_latent_kmeans),
    "latent_leiden": ("both", readout_latent_leiden),
}


def replica_fit(labels: np.ndarray, runs: np.ndarray) -> float:
    """Label-free: weighted mean ARI of ``labels`` with each replica (weights: agreement)."""
    w = _weights(runs)
    return float(
        np.average(
            [adjusted_rand_score(runs[:, r], labels) for r in range(runs.shape[1])], weights=w
        )
    )


def score_dump(
    path: Path, readouts: list[str], seed: int = 0, n_candidates: int | None = None
) -> dict:
    """Every readout of one dump scored on the three splits, plus ``picked``: per fit, the
    readout with the highest label-free ``fit`` (the first on a tie). ``n_candidates``: as
    :func:`load_fit`."""
    kept, both, truth, k = load_fit(path, n_candidates)
    random_state = fit_seed(path)
    result = {"dump": path.name, "n_clusters": k, "readouts": {}}
    for name in readouts:
        which, fn = READOUTS[name]
        labels = fn(kept if which == "kept" else both, k, seed, random_state)
        result["readouts"][name] = {
            "fit": round(replica_fit(labels["train"], both["train"]["labels"]), 4),
            **{s: score(truth[s], labels[s]) for s in SPLITS},
        }
    scored = result["readouts"]
    best = max(scored, key=lambda name: scored[name]["fit"])
    scored["picked"] = {**scored[best], "name": best}
    return result


def differences(results: list[dict], against: str = "pooled") -> dict[str, dict]:
    """Per readout: mean difference from ``against`` (NMI, ARI per split) and fits it is higher in."""
    table = {}
    for name in results[0]["readouts"]:
        diff = {
            (s, m): [r["readouts"][name][s][m] - r["readouts"][against][s][m] for r in results]
            for s in SPLITS
            for m in ("nmi", "ari")
        }
        table[name] = {
            f"{s}_{m}": (round(float(np.mean(d)), 4), int(np.sum(np.asarray(d) > 0)))
            for (s, m), d in diff.items()
        }
    return table


def record(result: dict, scored: dict, variant: str, seed: int, readout: str) -> dict:
    """``result`` (a ``scrna.py`` result file) with ``readout``'s scores of the fit of ``variant``
    with first seed ``seed`` added as a run of the entry ``clustergan_<variant>_<readout>``.

    The run copies the fit's run in ``clustergan_<variant>_pooled`` (seed, device, seconds; the
    fit must be in the file already) with the readout's scores; the entry is created with that
    entry's settings, or the run appended (its seed must be new there).
    """
    methods = {m["method"]: m for m in result["methods"]}
    source = methods.get(f"clustergan_{variant}_pooled")
    seeds = [] if source is None else [r["seed"] for r in source["runs"]]
    if seed not in seeds:
        raise ValueError(
            f"the fit of {variant!r} with seed {seed} is not in the result file: merge it first"
        )
    fit = seeds.index(seed)
    run = {**source["runs"][fit], **{s: scored[s] for s in SPLITS}}
    name = f"clustergan_{variant}_{readout}"
    info = {
        k: source[k] for k in ("iterations", "replicas_per_fit", "params", "machine") if k in source
    }
    seconds = _as_list(source.get("fit_seconds_all_replicas"))
    new = {
        "method": name,
        **aggregate([run]),
        **info,
        "fit_seconds_all_replicas": seconds[fit : fit + 1],
    }
    if name in methods:
        new = append_runs(methods[name], new)
    rest = [m for m in result["methods"] if m["method"] != name]
    at = next(i for i, m in enumerate(rest) if m["method"] == source["method"]) + 1
    return {**result, "methods": [*rest[:at], new, *rest[at:]]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", nargs="+", type=Path, help="npz files of scrna.py --dump")
    parser.add_argument("--readouts", nargs="*", choices=sorted(READOUTS), default=list(READOUTS))
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    parser.add_argument(
        "--record",
        metavar="READOUT",
        help="add this readout's scores of each dump to its result file in --results as the "
        "entry clustergan_<variant>_<READOUT> (fits whose seed is there already are skipped)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--against",
        default="pooled",
        choices=sorted(READOUTS),
        help="the readout the others are compared to (default: pooled, the weighted vote)",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        metavar="N",
        help="read only each fit's first N ensembles (e.g. 2: the default's two of a fit that "
        "trained a third)",
    )
    parser.add_argument(
        "--against-first",
        type=int,
        metavar="N",
        help="compare with the --against readout of each fit's first N ensembles only (e.g. "
        "2: a fit that trained a third ensemble, with it against without it)",
    )
    args = parser.parse_args(argv)
    if args.record is not None and args.record not in args.readouts:
        parser.error(f"--record {args.record} needs that readout in --readouts")
    if args.record is not None and args.candidates is not None:
        parser.error("--record scores every ensemble of a fit, as scrna.py does: drop --candidates")
    if args.against not in args.readouts:
        parser.error(f"--readouts must include {args.against} (--against)")
    if args.against_first is not None and args.record is not None:
        parser.error("--record and --against-first: record from a run without --against-first")
    against = (
        args.against if args.against_first is None else f"{args.against}_first{args.against_first}"
    )
    results = []
    for path in args.dumps:
        res = score_dump(path, args.readouts, n_candidates=args.candidates)
        res["dataset"] = path.parent.name
        if args.against_first is not None:
            fewer = score_dump(path, [args.against], n_candidates=args.against_first)
            res["readouts"][against] = fewer["readouts"][args.against]
        results.append(res)
        print(f"{path.parent.name}/{path.name} (K={res['n_clusters']})")
        for name, r in res["readouts"].items():
            print(
                f"  {name:<20} fit {r['fit']:.3f}  "
                + per_split(r)
                + (f"  ({r['name']})" if "name" in r else "")
            )
    table = differences(results, against=against)
    print(f"\nmean difference from {against} over {len(results)} fits (fits higher), NMI / ARI:")
    for name, row in table.items():
        print(
            f"  {name:<20} "
            + "  ".join(
                f"{s} {row[s + '_nmi'][0]:+.3f} ({row[s + '_nmi'][1]}) / "
                f"{row[s + '_ari'][0]:+.3f} ({row[s + '_ari'][1]})"
                for s in SPLITS
            )
        )
    if args.record is not None:
        for path, res in zip(args.dumps, results, strict=True):
            variant, seed = path.stem.rsplit("_", 1)
            target = args.results / f"scrna_{res['dataset']}.json"
            result = json.loads(target.read_text())
            entry = {m["method"]: m for m in result["methods"]}.get(
                f"clustergan_{variant}_{args.record}"
            )
            if entry is not None and int(seed) in [r["seed"] for r in entry["runs"]]:
                print(f"{target}: seed {seed} already has {args.record}; skipped")
                continue
            result = record(result, res["readouts"][args.record], variant, int(seed), args.record)
            write_json(target, result)
            write_table(result, target.with_suffix(".md"))
            print(f"{target}: {args.record} of the fit with seed {seed} recorded")
    if args.out is not None:
        write_json(
            args.out,
            {
                "script": "benchmarks/scrna_readout.py",
                "fits": results,
                f"against_{against}": table,
            },
        )


if __name__ == "__main__":
    main()
