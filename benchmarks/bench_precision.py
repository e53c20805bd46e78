"""Accuracy check of ``precision="bf16"``: the same seeds trained in float32 and in bfloat16.

On the sorted PBMC data (the 8 populations of 10x_73k, 3,238 cells, paper preprocessing),
``ClusterGAN(8, n_runs=R, random_state=0, precision=P)`` trains R replicas (seeds 0..R-1) in one
vectorized pass; every replica is scored on all cells (labels only for scoring) and its loss
history is kept. Run once per precision (each run is a few minutes on 2 cores), then compare:

    python benchmarks/bench_precision.py --precision fp32 --iters 2000 --runs 5
    python benchmarks/bench_precision.py --precision bf16 --iters 2000 --runs 5
    python benchmarks/bench_precision.py --compare

The runs write ``benchmarks/results/bench_precision_{fp32,bf16}.json``; ``--compare`` writes
``bench_precision.json`` with mean +- sd of ACC / NMI / ARI / purity per precision, the
per-seed differences, and the loss curves' agreement: for each loss, the mean over seeds of the
absolute fp32 - bf16 difference of the last quarter of the curve, next to the spread of that
value across seeds in fp32 (the noise level).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _protocol import DEFAULT_DATA, RESULTS, machine, write_json

import scgan_cluster as scg

KEYS = ("acc", "nmi", "ari", "purity")
CURVES = ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "zn_loss", "zc_loss")


def run(precision: str, iters: int, n_runs: int, data_dir) -> dict:
    adata = scg.datasets.zheng2017_sorted(data_dir, populations="10x_73k")
    truth = adata.obs["label"].to_numpy()
    prepared = scg.pp.preprocess(adata, 720, copy=True)
    model = scg.ClusterGAN(
        8, max_iter=iters, n_runs=n_runs, random_state=0, device="cpu", precision=precision
    )
    start = time.perf_counter()
    model.fit(prepared)
    seconds = time.perf_counter() - start
    runs = []
    for r, rep in enumerate(model.replicas):
        scores = scg.metrics.cluster_metrics(truth, model.labels_runs_[:, r])
        runs.append(
            {
                "seed": r,
                **{k: float(v) for k, v in scores.items()},
                "history": {k: rep.history_[k] for k in ("iteration", *CURVES)},
            }
        )
        print(f"  {precision} seed {r}: " + ", ".join(f"{k} {scores[k]:.3f}" for k in KEYS))
    return {
        "precision": precision,
        "dataset": "Zheng 2017 sorted PBMC, 8 populations of 10x_73k (3,238 cells), all cells",
        "max_iter": iters,
        "n_runs": n_runs,
        "fit_seconds": round(seconds, 1),
        "machine": machine(),
        "runs": runs,
    }


def compare() -> dict:
    res = {
        p: json.loads((RESULTS / f"bench_precision_{p}.json").read_text()) for p in ("fp32", "bf16")
    }
    out: dict = {"script": "benchmarks/bench_precision.py", "machine": res["fp32"]["machine"]}
    for p, r in res.items():
        arr = np.array([[run[k] for k in KEYS] for run in r["runs"]])
        out[p] = {
            "fit_seconds": r["fit_seconds"],
            "mean": dict(zip(KEYS, np.round(arr.mean(0), 4).tolist(), strict=True)),
            "sd": dict(zip(KEYS, np.round(arr.std(0, ddof=1), 4).tolist(), strict=True)),
            "per_seed": [{k: round(run[k], 4) for k in KEYS} for run in r["runs"]],
        }
    curves = {}
    for key in CURVES:
        tails = {}
        for p, r in res.items():
            tails[p] = np.array(
                [
                    np.mean(run["history"][key][-len(run["history"][key]) // 4 :])
                    for run in r["runs"]
                ]
            )
        curves[key] = {
            "mean_abs_diff_fp32_bf16": round(
                float(np.mean(np.abs(tails["fp32"] - tails["bf16"]))), 4
            ),
            "sd_across_seeds_fp32": round(float(np.std(tails["fp32"], ddof=1)), 4),
            "mean_fp32": round(float(tails["fp32"].mean()), 4),
            "mean_bf16": round(float(tails["bf16"].mean()), 4),
        }
    out["last_quarter_loss_means"] = curves
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"))
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", default=DEFAULT_DATA)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    scg.settings.progress_bar = False
    if args.compare:
        out = compare()
        write_json(RESULTS / "bench_precision.json", out)
        for p in ("fp32", "bf16"):
            s = out[p]
            print(
                f"{p}: fit {s['fit_seconds']} s  "
                + "  ".join(f"{k} {s['mean'][k]:.3f}+-{s['sd'][k]:.3f}" for k in KEYS)
            )
        for key, v in out["last_quarter_loss_means"].items():
            print(f"  {key:<17} {v}")
        return
    if args.precision is None:
        parser.error("give --precision fp32|bf16, or --compare")
    result = run(args.precision, args.iters, args.runs, args.data_dir)
    write_json(RESULTS / f"bench_precision_{args.precision}.json", result)


if __name__ == "__main__":
    main()
