"""Vectorized seed ensembles: cost of R models trained in one pass, and their quality vs R separate runs.

1. Timing (generated data, the paper's 10x MLP: 720 genes, K = 8, zn 30, batch 64, n_critic 5):
   generator iterations of one model vs of an ensemble of R models trained together
   (:func:`scgan_cluster.nn.stack_ensemble` + the package trainer), in float32 and with
   ``precision="bf16"``; the ratio is the wall-time cost of R models relative to one. With more
   than one thread, one model is also timed on one thread (float32): R models on T threads
   cannot cost less than R / T of that, which gives ``ideal_parallel_ratio``, the ratio a
   perfectly parallel ensemble that saves no work would reach.
2. Quality (sorted PBMC, the 8 populations of 10x_73k, 3,238 cells, paper preprocessing):
   ``GANEnsemble(n_runs=R, random_state=0)`` vs R separate ``GANEnsemble(random_state=r)`` fits,
   ``--pbmc-iters`` iterations each; every replica / run is scored on all cells (labels only
   for scoring) and mean +- sd are reported. Replica r follows the same random stream as the
   separate run with seed r, so the two sets should agree in distribution (and run by run up to
   the float rounding that GAN training amplifies).

    python benchmarks/bench_ensemble.py --runs 5 --timing-iters 200 --pbmc-iters 2000
    python benchmarks/bench_ensemble.py --runs 5 --timing-iters 150 --skip-pbmc  # timing only
    python benchmarks/bench_ensemble.py --runs 5 --timing-iters 150 --skip-pbmc --compile
    python benchmarks/bench_ensemble.py --runs 5 --timing-iters 150 --skip-pbmc --threads 1

3. The kernels alone (always, a few seconds): one matrix product of each of the MLP's three
   widest layer shapes against the same product for R replicas in one ``torch.bmm``, in float32
   and bfloat16, with the achieved GFLOP/s. When the R-batched product costs R times one product,
   the CPU's arithmetic is already saturated by one model, and batching replicas cannot bring the
   ensemble below R times one model by more than the per-step overhead it saves.

writes ``benchmarks/results/bench_ensemble.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _protocol import DEFAULT_DATA, RESULTS, machine, write_json

import scgan_cluster as scg
from scgan_cluster import nn as snn
from scgan_cluster import train
from scgan_cluster.adapters import DenseSource
from scgan_cluster.model import GANEnsemble

KEYS = ("acc", "nmi", "ari", "purity")


def _nets(seed: int, n_genes: int = 720):
    g, e, c = snn.build_networks("mlp", n_genes, 30, 8)
    gen = torch.Generator().manual_seed(seed)
    for net in (g, e, c):
        snn.init_normal_(net, 0.02, generator=gen)
    return g, e, c


def time_training(n_runs: int, iters: int, repeats: int = 3, compile: bool = False) -> dict:
    """ms per generator iteration of one model and of R replicas, per precision.

    The four configurations (eight with ``compile``: each also with ``compile=True``, compiled
    in the untimed warm-up) are timed in turn, ``repeats`` times, and the fastest of each kept.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4096, 720, generator=gen) * (torch.rand(4096, 720, generator=gen) > 0.4)
    source = DenseSource(x, torch.device("cpu"))
    prior = snn.MixedPrior(30, 8)

    def run(nets, n_rep, n, precision, compiled):
        train.train_clustergan(
            *nets,
            prior,
            source,
            train.TrainConfig(max_iter=n),
            noise_generator=[torch.Generator().manual_seed(1 + r) for r in range(n_rep)]
            if n_rep > 1
            else torch.Generator().manual_seed(1),
            index_generator=[torch.Generator().manual_seed(2 + r) for r in range(n_rep)]
            if n_rep > 1
            else torch.Generator().manual_seed(2),
            progress=False,
            precision=precision,
            compile=compiled,
        )

    def ms_per_it(nets, n_rep, precision, compiled) -> float:
        """ms per generator iteration over ``iters`` iterations, after an untimed warm-up of 5."""
        run(nets, n_rep, 5, precision, compiled)
        start = time.perf_counter()
        run(nets, n_rep, iters, precision, compiled)
        return round((time.perf_counter() - start) / iters * 1e3, 2)

    variants = [("fp32", False), ("bf16", False)]
    if compile:
        variants += [("fp32", True), ("bf16", True)]
    # (label, precision, compiled); the label keys the results
    variants = [(f"{p}_compile" if c else p, p, c) for p, c in variants]
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for label, precision, compiled in variants:
            for name, n_rep in (("single", 1), ("ensemble", n_runs)):
                if n_rep == 1:
                    nets = _nets(0)
                else:
                    nets = [
                        snn.stack_ensemble([_nets(r)[i] for r in range(n_rep)]) for i in range(3)
                    ]
                ms = ms_per_it(nets, n_rep, precision, compiled)
                times.setdefault(f"{label}_{name}", []).append(ms)
        threads = torch.get_num_threads()
        if threads > 1:  # one model on one thread: what an ideal split of R models over cores costs
            torch.set_num_threads(1)
            try:
                ms = ms_per_it(_nets(0), 1, "fp32", False)
                times.setdefault("fp32_single_1thread", []).append(ms)
            finally:
                torch.set_num_threads(threads)
    print(times, flush=True)
    out: dict = {"all_repeats_ms_per_it": times}
    for label, _, _ in variants:
        single = min(times[f"{label}_single"])
        ens = min(times[f"{label}_ensemble"])
        out[label] = {
            "single_ms_per_it": single,
            "ensemble_ms_per_it": ens,
            "ratio": round(ens / single, 2),
            "per_model_speedup": round(n_runs * single / ens, 2),
        }
    if "fp32_single_1thread" in times:
        # R models on T threads cost at least R / T times one model on one thread; against one
        # model on T threads that is this ratio, above R / T whenever one model gains from T threads
        one_thread = min(times["fp32_single_1thread"])
        threads = torch.get_num_threads()
        out["fp32"]["single_1thread_ms_per_it"] = one_thread
        out["fp32"]["ideal_parallel_ratio"] = round(
            n_runs * one_thread / threads / out["fp32"]["single_ms_per_it"], 2
        )
    out["bf16_ensemble_vs_fp32_single"] = round(
        out["bf16"]["ensemble_ms_per_it"] / out["fp32"]["single_ms_per_it"], 2
    )
    # the honest comparison: each ensemble against the fastest single-model configuration
    fastest = min(out[label]["single_ms_per_it"] for label, _, _ in variants)
    out["fastest_single_ms_per_it"] = fastest
    for label, _, _ in variants:
        out[label]["ratio_vs_fastest_single"] = round(out[label]["ensemble_ms_per_it"] / fastest, 2)
    return out


# (rows, in, out) of the widest products of one step of the 10x MLP: a critic / encoder first
# layer on a batch, the hidden layer on the critic's [real, fake] batch, the generator's output
MATMUL_SHAPES = ((64, 720, 256), (128, 256, 256), (64, 256, 720))


def matmul_row(shape: tuple[int, int, int], one: float, batched: float) -> dict:
    """One row of :func:`time_matmuls`: the product ``(b, i) @ (i, o)`` took ``one`` seconds
    alone and ``batched`` seconds for R replicas in one ``bmm``; ``one_gflops`` counts its
    ``2 b i o`` floating-point operations."""
    b, i, o = shape
    return {
        "shape": [b, i, o],
        "one_us": round(one * 1e6, 1),
        "batched_us": round(batched * 1e6, 1),
        "ratio": round(batched / one, 2),
        "one_gflops": round(2 * b * i * o / one / 1e9, 1),
    }


def time_matmuls(n_runs: int, repeats: int = 50) -> dict:
    """Fastest time of one product vs the R-batched product, per layer shape and dtype."""

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            times.append((time.perf_counter() - start) / repeats)
        return min(times)

    gen = torch.Generator().manual_seed(0)
    out: dict = {}
    for dtype in (torch.float32, torch.bfloat16):
        rows, one_total, batched_total = [], 0.0, 0.0
        for b, i, o in MATMUL_SHAPES:
            a = torch.randn(n_runs, b, i, generator=gen).to(dtype)
            w = torch.randn(n_runs, i, o, generator=gen).to(dtype)
            a0, w0 = a[0].contiguous(), w[0].contiguous()
            one = best(lambda a0=a0, w0=w0: torch.mm(a0, w0))
            batched = best(lambda a=a, w=w: torch.bmm(a, w))
            one_total, batched_total = one_total + one, batched_total + batched
            rows.append(matmul_row((b, i, o), one, batched))
        out[str(dtype).removeprefix("torch.")] = {
            "shapes": rows,
            "ratio_all_shapes": round(batched_total / one_total, 2),
        }
    return out


def _summary(rows: list[dict]) -> dict:
    arr = np.array([[r[k] for k in KEYS] for r in rows])
    return {
        "mean": dict(zip(KEYS, np.round(arr.mean(0), 4).tolist(), strict=True)),
        "sd": dict(zip(KEYS, np.round(arr.std(0, ddof=1), 4).tolist(), strict=True)),
    }


def quality(data_dir: Path, n_runs: int, iters: int) -> dict:
    adata = scg.datasets.zheng2017_sorted(data_dir, populations="10x_73k")
    truth = adata.obs["label"].to_numpy()
    prepared = scg.pp.preprocess(adata, 720, copy=True)
    start = time.perf_counter()
    ens = GANEnsemble(8, max_iter=iters, n_runs=n_runs, random_state=0, device="cpu")
    ens.fit(prepared)
    ens_seconds = time.perf_counter() - start
    ens_rows = [
        {k: float(v) for k, v in scg.metrics.cluster_metrics(truth, ens.labels_runs_[:, r]).items()}
        for r in range(n_runs)
    ]
    sep_rows, sep_seconds = [], 0.0
    for r in range(n_runs):
        start = time.perf_counter()
        m = GANEnsemble(8, max_iter=iters, random_state=r, device="cpu").fit(prepared)
        sep_seconds += time.perf_counter() - start
        sep_rows.append(
            {k: float(v) for k, v in scg.metrics.cluster_metrics(truth, m.labels_).items()}
        )
        print(f"  seed {r}: separate {sep_rows[-1]}  replica {ens_rows[r]}", flush=True)
    chosen = ens.selected_run_
    return {
        "dataset": "Zheng 2017 sorted PBMC, 8 populations of 10x_73k (3,238 cells), all cells",
        "max_iter": iters,
        "ensemble_fit_seconds": round(ens_seconds, 1),
        "separate_fit_seconds_total": round(sep_seconds, 1),
        "wall_time_ratio_ensemble_vs_one_separate_fit": round(
            ens_seconds / (sep_seconds / n_runs), 2
        ),
        "ensemble_replicas": {"runs": ens_rows, **_summary(ens_rows)},
        "separate_runs": {"runs": sep_rows, **_summary(sep_rows)},
        "selected_replica": {
            "index": chosen,
            "criterion": "highest mean ARI with the other replicas (label-free medoid)",
            "selection_scores": np.round(ens.selection_scores_, 5).tolist(),
            "metrics": ens_rows[chosen],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timing-iters", type=int, default=200)
    parser.add_argument("--pbmc-iters", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time compile=True")
    parser.add_argument(
        "--skip-pbmc",
        action="store_true",
        help="timing only; an existing PBMC section of --out is kept (marked as from an earlier run)",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_ensemble.json")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    scg.settings.progress_bar = False
    info = {**machine(), "device": "cpu"}
    print(info)
    matmuls = time_matmuls(args.runs)
    print(f"R={args.runs} products (batched / one): {matmuls}", flush=True)
    timing = time_training(args.runs, args.timing_iters, args.repeats, args.compile)
    print(f"R={args.runs}: {timing}", flush=True)
    result = {
        "script": "benchmarks/bench_ensemble.py",
        "machine": info,
        "n_runs": args.runs,
        "timing": {"iterations": args.timing_iters, **timing},
        "matmuls": matmuls,
    }
    if args.skip_pbmc and args.out.exists():
        earlier = json.loads(args.out.read_text())
        if "pbmc" in earlier:
            result["pbmc"] = {**earlier["pbmc"], "from_an_earlier_run": True}
            result["pbmc_machine"] = earlier.get("pbmc_machine", earlier.get("machine"))
    if not args.skip_pbmc:
        if not (args.data_dir / "zheng2017_pbmc_facs_fasttopics").is_dir():
            print(f"no PBMC data under {args.data_dir}; skipping the quality comparison")
        else:
            result["pbmc"] = quality(args.data_dir, args.runs, args.pbmc_iters)
            for name in ("ensemble_replicas", "separate_runs"):
                s = result["pbmc"][name]
                print(
                    f"{name:<18} "
                    + "  ".join(f"{k} {s['mean'][k]:.3f}+-{s['sd'][k]:.3f}" for k in KEYS)
                )
    write_json(args.out, result)


if __name__ == "__main__":
    main()
