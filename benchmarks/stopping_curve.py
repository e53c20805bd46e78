"""Label-free stopping rules, read along training: every ensemble of a recipe trained to a cap.

Each ensemble of a ``benchmarks/scrna.py`` recipe (``--clustergan`` variant) is trained on the
training cells for ``--cap`` generator iterations (instead of its own budget; everything else is
the recipe's, including the learned prior's schedule, which is set by the iterations trained).
Every ``--every`` iterations the replicas are read as they stand
(:meth:`scgan_cluster.model.GANEnsemble.snapshot`): their labels of the training cells (the
recipe's ``assign`` rule) and of the validation cells (``predict``), and the critic's
Wasserstein estimate. Three label-free stopping rules (:data:`RULES`) are applied to these
records afterwards; each gives every ensemble a stopping iteration, and the replicas of all
ensembles at their stops are pooled as the recipe pools them (co-association linkage) and
scored on the training and validation cells. The pooled labels at one common iteration for all
ensembles (the curve) show what the budget itself does. The test cells are never read.

    python benchmarks/stopping_curve.py --dataset pbmc4k --data-dir ../shared/data --seed0 25

writes ``stopping_<dataset>_<seed0>.json`` under ``--out`` (default
``benchmarks/results/stopping``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import scanpy as sc
from _protocol import RESULTS, machine, paper_split, score, write_json
from scrna import CLUSTERGAN_VARIANTS, DATASETS, DEFAULT_DATA
from sklearn.metrics import adjusted_rand_score

import scgan_cluster as scg
from scgan_cluster._consensus import agreement
from scgan_cluster.adapters import prepare_fit
from scgan_cluster.model import GANEnsemble, Pool
from scgan_cluster.model._pool import replica_weights

#: the stopping rules: each reads one ensemble's records, never the labels of the cells
RULE_START = 400  # no rule stops before this iteration
RULE_LAG = 200  # iterations between the two records a rule compares
RULES = {
    # every replica's labels of the training cells changed little over the last RULE_LAG
    # iterations: mean over replicas of ARI(labels now, labels RULE_LAG earlier) >= 0.90
    "stable": "mean ARI of each replica with itself 200 iterations earlier >= 0.90",
    # the replicas stopped converging on one another: their mean pairwise ARI rose by at most
    # 0.01 over the last RULE_LAG iterations
    "agree": "mean pairwise ARI between replicas up by <= 0.01 over 200 iterations",
    # the critic's Wasserstein estimate levelled off: its mean over the last 100 iterations
    # within 5% of its mean over the 100 iterations RULE_LAG earlier (mean over replicas)
    "wasserstein": "Wasserstein estimate's 100-iteration mean within 5% of its value 200 earlier",
}


def self_agreement(now: np.ndarray, then: np.ndarray) -> float:
    """Mean over replicas of the ARI between a replica's labels at two readings (``(n, R)`` each)."""
    return float(np.mean([adjusted_rand_score(now[:, r], then[:, r]) for r in range(now.shape[1])]))


def rule_stop(rule: str, record: dict[str, Any], cap: int) -> int:
    """The iteration at which ``rule`` stops one ensemble whose records are ``record``."""
    its = record["iterations"]
    at = {it: i for i, it in enumerate(its)}
    for i, it in enumerate(its):
        if it < RULE_START or it - RULE_LAG not in at:
            continue
        j = at[it - RULE_LAG]
        if rule == "stable":
            if self_agreement(record["train"][i], record["train"][j]) >= 0.90:
                return it
        elif rule == "agree":
            if record["agreement"][i] - record["agreement"][j] <= 0.01:
                return it
        elif rule == "wasserstein":
            now, then = record["wasserstein"][i], record["wasserstein"][j]
            if abs(now - then) <= 0.05 * abs(then):
                return it
        else:
            raise ValueError(f"unknown rule {rule!r}")
    return cap


def follow(
    member: GANEnsemble, prepared, val, every: int, flavor: str
) -> tuple[dict[str, Any], float]:
    """Train ``member`` on ``prepared``, keeping its replicas' labels every ``every`` iterations."""
    record: dict[str, Any] = {
        "iterations": [],
        "train": [],
        "val": [],
        "agreement": [],
        "wasserstein": [],
    }
    reading = [0.0]

    def on_record(model: GANEnsemble, it: int) -> None:
        if it % every:
            return
        start = time.perf_counter()
        snap = model.snapshot()
        runs = snap.labels_runs_
        record["iterations"].append(int(it))
        record["train"].append(runs.astype(np.int16))
        record["val"].append(
            np.stack([rep.predict(val) for rep in snap.replicas], axis=1).astype(np.int16)
        )
        record["agreement"].append(float(np.mean(agreement(runs))))
        reading[0] += time.perf_counter() - start

    start = time.perf_counter()
    member.fit(prepared, n_top_genes=prepared.x.shape[1], flavor=flavor, callback=on_record)
    train_seconds = time.perf_counter() - start - reading[0]
    # the critic's estimate per record of the loop, averaged over the replicas
    hist = [rep.history_ for rep in member.replicas]
    loop_its = np.asarray(hist[0]["iteration"])
    w = np.mean([h["wasserstein"] for h in hist], axis=0)
    for it in record["iterations"]:
        window = (loop_its > it - every) & (loop_its <= it)
        record["wasserstein"].append(float(w[window].mean()))
    return record, train_seconds


def pooled(
    records: list[dict[str, Any]], stops: list[int], k: int, seed: int, truth: dict
) -> dict[str, dict[str, float]]:
    """Pool every ensemble's replicas at its stop (co-association linkage) and score them."""
    picks = [rec["iterations"].index(s) for rec, s in zip(records, stops, strict=True)]
    train = np.hstack([rec["train"][i] for rec, i in zip(records, picks, strict=True)])
    val = np.hstack([rec["val"][i] for rec, i in zip(records, picks, strict=True)])
    _, weights = replica_weights(train)
    pool = Pool.fit(train.astype(np.int64), k, weights, method="linkage", random_state=seed)
    return {
        "train": score(truth["train"], pool.predict(train.astype(np.int64))),
        "val": score(truth["val"], pool.predict(val.astype(np.int64))),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--clustergan", choices=sorted(CLUSTERGAN_VARIANTS), default="fast_genes_lr5e4"
    )
    parser.add_argument("--seed0", type=int, default=0, help="the fit's random_state")
    parser.add_argument("--cap", type=int, default=2000, help="iterations every ensemble trains")
    parser.add_argument("--every", type=int, default=100, help="iterations between two readings")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "stopping")
    args = parser.parse_args(argv)
    if args.cap % args.every or args.cap // args.every > 100:
        parser.error("--cap must be a multiple of --every, and at most 100 readings")
    scg.settings.progress_bar = False
    sc.settings.verbosity = 0
    loader, description = DATASETS[args.dataset]
    adata = loader(args.data_dir)
    truth_all = np.asarray(adata.obs["label"].astype(str))
    k = len(np.unique(truth_all))
    split = paper_split(adata.n_obs, seed=args.split_seed)
    train, val = adata[split["train"]].copy(), adata[split["val"]].copy()
    truth = {s: truth_all[split[s]] for s in ("train", "val")}
    recipe = CLUSTERGAN_VARIANTS[args.clustergan]
    n_top_genes = min(recipe.n_top_genes, adata.n_vars)
    prepared = prepare_fit(train, n_top_genes=n_top_genes, flavor=recipe.preprocessing)
    print(f"{args.dataset}: {adata.n_obs} cells, K={k}; {args.clustergan} to {args.cap} iterations")

    records, seconds, budgets = [], {}, []
    for ensemble in recipe.ensembles:
        settings = recipe.ensemble_settings(ensemble, k)
        budgets.append(settings["max_iter"])
        settings["max_iter"] = args.cap
        if settings["n_pcs"] is not None:
            settings["n_pcs"] = int(min(settings["n_pcs"], n_top_genes, prepared.x.shape[0] - 1))
        member = GANEnsemble(k, random_state=args.seed0, **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec, secs = follow(member, prepared, val, args.every, recipe.preprocessing)
        records.append(rec)
        seconds[ensemble.name] = round(secs, 1)
        print(f"  {ensemble.name}: {secs:.0f} s of training")

    its = records[0]["iterations"]
    curve = []
    for it in its:
        scores = pooled(records, [it] * len(records), k, args.seed0, truth)
        curve.append({"iteration": it, **scores})
        print(
            f"  {it:5d}: train {scores['train']['nmi']:.3f} / {scores['train']['ari']:.3f}  "
            f"val {scores['val']['nmi']:.3f} / {scores['val']['ari']:.3f}  agreement "
            + " ".join(f"{rec['agreement'][its.index(it)]:.3f}" for rec in records)
        )
    rules = {}
    for rule, text in RULES.items():
        stops = [rule_stop(rule, rec, args.cap) for rec in records]
        rules[rule] = {"rule": text, "stops": stops, **pooled(records, stops, k, args.seed0, truth)}
        print(f"  rule {rule}: stops {stops}, {rules[rule]['train']} {rules[rule]['val']}")
    fixed = [min(b, args.cap) for b in budgets]
    result = {
        "dataset": args.dataset,
        "description": description,
        "variant": args.clustergan,
        "recipe": {e.name: asdict(e) for e in recipe.ensembles},
        "random_state": args.seed0,
        "n_clusters": k,
        "cap": args.cap,
        "every": args.every,
        "budgets": dict(zip([e.name for e in recipe.ensembles], budgets, strict=True)),
        "train_seconds": seconds,
        "machine": machine(),
        "command": "python benchmarks/stopping_curve.py "
        f"--dataset {args.dataset} --data-dir ../shared/data --clustergan {args.clustergan} "
        f"--seed0 {args.seed0} --cap {args.cap} --every {args.every}",
        "ensembles": {
            e.name: {
                "agreement": [round(a, 4) for a in rec["agreement"]],
                "wasserstein": [round(w, 5) for w in rec["wasserstein"]],
                "stability": [None]
                + [
                    round(self_agreement(now, then), 4)
                    for now, then in zip(rec["train"][1:], rec["train"][:-1], strict=True)
                ],
            }
            for e, rec in zip(recipe.ensembles, records, strict=True)
        },
        "iterations": its,
        "curve": curve,
        "fixed_budget": {"stops": fixed, **pooled(records, fixed, k, args.seed0, truth)},
        "rules": rules,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"stopping_{args.dataset}_{args.seed0}.json", result)


if __name__ == "__main__":
    main()
