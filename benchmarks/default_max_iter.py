"""How many generator iterations does tl.clustergan need? Test metrics along training on sorted PBMCs.

Data: the Zheng et al. 2017 sorted PBMC populations staged in ``../shared/data`` (see
``data/README.md``): the 3,238 cells of the 8 populations that 10x_73k keeps, raw counts. The
paper's preprocessing (top 720 genes by count variance, log2(1 + C) / max) and the paper's model
and optimiser settings are used; labels are used only to score. Every ``--every`` iterations the
encoder latent of all cells is clustered with KMeans (the paper's rule) and scored.

    python benchmarks/default_max_iter.py --max-iter 10000 --seeds 0 1

writes ``benchmarks/results/default_max_iter.json`` and ``default_max_iter.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

import scgan_cluster as scg
from scgan_cluster.model import GANEnsemble

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("SCGAN_DATA_DIR", HERE.parents[1] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-iter", type=int, default=10000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    scg.settings.progress_bar = False
    adata = scg.datasets.zheng2017_sorted(args.data_dir, populations="10x_73k")
    truth = adata.obs["label"].to_numpy()
    print(f"sorted PBMC, 8 populations: {adata.n_obs} cells x {adata.n_vars} genes")

    prepared = scg.pp.preprocess(adata, 720, copy=True)
    km = KMeans(8, n_init=10, random_state=0).fit_predict(prepared.X.toarray())
    baseline = scg.metrics.cluster_metrics(truth, km)
    print("paper preprocessing + KMeans:", {k: round(v, 3) for k, v in baseline.items()})

    runs = []
    for seed in args.seeds:
        curve = []
        start = time.perf_counter()
        eval_seconds = [0.0]

        def evaluate(model, it, curve=curve, start=start, eval_seconds=eval_seconds, seed=seed):
            if it % args.every and it != args.max_iter:
                return
            t0 = time.perf_counter()
            full = model.get_latent_representation(prepared, representation="full")
            labels = KMeans(8, n_init=10, random_state=seed).fit_predict(full.astype(np.float64))
            m = scg.metrics.cluster_metrics(truth, labels)
            eval_seconds[0] += time.perf_counter() - t0
            train_s = time.perf_counter() - start - eval_seconds[0]
            curve.append({"iteration": it, "train_seconds": train_s, **m})
            print(
                f"seed {seed} it {it:>6} train {train_s:7.1f}s  "
                + "  ".join(f"{k} {v:.3f}" for k, v in m.items()),
                flush=True,
            )

        GANEnsemble(8, max_iter=args.max_iter, random_state=seed, device="cpu").fit(
            prepared, callback=evaluate
        )
        runs.append({"seed": seed, "curve": curve})

    result = {
        "script": "benchmarks/default_max_iter.py",
        "dataset": "Zheng 2017 sorted PBMC, 8 populations of 10x_73k (3,238 cells), all cells, raw counts",
        "preprocessing": "paper: top 720 genes by count variance, log2(1+C)/max",
        "model": "paper's 10x MLP, all paper hyperparameters, KMeans on (zn, softmax zc)",
        "nmi_average": "arithmetic",
        "baseline_paper_preprocessing_kmeans": baseline,
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "default_max_iter.json").write_text(json.dumps(result, indent=1))

    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, key in zip(axes, ("acc", "nmi", "ari"), strict=True):
        for run in runs:
            it = [c["iteration"] for c in run["curve"]]
            ax.plot(
                it, [c[key] for c in run["curve"]], marker="o", ms=3, label=f"seed {run['seed']}"
            )
        ax.axhline(baseline[key], color="grey", ls="--", lw=1, label="preprocessing + KMeans")
        ax.set_xlabel("generator iterations")
        ax.set_title(key.upper())
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "default_max_iter.png", dpi=110)
    print(f"wrote {args.out / 'default_max_iter.json'}")


if __name__ == "__main__":
    main()
