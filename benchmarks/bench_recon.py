"""Cost of the reconstruction term (``beta_r``, the default recipe's) per generator iteration.

Generated data, the paper's 10x MLP (K = 8, zn 30, batch 64, n_critic 5) as an ensemble of R
replicas (the default recipe trains 5), float32, for 720 genes (the paper's) and 2,000 (scanpy's
usual number of highly variable genes). Timed in turn in one process, fastest of ``--repeats``:

- ``paper``: ``beta_r = 0``, the hand-written steps (the paper's objective);
- ``recon``: ``beta_r = 1``, the hand-written steps with the reconstruction term;
- ``recon_autograd``: ``beta_r = 1`` with ``gradients="autograd"`` (every step on autograd);
- ``recon_bf16``: ``beta_r = 1``, the hand-written steps with ``precision="bf16"``.

    python benchmarks/bench_recon.py --runs 5 --iters 150 --repeats 3

writes ``benchmarks/results/bench_recon.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _protocol import RESULTS, machine, write_json
from bench_ensemble import _nets

from scgan_cluster import nn as snn
from scgan_cluster import train
from scgan_cluster.adapters import DenseSource

CONFIGS = {
    "paper": {"beta_r": 0.0, "gradients": "auto", "precision": "fp32"},
    "recon": {"beta_r": 1.0, "gradients": "auto", "precision": "fp32"},
    "recon_autograd": {"beta_r": 1.0, "gradients": "autograd", "precision": "fp32"},
    "recon_bf16": {"beta_r": 1.0, "gradients": "auto", "precision": "bf16"},
}


def time_configs(n_runs: int, n_genes: int, iters: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4096, n_genes, generator=gen) * (torch.rand(4096, n_genes, generator=gen) > 0.4)
    source = DenseSource(x, torch.device("cpu"))
    prior = snn.MixedPrior(30, 8)

    def nets() -> list:
        return [snn.stack_ensemble([_nets(r, n_genes)[i] for r in range(n_runs)]) for i in range(3)]

    def run(networks: list, n: int, beta_r: float, gradients: str, precision: str) -> None:
        train.train_clustergan(
            *networks,
            prior,
            source,
            train.TrainConfig(max_iter=n, beta_r=beta_r),
            noise_generator=[torch.Generator().manual_seed(1 + r) for r in range(n_runs)],
            index_generator=[torch.Generator().manual_seed(2 + r) for r in range(n_runs)],
            progress=False,
            gradients=gradients,
            precision=precision,
        )

    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for label, opts in CONFIGS.items():
            run(nets(), 5, **opts)  # warm-up
            networks = nets()  # built outside the timed call
            start = time.perf_counter()
            run(networks, iters, **opts)
            times.setdefault(label, []).append(
                round((time.perf_counter() - start) / iters * 1e3, 2)
            )
    print(n_genes, times, flush=True)
    best = {label: min(v) for label, v in times.items()}
    return {
        "all_repeats_ms_per_it": times,
        "ms_per_it": best,
        "recon_vs_paper": round(best["recon"] / best["paper"], 2),
        "recon_autograd_vs_recon": round(best["recon_autograd"] / best["recon"], 2),
        "recon_vs_recon_bf16": round(best["recon"] / best["recon_bf16"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="replicas of the ensemble")
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--genes", type=int, nargs="*", default=[720, 2000])
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_recon.json")
    args = parser.parse_args()
    result = {
        "script": "benchmarks/bench_recon.py",
        "command": "python benchmarks/bench_recon.py "
        + f"--runs {args.runs} --iters {args.iters} --repeats {args.repeats} "
        + "--genes "
        + " ".join(map(str, args.genes)),
        "machine": machine(),
        "replicas": args.runs,
        "results": {
            str(g): time_configs(args.runs, g, args.iters, args.repeats) for g in args.genes
        },
    }
    write_json(args.out, result)
    for g, r in result["results"].items():
        print(
            g,
            r["ms_per_it"],
            "recon/paper",
            r["recon_vs_paper"],
            "autograd/recon",
            r["recon_autograd_vs_recon"],
        )


if __name__ == "__main__":
    main()
