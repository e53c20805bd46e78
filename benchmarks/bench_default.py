"""A recipe of ``tl.clustergan`` end to end, next to the clusterings a scanpy user would run.

Every method clusters all cells of a staged count dataset into K (the number of labelled
types), as a user would; labels only score the result (NMI, arithmetic normalisation, and ARI
on all cells). Per dataset, in one run:

- ``clustergan``: :class:`scgan_cluster.ClusterGAN` with the recipe ``--flavor`` (default: the
  default, ``"lognorm"``), wall time split into each ensemble's preprocessing, training and
  assignment, and the pooling (``fit_seconds_``);
- ``clustergan_reference``: the same with the recipe ``--reference``, when given, for the ratio
  measured side by side;
- ``scanpy_leiden``: normalize_total, log1p, 2,000 highly variable genes, scale, 50 PCs,
  15-neighbour graph, leiden at the resolution giving K clusters;
- ``pca_kmeans``: KMeans (10 starts) on the same 50 PCs;
- ``scvi_kmeans``: scVI (400 epochs at most, scvi-tools' default) on the 2,000 genes and KMeans
  on its latent, when scvi-tools is importable.

The machine's yardstick is the naive reference loop (``_naive.py``: the 10x MLP on 720
features, batch 64, 5 critic steps), timed at the start and at the end of the run; each
ClusterGAN time is also given in naive iterations (its seconds / the naive loop's seconds per
iteration), so runs on noisy or different machines compare. ``--demo`` also times the README's
demo (``scgan-cluster demo``) as a fresh process, start to exit.

    python benchmarks/bench_default.py --data-dir ../shared/data --datasets zheng2017_sorted8 \
        --flavor lognorm --reference lognorm_long --demo

writes ``benchmarks/results/bench_default.json`` and ``bench_default.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scanpy as sc
import torch
from _naive import naive_train
from _protocol import DEFAULT_DATA, RESULTS, machine, write_json
from scrna import DATASETS, scanpy_standard, scvi_latent
from sklearn.cluster import KMeans

import scgan_cluster as scg
from scgan_cluster import nn as snn
from scgan_cluster._leiden import leiden_graph_k
from scgan_cluster.metrics import cluster_metrics

STAGED = ("zheng2017_sorted8", "zheng2017_sorted10", "pbmc4k", "mouse_bladder", "worm_neuron")


def naive_ms_per_iter(iters: int = 100, warmup: int = 10, seed: int = 0) -> float:
    """Milliseconds per generator iteration of the naive loop (10x MLP, 720 features, K = 8)."""
    torch.manual_seed(seed)
    g, e, c = snn.build_networks("mlp", 720, 30, 8)
    x = torch.rand(4096, 720, generator=torch.Generator().manual_seed(seed))
    kw = {"n_latent": 30, "n_clusters": 8, "seed": seed}
    naive_train(g, e, c, x, max_iter=warmup, **kw)
    start = time.perf_counter()
    naive_train(g, e, c, x, max_iter=iters, **kw)
    return 1000 * (time.perf_counter() - start) / iters


def _scores(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    m = cluster_metrics(truth, labels)
    return {"nmi": round(float(m["nmi"]), 4), "ari": round(float(m["ari"]), 4)}


def run_clustergan(
    adata, k: int, flavor: str, seed: int, truth: np.ndarray, device: str = "cpu"
) -> dict[str, Any]:
    """A ClusterGAN fit of recipe ``flavor`` on all cells: seconds per phase and scores."""
    model = scg.ClusterGAN(k, flavor=flavor, random_state=seed, device=device)
    start = time.perf_counter()
    model.fit(adata)
    seconds = time.perf_counter() - start
    phases = {name: round(s, 2) for name, s in model.fit_seconds_.items()}
    return {
        "flavor": flavor,
        "device": str(device),
        "seconds": round(seconds, 2),
        "phases": phases,
        "iterations": {e.name: model.recipe_.budget(k, e) for e in model.recipe_.ensembles},
        **_scores(truth, model.labels_),
    }


def run_baselines(adata, k: int, seed: int, truth: np.ndarray) -> dict[str, dict[str, Any]]:
    """The scanpy leiden pipeline, KMeans on its 50 PCs and scVI + KMeans (when importable)."""
    out: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    standard = scanpy_standard(adata, seed)
    pca_seconds = time.perf_counter() - start
    start = time.perf_counter()
    sc.pp.neighbors(standard, n_neighbors=15, random_state=seed)
    labels, res = leiden_graph_k(standard, k, seed)
    leiden_seconds = time.perf_counter() - start
    out["scanpy_leiden"] = {
        "seconds": round(pca_seconds + leiden_seconds, 2),
        "phases": {
            "preprocessing + PCA": round(pca_seconds, 2),
            "graph + leiden": round(leiden_seconds, 2),
        },
        "resolution": res,
        **_scores(truth, labels),
    }
    start = time.perf_counter()
    km = KMeans(k, n_init=10, random_state=seed).fit(standard.obsm["X_pca"].astype(np.float64))
    km_seconds = time.perf_counter() - start
    out["pca_kmeans"] = {
        "seconds": round(pca_seconds + km_seconds, 2),
        "phases": {"preprocessing + PCA": round(pca_seconds, 2), "KMeans": round(km_seconds, 2)},
        **_scores(truth, km.labels_),
    }
    try:
        import scvi  # noqa: F401
    except ImportError:
        return out
    start = time.perf_counter()
    z, _ = scvi_latent(adata, seed)
    labels = KMeans(k, n_init=10, random_state=seed).fit_predict(z)
    out["scvi_kmeans"] = {
        "seconds": round(time.perf_counter() - start, 2),
        **_scores(truth, labels),
    }
    return out


def time_demo() -> dict[str, Any]:
    """The README's demo as a fresh process: wall seconds from start to exit, and its metrics."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "scgan_cluster", "demo", "--out", tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "metrics.json").read_text())
    gan, leiden = metrics["clustergan"], metrics["leiden"]
    return {
        "command": "scgan-cluster demo",
        "seconds": round(seconds, 2),
        "clustergan_seconds": round(gan["seconds"], 2),
        "clustergan": {"nmi": round(gan["nmi"], 4), "ari": round(gan["ari"], 4)},
        "leiden": {"nmi": round(leiden["nmi"], 4), "ari": round(leiden["ari"], 4)},
    }


def write_table(result: dict[str, Any], path: Path) -> str:
    """One row per dataset: the default against the reference and the best baseline."""
    lines = [
        f"| dataset | cells | K | {result['flavor']}: s (naive its) | NMI / ARI | "
        f"{result['reference_flavor'] or 'reference'}: s (naive its) "
        "| NMI / ARI | time ratio | leiden: s, NMI / ARI | 50 PCs + KMeans: s, NMI / ARI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ms = result["naive_ms_per_iter"]["mean"]
    for d in result["datasets"]:
        m = d["methods"]
        new, ref = m["clustergan"], m.get("clustergan_reference")
        row = [
            d["dataset"],
            f"{d['n_obs']:,}",
            str(d["n_clusters"]),
            f"{new['seconds']:.0f} ({1000 * new['seconds'] / ms:,.0f})",
            f"{new['nmi']:.3f} / {new['ari']:.3f}",
        ]
        if ref is None:
            row += ["not run", "", ""]
        else:
            row += [
                f"{ref['seconds']:.0f} ({1000 * ref['seconds'] / ms:,.0f})",
                f"{ref['nmi']:.3f} / {ref['ari']:.3f}",
                f"1 / {ref['seconds'] / new['seconds']:.1f}",
            ]
        for name in ("scanpy_leiden", "pca_kmeans"):
            b = m[name]
            row.append(f"{b['seconds']:.0f}, {b['nmi']:.3f} / {b['ari']:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    demo = result.get("demo")
    if demo is not None:
        text += (
            f"\nDemo (`{demo['command']}`, a fresh process): {demo['seconds']:.0f} s in all, "
            f"{demo['clustergan_seconds']:.0f} s of it ClusterGAN; NMI / ARI "
            f"{demo['clustergan']['nmi']:.3f} / {demo['clustergan']['ari']:.3f} "
            f"(leiden {demo['leiden']['nmi']:.3f} / {demo['leiden']['ari']:.3f}).\n"
        )
    n = result["naive_ms_per_iter"]
    info = result["machine"]
    text += (
        f"\nNaive loop: {n['start']:.1f} ms/it at the start, {n['end']:.1f} at the end. "
        f"{info['cpu']}, {info['torch_threads']} torch threads, torch {info['torch']}.\n"
    )
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(STAGED))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flavor", default="lognorm", help="the recipe timed")
    parser.add_argument("--reference", help="a recipe timed beside it, for the ratio")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--demo", action="store_true", help="also time the README's demo")
    parser.add_argument("--device", default="cpu", help="where ClusterGAN trains (cpu, cuda)")
    parser.add_argument("--naive-iters", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_default.json")
    args = parser.parse_args(argv)
    scg.settings.progress_bar = False
    sc.settings.verbosity = 0
    warnings.simplefilter("ignore")

    naive = {"start": round(naive_ms_per_iter(args.naive_iters), 2)}
    print(f"naive loop: {naive['start']:.1f} ms/it")
    rows = []
    for name in args.datasets:
        adata = DATASETS[name][0](args.data_dir)
        truth = np.asarray(adata.obs["label"].astype(str))
        k = len(np.unique(truth))
        print(f"{name}: {adata.n_obs} cells x {adata.n_vars} genes, K = {k}")
        methods: dict[str, Any] = {}
        methods["clustergan"] = run_clustergan(adata, k, args.flavor, args.seed, truth, args.device)
        print(f"  clustergan {methods['clustergan']}", flush=True)
        if args.reference is not None:
            methods["clustergan_reference"] = run_clustergan(
                adata, k, args.reference, args.seed, truth, args.device
            )
            print(f"  clustergan_reference {methods['clustergan_reference']}")
        if not args.no_baselines:
            methods |= run_baselines(adata, k, args.seed, truth)
        rows.append({"dataset": name, "n_obs": adata.n_obs, "n_clusters": k, "methods": methods})
    demo = time_demo() if args.demo else None
    naive["end"] = round(naive_ms_per_iter(args.naive_iters), 2)
    naive["mean"] = round((naive["start"] + naive["end"]) / 2, 2)
    for row in rows:
        for m in row["methods"].values():
            m["naive_iterations"] = round(1000 * m["seconds"] / naive["mean"])
        ref = row["methods"].get("clustergan_reference")
        if ref is not None:
            row["time_ratio"] = round(row["methods"]["clustergan"]["seconds"] / ref["seconds"], 4)
    result = {
        "script": "benchmarks/bench_default.py",
        "command": "python benchmarks/bench_default.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "flavor": args.flavor,
        "recipe": scg.recipes.RECIPES[args.flavor].to_dict(),
        "reference_flavor": args.reference,
        "reference": None
        if args.reference is None
        else scg.recipes.RECIPES[args.reference].to_dict(),
        "naive_ms_per_iter": naive,
        "machine": machine(),
        "datasets": rows,
        "demo": demo,
    }
    write_json(args.out, result)
    print(write_table(result, args.out.with_suffix(".md")))


if __name__ == "__main__":
    main()
