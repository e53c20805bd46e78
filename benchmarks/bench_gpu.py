"""The default recipe on a GPU: eager, graph-captured, and graph-captured with concurrent ensembles.

One staged count dataset (default: sorted PBMC 8, K = 8), all cells, the default recipe, each
fit alone on the device and side by side in one run, after a short warm-up fit (CUDA context,
library handles):

- ``eager``: ``cuda_graph=False, concurrent=False`` (one ensemble after the other, every
  kernel launched from Python);
- ``graph``: ``cuda_graph=True, concurrent=False`` (each generator iteration replayed as a
  CUDA graph, :class:`scgan_cluster.train.CapturedIteration`);
- ``graph_concurrent``: ``cuda_graph=True, concurrent=True`` (the two ensembles in two
  threads, each on its own CUDA stream).

Per variant: wall seconds, the phases of ``fit_seconds_``, NMI / ARI, and whether its labels
equal the eager fit's (the same kernels, so they should). Then a ``torch.profiler`` trace of a
short fit (``--profile-iters`` iterations per ensemble) eager and graph-captured: the operators
with the most device time and the most host time, and how much of the wall time the device
was busy. With ``--device cpu`` only the eager variant runs (the others need CUDA), which
checks the script itself.

    python benchmarks/bench_gpu.py --data-dir ../shared/data --device cuda

writes ``benchmarks/results/bench_gpu.json`` and ``bench_gpu.md`` with the card, torch and
CUDA versions.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scanpy as sc
import torch
from _protocol import DEFAULT_DATA, RESULTS, machine, write_json
from scrna import DATASETS
from torch.profiler import ProfilerActivity, profile

import scgan_cluster as scg
from scgan_cluster.metrics import cluster_metrics

VARIANTS = {
    "eager": {"cuda_graph": False, "concurrent": False},
    "graph": {"cuda_graph": True, "concurrent": False},
    "graph_concurrent": {"cuda_graph": True, "concurrent": True},
}


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def fit_variant(
    adata, k: int, options: dict[str, Any], device: str, seed: int, max_iter: int | None
) -> tuple[dict[str, Any], np.ndarray]:
    """One default fit with ``options``: seconds (device synchronised), phases and labels."""
    model = scg.ClusterGAN(k, random_state=seed, device=device, max_iter=max_iter, **options)
    _sync(device)
    start = time.perf_counter()
    model.fit(adata)
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "options": options,
        "seconds": round(seconds, 3),
        "phases": {name: round(s, 3) for name, s in model.fit_seconds_.items()},
        "iterations": {e.name: model.recipe_.budget(k, e) for e in model.recipe_.ensembles},
    }, model.labels_


def _device_us(event) -> float:
    """Self device time of a profiler row in microseconds (named cuda or device by torch version)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def profile_variant(
    adata, k: int, options: dict[str, Any], device: str, seed: int, iters: int, top: int
) -> dict[str, Any]:
    """A short fit under ``torch.profiler``: top operators by device and by host time."""
    activities = [ProfilerActivity.CPU]
    if torch.device(device).type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    model = scg.ClusterGAN(k, random_state=seed, device=device, max_iter=iters, **options)
    _sync(device)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        model.fit(adata)
        _sync(device)
    wall = time.perf_counter() - start
    rows = prof.key_averages()
    by_device = sorted(rows, key=_device_us, reverse=True)[:top]
    by_host = sorted(rows, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    kernels = [e for e in rows if e.device_type != torch.autograd.DeviceType.CPU]
    busy_us = sum(_device_us(e) for e in kernels)
    return {
        "options": options,
        "iterations_per_ensemble": iters,
        "wall_seconds": round(wall, 3),
        "device_busy_seconds": round(busy_us / 1e6, 3),
        "device_busy_fraction": round(busy_us / 1e6 / wall, 4) if wall > 0 else None,
        "top_device": [
            {"name": e.key, "calls": e.count, "self_device_ms": round(_device_us(e) / 1e3, 2)}
            for e in by_device
            if _device_us(e) > 0
        ],
        "top_host": [
            {"name": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2)}
            for e in by_host
        ],
    }


def write_table(result: dict[str, Any], path: Path) -> str:
    """The variants' seconds and scores, then each profile's busy fraction and top operators."""
    info = result["machine"]
    card = info["cuda"] or info["cpu"]
    lines = [
        f"{result['dataset']}: {result['n_obs']:,} cells, K = {result['n_clusters']}; "
        f"{card}, torch {info['torch']}, CUDA {info['cuda_version']}.",
        "",
        "| variant | seconds | NMI / ARI | labels equal eager's | phases (s) |",
        "|---|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        phases = ", ".join(f"{p} {s:.1f}" for p, s in v["phases"].items())
        lines.append(
            f"| {name} | {v['seconds']:.1f} | {v['nmi']:.3f} / {v['ari']:.3f} | "
            f"{v['labels_equal_eager']} | {phases} |"
        )
    for name, p in result["profiles"].items():
        lines += [
            "",
            f"Profile `{name}` ({p['iterations_per_ensemble']} iterations per ensemble): "
            f"{p['wall_seconds']:.2f} s wall, device busy {p['device_busy_seconds']:.2f} s "
            f"({p['device_busy_fraction']}).",
            "",
            "| operator (most device time) | calls | ms |",
            "|---|---|---|",
        ]
        lines += [
            f"| {e['name']} | {e['calls']} | {e['self_device_ms']} |" for e in p["top_device"]
        ]
        lines += ["", "| operator (most host time) | calls | ms |", "|---|---|---|"]
        lines += [f"| {e['name']} | {e['calls']} | {e['self_cpu_ms']} |" for e in p["top_host"]]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="zheng2017_sorted8")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-iter", type=int, help="iterations per ensemble (default: the recipe's budget)"
    )
    parser.add_argument("--profile-iters", type=int, default=300)
    parser.add_argument("--top", type=int, default=12, help="operators listed per profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_gpu.json")
    args = parser.parse_args(argv)
    scg.settings.progress_bar = False
    sc.settings.verbosity = 0
    warnings.simplefilter("ignore")
    cuda = torch.device(args.device).type == "cuda"
    variants = VARIANTS if cuda else {"eager": VARIANTS["eager"]}

    adata = DATASETS[args.dataset][0](args.data_dir)
    truth = np.asarray(adata.obs["label"].astype(str))
    k = len(np.unique(truth))
    print(f"{args.dataset}: {adata.n_obs} cells x {adata.n_vars} genes, K = {k}", flush=True)
    warm_start = time.perf_counter()
    fit_variant(adata, k, variants["eager"], args.device, args.seed, 20)
    warm_up = round(time.perf_counter() - warm_start, 3)
    results: dict[str, Any] = {}
    labels: dict[str, np.ndarray] = {}
    for name, options in variants.items():
        results[name], labels[name] = fit_variant(
            adata, k, options, args.device, args.seed, args.max_iter
        )
        m = cluster_metrics(truth, labels[name])
        results[name] |= {"nmi": round(float(m["nmi"]), 4), "ari": round(float(m["ari"]), 4)}
        results[name]["labels_equal_eager"] = bool(np.array_equal(labels[name], labels["eager"]))
        print(f"  {name}: {results[name]}", flush=True)
    profiles = {
        name: profile_variant(
            adata, k, variants[name], args.device, args.seed, args.profile_iters, args.top
        )
        for name in variants
        if name in ("eager", "graph")
    }
    for name, p in profiles.items():
        print(f"  profile {name}: {p['wall_seconds']} s, busy {p['device_busy_fraction']}")
    result = {
        "script": "benchmarks/bench_gpu.py",
        "command": "python benchmarks/bench_gpu.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": args.dataset,
        "n_obs": int(adata.n_obs),
        "n_clusters": k,
        "device": args.device,
        "warm_up_fit_seconds": warm_up,
        "variants": results,
        "profiles": profiles,
        "machine": machine(),
    }
    write_json(args.out, result)
    print(write_table(result, args.out.with_suffix(".md")))


if __name__ == "__main__":
    main()
