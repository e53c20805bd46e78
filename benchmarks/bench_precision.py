"""Accuracy check of ``precision="bf16"``: the same seeds trained in float32 and in bfloat16.

Two datasets (``--dataset``):

* ``pbmc`` (default): the sorted PBMC data (the 8 populations of 10x_73k, 3,238 cells, paper
  preprocessing), ``GANEnsemble(8, n_runs=R, random_state=0, precision=P)``: R replicas (seeds
  0..R-1) trained in one vectorized pass (the MLP's hand-written steps); ``--compile`` trains
  with ``compile=True`` as well;
* ``mnist``: the staged MNIST images (the 10,000 of the test set), the paper's MNIST conv
  networks and settings (``_baselines.fit_clustergan``, KMeans on the encoder latent), one model
  per seed (conv networks train one model at a time; bf16 runs them under autocast); the seeds
  can be split over several calls with ``--first-seed`` (each call adds its seeds to the file).

Every model is scored on all samples (labels only for scoring) and its loss history is kept.
Run once per configuration (each run is a few minutes on 2 cores), then compare two of them:

    python benchmarks/bench_precision.py --precision fp32 --iters 2000 --runs 5
    python benchmarks/bench_precision.py --precision bf16 --iters 2000 --runs 5
    python benchmarks/bench_precision.py --compare                       # fp32 vs bf16
    python benchmarks/bench_precision.py --precision bf16 --compile --iters 2000 --runs 5
    python benchmarks/bench_precision.py --compare fp32 bf16_compile
    python benchmarks/bench_precision.py --dataset mnist --precision fp32 --iters 300 --runs 1
    python benchmarks/bench_precision.py --dataset mnist --precision fp32 --iters 300 --runs 1 --first-seed 1
    python benchmarks/bench_precision.py --dataset mnist --precision bf16 --iters 300 --runs 2
    python benchmarks/bench_precision.py --compare mnist_fp32 mnist_bf16

A run writes ``benchmarks/results/bench_precision_{name}.json``, where ``name`` is the
precision, prefixed by ``mnist_`` for MNIST and suffixed by ``_compile`` with ``--compile``.
``--compare A B`` writes ``bench_precision.json`` for the pair ``fp32 bf16`` and
``bench_precision_A_vs_B.json`` otherwise: mean +- sd of ACC / NMI / ARI / purity of both, the
per-seed values, and the loss curves' agreement: for each loss, the mean over seeds of the
absolute A - B difference of the last quarter of the curve, next to the spread of that value
across seeds in A (the noise level).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _baselines import fit_clustergan
from _data import load
from _protocol import DEFAULT_DATA, RESULTS, machine, write_json

import scgan_cluster as scg
from scgan_cluster.model import GANEnsemble

KEYS = ("acc", "nmi", "ari", "purity")
CURVES = ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "zn_loss", "zc_loss")


def _record(seed: int, truth: np.ndarray, labels: np.ndarray, history: dict) -> dict:
    scores = scg.metrics.cluster_metrics(truth, labels)
    return {
        "seed": seed,
        **{k: float(v) for k, v in scores.items()},
        "history": {k: history[k] for k in ("iteration", *CURVES)},
    }


def run_pbmc(precision: str, iters: int, n_runs: int, data_dir, compile: bool) -> dict:
    adata = scg.datasets.zheng2017_sorted(data_dir, populations="10x_73k")
    truth = adata.obs["label"].to_numpy()
    prepared = scg.pp.preprocess(adata, 720, copy=True)
    model = GANEnsemble(
        8,
        max_iter=iters,
        n_runs=n_runs,
        random_state=0,
        device="cpu",
        precision=precision,
        compile=compile,
    )
    start = time.perf_counter()
    model.fit(prepared)
    seconds = time.perf_counter() - start
    runs = [
        _record(r, truth, model.labels_runs_[:, r], rep.history_)
        for r, rep in enumerate(model.replicas)
    ]
    return {
        "dataset": "Zheng 2017 sorted PBMC, 8 populations of 10x_73k (3,238 cells), all cells",
        "fit_seconds": round(seconds, 1),
        "runs": runs,
    }


def run_mnist(precision: str, iters: int, seed: int, data_dir) -> dict:
    data = load("mnist", Path(data_dir))
    start = time.perf_counter()
    model = fit_clustergan(data, data.x, max_iter=iters, seed=seed, precision=precision)
    seconds = time.perf_counter() - start
    return {
        "dataset": f"MNIST: {data.description}; the paper's MNIST networks, KMeans assignment",
        "fit_seconds": round(seconds, 1),
        "runs": [_record(seed, data.y, model.labels_, model.history_)],
    }


def compare(a: str, b: str) -> dict:
    res = {p: json.loads((RESULTS / f"bench_precision_{p}.json").read_text()) for p in (a, b)}
    out: dict = {
        "script": "benchmarks/bench_precision.py",
        "pair": [a, b],
        "machine": res[a]["machine"],
    }
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
            f"mean_abs_diff_{a}_{b}": round(float(np.mean(np.abs(tails[a] - tails[b]))), 4),
            f"sd_across_seeds_{a}": round(float(np.std(tails[a], ddof=1)), 4),
            f"mean_{a}": round(float(tails[a].mean()), 4),
            f"mean_{b}": round(float(tails[b].mean()), 4),
        }
    out["last_quarter_loss_means"] = curves
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("pbmc", "mnist"), default="pbmc")
    parser.add_argument("--precision", choices=("fp32", "bf16"))
    parser.add_argument("--compile", action="store_true", help="compile=True (pbmc only)")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="mnist: train seeds first-seed.. (> 0: added to the existing runs of that file)",
    )
    parser.add_argument("--data-dir", default=DEFAULT_DATA)
    parser.add_argument(
        "--compare", nargs="*", metavar="NAME", help="compare two runs (default: fp32 bf16)"
    )
    args = parser.parse_args()
    scg.settings.progress_bar = False
    if args.compare is not None:
        pair = args.compare or ["fp32", "bf16"]
        if len(pair) != 2:
            parser.error("--compare takes two run names, e.g. --compare fp32 bf16_compile")
        a, b = pair
        out = compare(a, b)
        name = (
            "bench_precision.json"
            if pair == ["fp32", "bf16"]
            else f"bench_precision_{a}_vs_{b}.json"
        )
        write_json(RESULTS / name, out)
        for p in pair:
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
    if args.compile and args.dataset != "pbmc":
        parser.error("--compile needs the fully connected networks (--dataset pbmc)")
    name = ("mnist_" if args.dataset == "mnist" else "") + args.precision
    name += "_compile" if args.compile else ""
    out = RESULTS / f"bench_precision_{name}.json"
    header = {
        "precision": args.precision,
        "compile": args.compile,
        "max_iter": args.iters,
        "machine": machine(),
    }
    if args.dataset == "pbmc":
        result = run_pbmc(args.precision, args.iters, args.runs, args.data_dir, args.compile)
        result = {**header, "n_runs": args.runs, **result}
        _print_runs(name, result["runs"])
        write_json(out, result)
        return
    # mnist: one model per seed, the file rewritten after each (a cut-off run keeps its seeds)
    result = {**header, "n_runs": 0, "fit_seconds": 0.0, "runs": []}
    if args.first_seed > 0 and out.exists():
        result = json.loads(out.read_text())
        if result["max_iter"] != args.iters:
            parser.error(f"{out.name} holds runs of {result['max_iter']} iterations")
    for seed in range(args.first_seed, args.first_seed + args.runs):
        one = run_mnist(args.precision, args.iters, seed, args.data_dir)
        _print_runs(name, one["runs"])
        runs = [r for r in result["runs"] if r["seed"] != seed] + one["runs"]
        result.update(
            dataset=one["dataset"],
            runs=sorted(runs, key=lambda r: r["seed"]),
            n_runs=len(runs),
            fit_seconds=round(result["fit_seconds"] + one["fit_seconds"], 1),
        )
        write_json(out, result)


def _print_runs(name: str, runs: list[dict]) -> None:
    for run in runs:
        print(
            f"  {name} seed {run['seed']}: " + ", ".join(f"{k} {run[k]:.3f}" for k in KEYS),
            flush=True,
        )


if __name__ == "__main__":
    main()
