"""The demo: ClusterGAN on scanpy's bundled ``pbmc68k_reduced`` next to leiden, with a UMAP figure."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from . import metrics
from ._leiden import leiden_graph_k

__all__ = ["demo_data", "leiden_with_k", "run_demo"]


def demo_data(n_top_genes: int = 720) -> AnnData:
    """``sc.datasets.pbmc68k_reduced()`` made into ClusterGAN input, honestly.

    That dataset ships no raw counts: ``.raw`` holds log-normalised expression ln(1 + x) of
    765 genes (``X`` holds the same genes z-scored). The paper's transform ``log2(1 + C) / max``
    needs counts, so the demo applies only its parts that make sense here: keep the
    ``n_top_genes`` genes of highest variance of the log-normalised values and divide by their
    maximum, so that the input lies in [0, 1] as the paper's does. It then trains with
    ``preprocess=False``. ``obs["bulk_labels"]`` (10 FACS-derived populations) is the reference.
    """
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    logn = adata.raw.to_adata()
    x = logn.X.toarray() if hasattr(logn.X, "toarray") else np.asarray(logn.X)
    keep = np.sort(np.argsort(-x.var(axis=0), kind="stable")[:n_top_genes])
    out = AnnData(
        (x[:, keep] / x[:, keep].max()).astype(np.float32),
        obs=adata.obs[["bulk_labels"]].copy(),
        var=logn.var.iloc[keep][[]].copy(),
    )
    out.obsm["X_pca"] = adata.obsm["X_pca"].copy()
    return out


def leiden_with_k(
    adata: AnnData, k: int, *, key_added: str = "leiden", random_state: int = 0
) -> float:
    """Leiden on the existing neighbour graph at the resolution (by bisection) that gives ``k`` clusters.

    Leiden runs to convergence (``n_iterations=-1``); the labels go to ``obs[key_added]``. See
    :func:`scgan_cluster._leiden.leiden_graph_k` for the search. Returns the resolution used.
    """
    labels, res = leiden_graph_k(adata, k, random_state, n_iterations=-1)
    ids = [str(c) for c in range(int(labels.max()) + 1)]
    adata.obs[key_added] = pd.Categorical(labels.astype(str), categories=ids)
    return res


def run_demo(
    out_dir: str | Path = "demo_out", *, max_iter: int | None = None, random_state: int = 0
) -> dict:
    """Cluster ``pbmc68k_reduced`` with ClusterGAN and leiden, print metrics, write a UMAP PNG.

    Returns the metrics dict that is also written to ``out_dir/metrics.json``.
    """
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    import scanpy as sc

    from . import pl, tl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    adata = demo_data()
    k = adata.obs["bulk_labels"].nunique()
    print(
        f"pbmc68k_reduced: {adata.n_obs} cells, {adata.n_vars} genes (log-normalised, scaled to [0, 1]); "
        f"K = {k} bulk_labels"
    )
    t0 = time.perf_counter()
    tl.clustergan(
        adata, n_clusters=k, preprocess=False, max_iter=max_iter, random_state=random_state
    )
    t_gan = time.perf_counter() - t0

    # the scanpy pipeline a user would pick instead: neighbours on the 50 PCs, leiden with K clusters
    t0 = time.perf_counter()
    sc.pp.neighbors(adata, use_rep="X_pca", random_state=random_state)
    res = leiden_with_k(adata, k, random_state=random_state)
    t_leiden = time.perf_counter() - t0

    truth = adata.obs["bulk_labels"]
    results = {
        "dataset": "scanpy pbmc68k_reduced (700 cells, 10 bulk_labels)",
        "clustergan": {
            **metrics.cluster_metrics(truth, adata.obs["clustergan"]),
            "seconds": t_gan,
            "max_iter": int(adata.uns["clustergan"]["params"]["max_iter"]),
            # each ensemble's replicas (the default: 3 on the genes, 15 on the components)
            "replicas": {
                name: len(m["agreement"]) for name, m in adata.uns["clustergan"]["members"].items()
            },
            "random_state": random_state,
            # each ensemble's replica agreement (mean ARI between its replicas; no labels)
            "agreement": {
                name: float(np.mean(m["agreement"]))
                for name, m in adata.uns["clustergan"]["members"].items()
            },
        },
        "leiden": {
            **metrics.cluster_metrics(truth, adata.obs["leiden"]),
            "seconds": t_leiden,
            "resolution": res,
            "n_clusters": int(adata.obs["leiden"].nunique()),
        },
    }
    print(f"\n{'method':<12}{'ACC':>7}{'purity':>8}{'NMI':>7}{'ARI':>7}{'seconds':>9}")
    for name in ("clustergan", "leiden"):
        r = results[name]
        print(
            f"{name:<12}{r['acc']:>7.3f}{r['purity']:>8.3f}{r['nmi']:>7.3f}{r['ari']:>7.3f}{r['seconds']:>9.1f}"
        )
    print("(ACC: Hungarian-matched accuracy; NMI: arithmetic mean normalisation)")
    agreement = results["clustergan"]["agreement"]
    print(
        "ClusterGAN pooled "
        + ", ".join(
            f"the {name} ensemble (replica agreement {a:.3f})" for name, a in agreement.items()
        )
    )

    # UMAP of the ClusterGAN latent, coloured by its clusters, leiden and the reference labels
    sc.pp.neighbors(adata, use_rep="X_clustergan", random_state=random_state, key_added="gan")
    sc.tl.umap(adata, neighbors_key="gan", random_state=random_state)
    fig = sc.pl.umap(
        adata,
        color=["clustergan", "leiden", "bulk_labels"],
        show=False,
        return_fig=True,
        wspace=0.45,
    )
    umap_png = out_dir / "umap_clustergan.png"
    fig.savefig(umap_png, dpi=110, bbox_inches="tight")
    plt.close(fig)
    history_png = out_dir / "training_history.png"
    pl.training_history(adata, save=history_png, show=False)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {umap_png}, {history_png} and {out_dir / 'metrics.json'}")
    return results
