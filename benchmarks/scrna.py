"""ClusterGAN against the clusterings a scanpy user would run instead, on labeled count data.

The paper's protocol (see ``_protocol.py``): a seeded train / validation / test split in the
proportions of the official 10x_73k code, R runs with different seeds, and on the test split
both the paper's best-of-R by validation purity and the mean +- sd over runs. Labels are used
only to score.

Methods (all see the same split; "fit on train" methods predict validation and test cells,
"transductive" ones cluster all cells together without labels and are scored on the same
validation and test cells):

- ``clustergan``: the paper's recipe: top 720 genes by count variance, log2(1 + C) / max, the
  10x MLP, KMeans on the encoder latent (zn, softmax zc) of the training cells, nearest centre
  for validation / test. Fit on train. ``--curve-every`` also records validation and test
  metrics along training (the time-to-accuracy study).
- ``paper_kmeans``: the paper's preprocessing + KMeans. Fit on train.
- ``scanpy_leiden``: scanpy's standard pipeline (normalize_total, log1p, 2,000 highly variable
  genes, scale, 50 PCs, 15-neighbour graph) and leiden at the resolution that gives K
  clusters (bisection). Transductive.
- ``pca_kmeans`` / ``pca_gmm``: KMeans / a full-covariance Gaussian mixture on the 50 PCs of
  that pipeline (PCA on all cells without labels). Fit on train.
- ``scvi_kmeans``: scVI (scvi-tools, when importable) on the 2,000 highly variable genes of
  all cells, KMeans on the latent of the training cells. Transductive latent, KMeans fit on
  train.

    python benchmarks/scrna.py --dataset zheng2017_sorted8 --runs 5 --max-iter 10000 --curve-every 500

``--clustergan NAME ...`` also fits recipes of ``CLUSTERGAN_VARIANTS`` (each a
:class:`scgan_cluster.recipes.Recipe`: the shipped ``"lognorm"`` default, the paper's, or one of
them with fields replaced) as :class:`scgan_cluster.ClusterGAN` models and scores every replica,
the label-free picks among them and the pooled labels (:func:`clustergan_replicas`):

    python benchmarks/scrna.py --dataset pbmc4k --methods --clustergan auto --seed0 10

writes ``benchmarks/results/scrna_<dataset>.json``; ``--h5ad FILE --label-key COL`` runs it on
any labeled AnnData of raw counts. Runs of the KMeans, GMM and leiden baselines and of the
``--clustergan`` variants are also scored on the training cells (``"train"``: the labels the
method gives them), a set about ten times the validation split, for comparing settings with less
noise; labels are used only to score there too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scanpy as sc
from _protocol import (
    DEFAULT_DATA,
    RESULTS,
    MethodResult,
    aggregate,
    machine,
    markdown_table,
    paper_split,
    run_method,
    score,
    write_json,
)
from anndata import AnnData
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

import scgan_cluster as scg
from scgan_cluster._leiden import leiden_graph_k
from scgan_cluster.model import GANEnsemble, Pool
from scgan_cluster.recipes import ENSEMBLES, MODEL_ARGS, RECIPES, Ensemble, Recipe

# name -> (loader(data_dir) -> AnnData of raw counts with obs["label"], description)
DATASETS: dict[str, tuple[Callable[[Path], AnnData], str]] = {
    "tenx_73k": (
        lambda d: scg.datasets.tenx_73k(d),
        "10x_73k (Zheng 2017 sorted PBMCs, 73,233 cells x 720 genes, 8 types), the paper's file",
    ),
    "zheng2017_sorted8": (
        lambda d: scg.datasets.zheng2017_sorted(d, populations="10x_73k"),
        "Zheng 2017 sorted PBMCs, the 8 populations of 10x_73k (3,238 cells, all genes)",
    ),
    "zheng2017_sorted10": (
        lambda d: scg.datasets.zheng2017_sorted(d, populations="all"),
        "Zheng 2017 sorted PBMCs, all 10 populations (3,874 cells, all genes)",
    ),
    "pbmc4k": (
        lambda d: scg.datasets.pbmc4k(d),
        "10x PBMC 4k, 2,000 genes, 8 Cell Ranger clusters as labels (scDCC file)",
    ),
    "mouse_bladder": (
        lambda d: scg.datasets.mouse_bladder(d),
        "Mouse Cell Atlas bladder, 2,746 cells x 2,003 genes, 16 types (scDCC file)",
    ),
    "worm_neuron": (
        lambda d: scg.datasets.worm_neuron(d),
        "C. elegans neurons (Cao 2017), 4,186 cells x 13,488 genes, 10 types (scDCC file)",
    ),
}


# ---------------------------------------------------------------------------------- pipelines
def scanpy_standard(adata: AnnData, seed: int, n_pcs: int = 50) -> AnnData:
    """scanpy's standard pipeline up to PCA, on a copy (no labels used)."""
    a = AnnData(adata.X.copy(), obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=min(2000, a.n_vars), subset=True)
    sc.pp.scale(a, max_value=10)
    sc.pp.pca(a, n_comps=min(n_pcs, a.n_vars - 1, a.n_obs - 1), random_state=seed)
    return a


class Cache:
    """Per-seed results shared by methods (the scanpy pipeline is computed once per seed)."""

    def __init__(self, adata: AnnData, n_top_genes: int = 720) -> None:
        self.adata = adata
        self.n_top_genes = min(n_top_genes, adata.n_vars)
        self._standard: dict[int, AnnData] = {}
        self._paper: AnnData | None = None

    def standard(self, seed: int) -> AnnData:
        if seed not in self._standard:
            self._standard[seed] = scanpy_standard(self.adata, seed)
        return self._standard[seed]

    def paper(self) -> AnnData:
        if self._paper is None:
            self._paper = scg.pp.preprocess(self.adata, self.n_top_genes, copy=True)
        return self._paper


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


def _fit_predict(model: Any, x: np.ndarray, split: dict[str, np.ndarray]) -> MethodResult:
    model.fit(x[split["train"]])
    return MethodResult(
        model.predict(x[split["val"]]),
        model.predict(x[split["test"]]),
        train_labels=model.predict(x[split["train"]]),
    )


def method_paper_kmeans(cache: Cache, split, k: int, seed: int) -> MethodResult:
    x = _dense(cache.paper().X)
    return _fit_predict(KMeans(k, n_init=10, random_state=seed), x, split)


def method_pca_kmeans(cache: Cache, split, k: int, seed: int) -> MethodResult:
    x = cache.standard(seed).obsm["X_pca"].astype(np.float64)
    return _fit_predict(KMeans(k, n_init=10, random_state=seed), x, split)


def method_pca_gmm(cache: Cache, split, k: int, seed: int) -> MethodResult:
    x = cache.standard(seed).obsm["X_pca"].astype(np.float64)
    gmm = GaussianMixture(k, covariance_type="full", n_init=3, reg_covar=1e-4, random_state=seed)
    return _fit_predict(gmm, x, split)


def method_scanpy_leiden(cache: Cache, split, k: int, seed: int) -> MethodResult:
    a = cache.standard(seed)
    if "neighbors" not in a.uns:
        sc.pp.neighbors(a, n_neighbors=15, random_state=seed)
    labels, res = leiden_graph_k(a, k, seed)
    n = len(np.unique(labels))
    return MethodResult(
        labels[split["val"]],
        labels[split["test"]],
        {"resolution": res, "n_clusters_found": n},
        train_labels=labels[split["train"]],
    )


def scvi_latent(adata: AnnData, seed: int) -> tuple[np.ndarray, int]:
    """scVI (scvi-tools' defaults, CPU) on the 2,000 highly variable genes of raw counts:
    the latent of every cell (float64) and the epochs trained."""
    import scvi

    hv = AnnData(adata.X.copy(), obs=adata.obs[[]].copy(), var=adata.var[[]].copy())
    hv.layers["counts"] = hv.X.copy()
    norm = hv.copy()
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.highly_variable_genes(norm, n_top_genes=min(2000, adata.n_vars))
    hv = hv[:, norm.var["highly_variable"].to_numpy()].copy()
    scvi.settings.seed = seed
    scvi.model.SCVI.setup_anndata(hv, layer="counts")
    model = scvi.model.SCVI(hv)
    model.train(accelerator="cpu", enable_progress_bar=False)
    z = model.get_latent_representation().astype(np.float64)
    return z, int(model.history["elbo_train"].shape[0])


def method_scvi_kmeans(cache: Cache, split, k: int, seed: int) -> MethodResult:
    z, epochs = scvi_latent(cache.adata, seed)
    res = _fit_predict(KMeans(k, n_init=10, random_state=seed), z, split)
    res.info["epochs"] = epochs
    return res


class ClusterGANMethod:
    """The paper's ClusterGAN (one network of the ``"paper"`` recipe at ``max_iter``
    iterations), fit on the train split; optional metrics along training."""

    def __init__(self, max_iter: int, curve_every: int | None, truth: np.ndarray) -> None:
        self.max_iter = max_iter
        self.curve_every = curve_every
        self.truth = truth
        self.checkpoints: dict[int, list[dict[str, Any]]] = {}

    def __call__(self, cache: Cache, split, k: int, seed: int) -> MethodResult:
        prepared = cache.paper()
        train, val, test = (prepared[split[s]] for s in ("train", "val", "test"))
        curve: list[dict[str, Any]] = []
        start = time.perf_counter()
        eval_seconds = [0.0]

        def evaluate(model: GANEnsemble, it: int) -> None:
            # the model calls back every max_iter // 100 iterations: record the first call
            # at or past each multiple of curve_every, and the last iteration
            if not self.curve_every:
                return
            done = curve[-1]["iteration"] // self.curve_every if curve else 0
            if it // self.curve_every <= done and it != self.max_iter:
                return
            t0 = time.perf_counter()
            full = model.get_latent_representation(train, representation="full")
            km = KMeans(k, n_init=10, random_state=seed).fit(full.astype(np.float64))
            point = {"iteration": it, "train_seconds": round(t0 - start - eval_seconds[0], 2)}
            for name, part in (("val", val), ("test", test)):
                z = model.get_latent_representation(part, representation="full")
                point[name] = score(self.truth[split[name]], km.predict(z.astype(np.float64)))
            curve.append(point)
            eval_seconds[0] += time.perf_counter() - t0

        paper = RECIPES["paper"]
        settings = paper.ensemble_settings(paper.ensembles[0], k) | {"max_iter": self.max_iter}
        model = GANEnsemble(k, random_state=seed, device="cpu", **settings)
        model.fit(train, callback=evaluate)
        return MethodResult(
            model.predict(val),
            model.predict(test),
            {
                "iterations": self.max_iter,
                "train_seconds": round(model.train_seconds_, 2),
                "curve": curve,
            },
        )


SPLITS = ("train", "val", "test")

# The recipes compared by --clustergan (see clustergan_replicas). Each is a Recipe of
# scgan_cluster.recipes: the shipped ones, or one of them with fields replaced. The one-ensemble
# variants train 5 replicas of one network for 4,000 iterations (every K); they are the settings
# compared on the way to the default recipe, one change at a time.
_DEFAULT = RECIPES["lognorm_long"]  # the previous default: the stored "auto" and "default" fits
_GENES, _PCS, _GENES_FAST = ENSEMBLES["genes"], ENSEMBLES["pcs"], ENSEMBLES["genes_fast"]
_ONE = {"max_iter": 4000, "max_iter_per_cluster": 0, "n_runs": 5, "ensembles": (_GENES,)}
# the paper's recipe: top 720 genes by count variance, log2(1 + C) / max, uniform prior
_PAPER = replace(RECIPES["paper"], max_iter=4000, n_runs=5)
# the lognorm preprocessing at the paper's 720 genes, then a learned prior, then a
# reconstruction term on real cells (beta_r * ||x - G(E(x))||^2), then scanpy's 2,000 genes
_LOGNORM = replace(_DEFAULT, prior="uniform", beta_r=0.0, n_top_genes=720, **_ONE)
_LEARNED = replace(_LOGNORM, prior="learned")
_RECON1 = replace(_LEARNED, beta_r=1.0)
_GENES2000 = replace(_RECON1, n_top_genes=2000)
# "lognorm_fast" with the genes ensemble at lr 5e-4 (the components keep 2e-3; 0046)
_FAST_LR5E4 = replace(
    RECIPES["lognorm_fast"],
    ensembles=(Ensemble("genes", lr=5e-4), Ensemble("pcs", n_pcs=50, lr=2e-3)),
)
# its ensembles with the genes trained 2,000 iterations (0049, 0050)
_GENES_2000_ITERATIONS = (
    Ensemble("genes", lr=5e-4, max_iter=2000),
    Ensemble("pcs", n_pcs=50, lr=2e-3),
)
CLUSTERGAN_VARIANTS: dict[str, Recipe] = {
    "default": _DEFAULT,
    "paper": _PAPER,
    "lognorm": _LOGNORM,
    "paper_learned": replace(_PAPER, prior="learned"),
    "lognorm_learned": _LEARNED,
    "lognorm_learned_leiden": replace(_LEARNED, assign="leiden"),
    "lognorm_learned_recon1": _RECON1,
    "lognorm_learned_recon10": replace(_RECON1, beta_r=10.0),
    "lognorm_learned_recon1_genes2000": _GENES2000,
    "lognorm_learned_recon1_genes5000": replace(_RECON1, n_top_genes=5000),
    # a learned prior that keeps every mode at >= 0.5 / K (the recipe's floor: 0.1 / K)
    "lognorm_learned_recon1_genes2000_floor05": replace(_GENES2000, prior_floor=0.5),
    # twice the iterations in bf16 (about 1.4x the time of 4,000 in float32)
    "lognorm_learned_recon1_genes2000_bf16_8000": replace(
        _GENES2000, precision="bf16", max_iter=8000
    ),
    # the genes at 20x the paper's learning rate for half the iterations ("genes_fast")
    "lognorm_learned_recon1_genes2000_lr2e3_2000": replace(_GENES2000, ensembles=(_GENES_FAST,)),
    # the cells' 50 principal components instead of the genes: the default's "pcs" ensemble
    "lognorm_learned_recon1_genes2000_pcs50_lr2e3_2000": replace(_DEFAULT, ensembles=(_PCS,)),
    "lognorm_learned_recon1_genes2000_pcs50_lr1e3": replace(
        _GENES2000, ensembles=(Ensemble("pcs", n_pcs=50, lr=1e-3),)
    ),
    # the genes at 10x and 5x the paper's learning rate
    "lognorm_learned_recon1_genes2000_lr1e3": replace(_GENES2000, lr=1e-3),
    "lognorm_learned_recon1_genes2000_lr5e4": replace(_GENES2000, lr=5e-4),
    "lognorm_learned_recon1_leiden": replace(_RECON1, assign="leiden"),
    # the default's "genes" ensemble alone (max(4,000, 500 K) iterations)
    "lognorm_learned_recon1_genes2000_perk": replace(_DEFAULT, ensembles=(_GENES,)),
    # the default recipe (the name its entries have in the result files)
    "auto": _DEFAULT,
    # the default with 10 replicas per ensemble (20 pooled)
    "auto_r10": replace(_DEFAULT, n_runs=10),
    # the default's ensembles and "genes_fast" as a third, all 15 replicas pooled
    "auto_lr": replace(_DEFAULT, ensembles=(_GENES, _PCS, _GENES_FAST)),
    # the default with the genes at 4,000 iterations for every K
    "auto_4000": replace(_DEFAULT, max_iter_per_cluster=0),
    # RECIPES["lognorm_fast"]: both ensembles at lr 2e-3, 2 critic steps, 1,000 iterations
    "fast": RECIPES["lognorm_fast"],
    # "lognorm_fast" with its budget growing by 100 iterations per cluster beyond K = 10
    "fast_k100": replace(RECIPES["lognorm_fast"], max_iter_per_cluster=100),
    # candidates for a faster default, written as changes of the default: "fast_c2" trains the
    # same networks as "fast", "fast_c1" (1 critic step) was dropped after one dataset
    "fast_c2": replace(
        _DEFAULT,
        ensembles=(
            Ensemble("genes", lr=2e-3, max_iter=1000, n_critic=2),
            Ensemble("pcs", n_pcs=50, lr=2e-3, max_iter=1000, n_critic=2),
        ),
    ),
    # "lognorm_fast" with each ensemble's learning rate falling linearly from 2e-3 to the
    # paper's 1e-4 over its 1,000 iterations (decision 0046)
    "fast_decay": replace(RECIPES["lognorm_fast"], lr_final=1e-4),
    "fast_genes_lr5e4": _FAST_LR5E4,
    # "fast_genes_lr5e4" in bf16 products, the genes trained twice as long (2,000 iterations),
    # which bf16 pays for on a CPU with native bf16 (decision 0049)
    "fast_bf16": replace(_FAST_LR5E4, precision="bf16", ensembles=_GENES_2000_ITERATIONS),
    # probes of 0049's early stop: "fast_genes_lr5e4" in bf16 products (its only change), and
    # "fast_bf16" in float32 products (its genes' 2,000 iterations only)
    "fast_genes_lr5e4_bf16": replace(_FAST_LR5E4, precision="bf16"),
    "fast_genes_lr5e4_2000": replace(_FAST_LR5E4, ensembles=_GENES_2000_ITERATIONS),
    # probes of the input genes (decision 0050): "fast_genes_lr5e4" on the 1,000 most variable
    # genes, at its 1,000 genes iterations and at 2,000, and on the 3,000 most variable
    "fast_hvg1000": replace(_FAST_LR5E4, n_top_genes=1000),
    "fast_hvg1000_2000": replace(_FAST_LR5E4, n_top_genes=1000, ensembles=_GENES_2000_ITERATIONS),
    "fast_hvg3000": replace(_FAST_LR5E4, n_top_genes=3000),
    # probes of the latent size (decision 0051): "fast_genes_lr5e4" with zn of 10 and of 60
    # dimensions (the default: 30)
    "fast_zn10": replace(_FAST_LR5E4, n_latent=10),
    "fast_zn60": replace(_FAST_LR5E4, n_latent=60),
    # probes of the genes ensemble alone (decision 0046): "lognorm_fast"'s genes, the same
    # cost with 5 critic steps, and its budget at lower learning rates
    "genes_fast_c2": replace(
        _DEFAULT, ensembles=(Ensemble("genes", lr=2e-3, max_iter=1000, n_critic=2),)
    ),
    "genes_fast_c5": replace(
        _DEFAULT, ensembles=(Ensemble("genes", lr=2e-3, max_iter=500, n_critic=5),)
    ),
    "genes_lr5e4_c2": replace(
        _DEFAULT, ensembles=(Ensemble("genes", lr=5e-4, max_iter=1000, n_critic=2),)
    ),
    "genes_lr1e4_1000": replace(_DEFAULT, ensembles=(Ensemble("genes", max_iter=1000),)),
    # "lognorm_fast"'s genes with the learned prior re-estimated every 125 iterations: the 6
    # re-estimates a run of 4,000 gets at the default's 500
    "genes_fast_c2_p125": replace(
        _DEFAULT,
        prior_update_every=125,
        ensembles=(Ensemble("genes", lr=2e-3, max_iter=1000, n_critic=2),),
    ),
    # three ensembles of 3 replicas at "lognorm_fast"'s cost (9 replicas instead of 10): the
    # genes at lr 5e-4 and at 2e-3 (each better on different datasets, 0046) and the components
    "fast_mixed_r3": replace(
        RECIPES["lognorm_fast"],
        n_runs=3,
        ensembles=(
            Ensemble("genes", lr=5e-4),
            Ensemble("genes_fast"),
            Ensemble("pcs", n_pcs=50),
        ),
    ),
    # the fast budget spent on more replicas of the five times cheaper components (decision
    # 0054): 3 replicas of the genes at lr 5e-4 and 15 of the 50 components at lr 2e-3
    "fast_g3_p15": replace(
        RECIPES["lognorm_fast"],
        ensembles=(Ensemble("genes", lr=5e-4, n_runs=3), Ensemble("pcs", n_pcs=50, n_runs=15)),
    ),
    # probes of the components ensemble alone: "lognorm_fast"'s (1,000 iterations, 2 critic
    # steps), twice its iterations, and the default's (2,000 iterations, 5 critic steps)
    "pcs_fast_c2": replace(
        _DEFAULT, ensembles=(Ensemble("pcs", n_pcs=50, lr=2e-3, max_iter=1000, n_critic=2),)
    ),
    "pcs_2000_c2": replace(
        _DEFAULT, ensembles=(Ensemble("pcs", n_pcs=50, lr=2e-3, max_iter=2000, n_critic=2),)
    ),
    "pcs_default": replace(_DEFAULT, ensembles=(_PCS,)),
    "fast_c1": replace(
        _DEFAULT,
        ensembles=(
            Ensemble("genes", lr=2e-3, max_iter=1500, n_critic=1),
            Ensemble("pcs", n_pcs=50, lr=2e-3, max_iter=2000, n_critic=1),
        ),
    ),
}


def prior_modes(model: GANEnsemble, min_share: float = 0.01) -> dict[str, Any]:
    """What a replica's prior and encoder make of the K zc modes (no labels used).

    ``weights``: the prior's cluster proportions at the end of training (uniform unless
    learned); ``effective``: their effective number, ``1 / sum(w ** 2)`` (K when uniform);
    ``occupied``: modes that are the most likely zc of at least ``min_share`` of the training
    cells (the encoder's argmax).
    """
    w = model.prior.weights.detach().cpu().double().numpy()
    share = np.bincount(model.proba_.argmax(1), minlength=model.n_clusters) / len(model.proba_)
    return {
        "weights": np.round(w, 4).tolist(),
        "effective": round(float(1.0 / np.sum(w**2)), 2),
        "occupied": int((share >= min_share).sum()),
    }


def build_model(
    recipe: Recipe, k: int, random_state: int, device: str, n_vars: int
) -> scg.ClusterGAN:
    """An untrained :class:`scgan_cluster.ClusterGAN` that trains ``recipe`` (its genes capped at
    ``n_vars``): the recipe's fields that differ from the shipped recipe of its name, passed as
    settings. A recipe that settings cannot express (``resolve`` would rewrite it) is refused."""
    recipe = replace(recipe, n_top_genes=min(recipe.n_top_genes, n_vars))
    base = RECIPES[recipe.name]
    changed = {
        f.name: getattr(recipe, f.name)
        for f in dataclasses.fields(Recipe)
        if f.name in MODEL_ARGS and getattr(recipe, f.name) != getattr(base, f.name)
    }
    model = scg.ClusterGAN(
        k, flavor=recipe.name, random_state=random_state, device=device, **changed
    )
    if model.recipe != recipe:
        raise ValueError(
            f"ClusterGAN(flavor={recipe.name!r}, **{changed}) trains {model.recipe}, not {recipe}"
        )
    return model


def knn_agreement(latent: np.ndarray, labels: np.ndarray, k: int = 15) -> float:
    """Share of cells whose label the majority of their ``k`` nearest other cells carries."""
    nn = NearestNeighbors(n_neighbors=k + 1).fit(latent)
    idx = nn.kneighbors(latent, return_distance=False)[:, 1:]
    votes = labels[idx]
    counts = np.stack([(votes == c).sum(axis=1) for c in range(int(labels.max()) + 1)], axis=1)
    return float((counts.argmax(axis=1) == labels).mean())


def label_agreement(latent: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """How well one set of outputs describes ``labels``.

    ``proba_argmax``: the share of cells whose most likely column of ``proba`` is their label;
    ``knn15``: the share whose label a 15-nearest-neighbour vote on ``latent`` reproduces (the
    cell itself excluded).
    """
    return {
        "proba_argmax": float((proba.argmax(axis=1) == labels).mean()),
        "knn15": knn_agreement(latent, labels),
    }


def medoid_outputs(model: scg.ClusterGAN) -> tuple[np.ndarray, np.ndarray]:
    """zn and softmax(zc) of the replica that agrees most with the others inside the ensemble
    whose replicas agree more: what the package wrote before its outputs were one clustering's."""
    scores = [float(np.mean(m.selection_scores_)) for m in model.members_]
    kept = model.members_[int(np.argmax(scores))]
    rep = kept.replicas[int(kept.selected_run_)]
    return rep.latent_, rep.proba_


def coherence(model: scg.ClusterGAN) -> dict[str, dict[str, float]]:
    """Do a fitted model's outputs on its training cells describe its labels?

    :func:`label_agreement`, rounded to 4 decimals, of ``after``: the model's own ``latent_`` and
    ``proba_`` (what ``tl.clustergan`` writes), and of ``before``: :func:`medoid_outputs`.
    """
    outputs = {"before": medoid_outputs(model), "after": (model.latent_, model.proba_)}
    return {
        name: {
            key: round(value, 4)
            for key, value in label_agreement(latent, proba, model.labels_).items()
        }
        for name, (latent, proba) in outputs.items()
    }


def clustergan_replicas(
    variant: str,
    adata: AnnData,
    truth: np.ndarray,
    split,
    k: int,
    seed0: int,
    *,
    fits: int = 1,
    device: str = "cpu",
    dump: Path | None = None,
) -> list[dict[str, Any]]:
    """``fits`` fits of the recipe ``CLUSTERGAN_VARIANTS[variant]`` on the training cells.

    Each fit is one :class:`scgan_cluster.ClusterGAN` (every ensemble of the recipe, its
    replicas trained as one vectorized pass; R: the most replicas of one ensemble). Fit e has
    ``random_state = seed0 + e * R`` and replica r of each ensemble the seed
    ``seed0 + e * R + r`` (the same random stream as a separate network with that seed), so no
    two fits share a replica. The kept ensemble of a fit is the one whose replicas agree most
    (highest mean ARI between them; the first on a tie; no labels used). Returns three method
    entries: ``clustergan_<variant>`` (every replica of the kept ensemble scored as its own run:
    mean +- sd and the paper's best-of-R by validation purity), ``..._medoid`` (per fit, the
    kept ensemble's replica that agrees most with the others, ``selected_run_``: a label-free
    pick) and ``..._consensus`` (per fit, the kept ensemble's matched majority vote, its own
    ``labels_`` and ``predict``); a recipe of two or more ensembles adds ``..._pooled`` (per fit,
    every replica of every ensemble in one agreement-weighted vote, ``Pool`` with
    ``method="vote"``) and ``..._linkage`` (the same replicas pooled by co-association linkage,
    ``method="linkage"``). A pool of the recipe's own method is the model's (its ``labels_`` and
    ``predict``); the other is fitted on the same replicas' labels of the training cells.
    Preprocessing is fitted on the training cells and replayed on validation and test cells;
    training cells are scored by the labels of training. Each run records the ``device`` it
    trained on. With ``dump`` (a folder), each fit also writes ``<variant>_<random_state>.npz``
    there (:func:`dump_fit`): every ensemble's replica labels and latents on the three splits,
    for label-free readouts scored afterwards (``benchmarks/scrna_readout.py``).
    """
    recipe = CLUSTERGAN_VARIANTS[variant]
    per_ensemble = [recipe.replicas_of(ens) for ens in recipe.ensembles]
    n_rep = max(per_ensemble)
    if min(per_ensemble) < 2:
        raise ValueError(f"{variant!r}: the replicas are compared, so n_runs must be >= 2")
    data = {s: adata[split[s]].copy() for s in SPLITS}
    truths = {s: truth[split[s]] for s in SPLITS}
    name = f"clustergan_{variant}"
    replicas, medoids, consensus, pooled, linked = [], [], [], [], []
    selection, seconds_all = [], []
    for e in range(fits):
        model = build_model(recipe, k, seed0 + e * n_rep, device, adata.n_vars)
        start = time.perf_counter()
        model.fit(data["train"])
        seconds = time.perf_counter() - start
        seconds_all.append(round(seconds, 2))
        agreements = [float(np.mean(m.selection_scores_)) for m in model.members_]
        chosen = int(np.argmax(agreements))
        kept = model.members_[chosen]

        def run(seed: int, labels: dict[str, np.ndarray], sec=seconds) -> dict:
            return {
                "seed": seed,
                "device": device,
                "seconds": round(sec / n_rep, 2),
                **{s: score(truths[s], labels[s]) for s in ("val", "test", "train")},
            }

        def predicted(fitted: Any) -> dict[str, np.ndarray]:
            """A fitted model's labels: of training itself, and predicted for the others."""
            return {"train": fitted.labels_} | {s: fitted.predict(data[s]) for s in SPLITS[1:]}

        runs = [run(rep.random_state, predicted(rep)) for rep in kept.replicas]
        for r in runs:
            print(
                f"  {name:<28} seed {r['seed']}: test "
                + " ".join(f"{key} {r['test'][key]:.3f}" for key in ("acc", "nmi", "ari"))
            )
        if dump is not None:
            dump_fit(dump / f"{variant}_{model.random_state}.npz", model, chosen, data, truths)
        medoid = int(kept.selected_run_)
        replicas += runs
        medoids.append(runs[medoid])
        consensus.append(run(model.random_state, predicted(kept)))
        if len(model.members_) > 1:  # every ensemble's replicas pooled, both ways
            for method, out in (("vote", pooled), ("linkage", linked)):
                if model.pool_.method == method:
                    labels = predicted(model)
                else:
                    runs_of = {"train": model.labels_runs_} | {
                        s: np.stack([rep.predict(data[s]) for rep in model.replicas], axis=1)
                        for s in SPLITS[1:]
                    }
                    pool = Pool.fit(
                        model.labels_runs_,
                        k,
                        model.weights_,
                        method=method,
                        max_cells=recipe.pool_max_cells,
                        random_state=model.random_state,
                    )
                    labels = {s: pool.predict(runs_of[s]) for s in SPLITS}
                out.append(run(model.random_state, labels))
        selection.append(
            {
                "random_state": model.random_state,
                "medoid": medoid,
                "best_by_val_purity": int(np.argmax([r["val"]["purity"] for r in runs])),
                "agreement": np.round(kept.selection_scores_, 4).tolist(),
                "mean_confidence": round(float(kept.confidence_.mean()), 4),
                "coherence": coherence(model),
                "prior_modes": [prior_modes(rep) for rep in kept.replicas],
                **(
                    {}
                    if len(model.members_) == 1
                    else {
                        "candidates": [ens.name for ens in recipe.ensembles],
                        "candidate_agreement": np.round(agreements, 4).tolist(),
                        "chosen": recipe.ensembles[chosen].name,
                        "pooled_weights": np.round(model.weights_, 4).tolist(),
                    }
                ),
            }
        )
    info = {
        "iterations": recipe.budget(k, recipe.ensembles[0]) if len(recipe.ensembles) == 1 else None,
        "replicas_per_fit": n_rep,
        "fit_seconds_all_replicas": seconds_all,
        # the kept ensemble's network settings and the preprocessing
        "params": {
            **kept.params,
            "flavor": model.recipe_.preprocessing,
            "n_top_genes": model.fit_params_["n_top_genes"],
        },
    }
    entries = [
        {"method": name, **aggregate(replicas), **info, "selection": selection},
        {"method": name + "_medoid", **aggregate(medoids), **info},
        {"method": name + "_consensus", **aggregate(consensus), **info},
    ]
    if pooled:
        entries.append({"method": name + "_pooled", **aggregate(pooled), **info})
        entries.append({"method": name + "_linkage", **aggregate(linked), **info})
    return entries


def dump_fit(
    path: Path,
    model: scg.ClusterGAN,
    chosen: int,
    data: dict[str, AnnData],
    truth: dict[str, np.ndarray],
) -> None:
    """Write one fit's replicas (every ensemble) to ``path`` (``.npz``) for later readouts.

    Keys: ``labels_<c>_<split>`` ``(n_cells, R)`` each replica's labels (its own ``assign``) of
    ensemble c, ``latent_<c>_<split>`` ``(n_cells, R, n_latent + K)`` each replica's encoder
    latent (zn, softmax zc), ``truth_<split>`` the labels of truth (for scoring only),
    ``agreement`` every ensemble's replica agreement, ``chosen`` the kept ensemble,
    ``n_clusters`` K, ``random_state`` the fit's seed.
    """
    arrays: dict[str, np.ndarray] = {
        "agreement": np.asarray(
            [np.mean(m.selection_scores_) for m in model.members_], dtype=np.float64
        ),
        "chosen": np.asarray(chosen),
        "n_clusters": np.asarray(model.n_clusters),
        "random_state": np.asarray(model.random_state),
    }
    for c, member in enumerate(model.members_):
        reps = member.replicas
        for s, cells in data.items():
            arrays[f"labels_{c}_{s}"] = np.stack(
                [rep.labels_ if s == "train" else rep.predict(cells) for rep in reps], axis=1
            ).astype(np.int16)
            arrays[f"latent_{c}_{s}"] = np.stack(
                [
                    np.hstack([rep.latent_, rep.proba_])
                    if s == "train"
                    else rep.get_latent_representation(cells, representation="full")
                    for rep in reps
                ],
                axis=1,
            ).astype(np.float32)
    for s, t in truth.items():
        arrays[f"truth_{s}"] = np.asarray(t).astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


# the entries a variant adds beside its replicas' (clustergan_replicas), in table order
ENTRY_SUFFIXES = ("_medoid", "_consensus", "_pooled", "_linkage")


def append_runs(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old``'s entry with ``new``'s runs added and the statistics recomputed over all of them.

    Both must be the same method with the same settings (``params`` but the first seed and,
    for a recipe of several ensembles, the settings in which its ensembles differ;
    ``replicas_per_fit``) and no seed in common; per-fit records (``selection``,
    ``fit_seconds_all_replicas``) are concatenated, and ``machines`` lists every machine the
    runs were measured on.
    """
    name = old["method"]
    if new["method"] != name:
        raise ValueError(f"cannot append runs of {new['method']!r} to {name!r}")

    per_fit = {"random_state", *_per_fit_keys(name)}  # may differ from fit to fit

    def settings(entry: dict[str, Any]) -> tuple:
        params = {k: v for k, v in entry.get("params", {}).items() if k not in per_fit}
        return params, entry.get("replicas_per_fit")

    if settings(old) != settings(new):
        raise ValueError(
            f"{name}: the settings differ ({settings(old)} vs {settings(new)}); not appended"
        )
    common = {r["seed"] for r in old["runs"]} & {r["seed"] for r in new["runs"]}
    if common:
        raise ValueError(
            f"{name}: seeds {sorted(common)} are already in the result file; pass a --seed0 "
            "whose seeds are new, or leave out --append to replace the entry"
        )
    merged = {**old, **aggregate(old["runs"] + new["runs"])}
    for key in ("selection", "fit_seconds_all_replicas"):
        if key in old or key in new:
            merged[key] = [*_as_list(old.get(key)), *_as_list(new.get(key))]
    machines = [*old.get("machines", [old["machine"]] if "machine" in old else [])]
    if "machine" in new and new["machine"] not in machines:
        machines.append(new["machine"])
    if len(machines) > 1:
        merged["machines"] = machines
    return merged


def update_result(old: dict[str, Any], new: dict[str, Any], append: bool) -> dict[str, Any]:
    """``new`` with the methods of ``old`` (the same data and split) that ``new`` did not rerun.

    A method in both is ``new``'s, or with ``append`` its runs added to ``old``'s
    (:func:`append_runs`). Every method keeps the machine of the file it came from; the
    commands of both are listed.
    """
    for res in (old, new):
        for m in res["methods"]:
            m.setdefault("machine", res["machine"])
    earlier = {m["method"]: m for m in old["methods"]}
    methods = new["methods"]
    if append:
        methods = [
            append_runs(earlier[m["method"]], m) if m["method"] in earlier else m for m in methods
        ]
    rerun = {m["method"] for m in methods}
    methods = [m for m in old["methods"] if m["method"] not in rerun] + methods
    order = [*METHODS, *(f"clustergan_{v}" for v in CLUSTERGAN_VARIANTS)]
    methods.sort(key=lambda m: _method_rank(m["method"], order))
    commands = [*np.atleast_1d(old["command"]).tolist()]
    commands += [c for c in np.atleast_1d(new["command"]).tolist() if c not in commands]
    return {**new, "methods": methods, "command": commands}


def data_mismatch(
    result: dict[str, Any], split: dict[str, int], n_obs: int, n_clusters: int | None = None
) -> str | None:
    """What of ``split`` (sizes and seed), ``n_obs`` and (if given) ``n_clusters`` a result file
    does not share (its runs are then of other data or another split and cannot be pooled), or
    ``None``."""
    if result.get("n_obs") != n_obs:
        return "data (n_obs)"
    if n_clusters is not None and result.get("n_clusters") != n_clusters:
        return "data (n_clusters)"
    if result.get("split") != split:
        return "split"
    return None


def _per_fit_keys(method: str) -> set[str]:
    """Settings in which the ensembles of ``method``'s recipe differ (an entry of a recipe of
    several ensembles records the params of the ensemble each fit kept)."""
    base = method.removeprefix("clustergan_")
    for suffix in ENTRY_SUFFIXES:
        base = base.removesuffix(suffix)
    recipe = CLUSTERGAN_VARIANTS.get(base)
    if recipe is None or len(recipe.ensembles) < 2:
        return set()
    own = [f.name for f in dataclasses.fields(Ensemble) if f.name != "name"]
    return {f for f in own if len({getattr(e, f) for e in recipe.ensembles}) > 1}


def _as_list(value: Any) -> list:
    """``value`` as a list (``None`` -> ``[]``; one selection dict -> a list of it)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _method_rank(name: str, order: list[str]) -> tuple[int, int]:
    """Methods in ``order``; a variant's medoid, consensus and pooled entries right after it."""
    for rank, suffix in enumerate(ENTRY_SUFFIXES, start=1):
        if name.endswith(suffix) and name.removesuffix(suffix) in order:
            return order.index(name.removesuffix(suffix)), rank
    return order.index(name), 0


METHODS: dict[str, Callable[..., Any]] = {
    "clustergan": lambda args, truth: ClusterGANMethod(args.max_iter, args.curve_every, truth),
    "paper_kmeans": lambda args, truth: method_paper_kmeans,
    "pca_kmeans": lambda args, truth: method_pca_kmeans,
    "pca_gmm": lambda args, truth: method_pca_gmm,
    "scanpy_leiden": lambda args, truth: method_scanpy_leiden,
    "scvi_kmeans": lambda args, truth: method_scvi_kmeans,
}
TRANSDUCTIVE = {
    "scanpy_leiden": "all cells clustered together",
    "scvi_kmeans": "latent of all cells",
}


def checkpoint_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each recorded iteration: best-of-R by validation purity and mean over runs, on test."""
    if not runs or not runs[0].get("curve"):
        return []
    out = []
    for i, point in enumerate(runs[0]["curve"]):
        per_run = [
            {
                "seed": r["seed"],
                "seconds": r["curve"][i]["train_seconds"],
                "val": r["curve"][i]["val"],
                "test": r["curve"][i]["test"],
            }
            for r in runs
        ]
        agg = aggregate(per_run)
        agg.pop("runs")
        out.append({"iteration": point["iteration"], **agg})
    return out


def plot_curves(result: dict[str, Any], path: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    cg = next(m for m in result["methods"] if m["method"] == "clustergan")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), sharey="col")
    for row, xkey in enumerate(("iteration", "train_seconds")):
        for ax, key in zip(axes[row], ("acc", "nmi", "ari"), strict=True):
            for run in cg["runs"]:
                xs = [p[xkey] for p in run["curve"]]
                ax.plot(
                    xs,
                    [p["test"][key] for p in run["curve"]],
                    lw=1,
                    alpha=0.6,
                    label=f"seed {run['seed']}",
                )
            for m in result["methods"]:
                if m["method"] != "clustergan":
                    ax.axhline(m["mean"][key], ls="--", lw=0.8, color="grey")
                    ax.text(ax.get_xlim()[0], m["mean"][key], m["method"], fontsize=6, va="bottom")
            ax.set_xlabel("generator iterations" if xkey == "iteration" else "training seconds")
            ax.set_title(f"test {key.upper()}")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(
        f"{result['dataset']} ({result['machine']['cpu']}, {result['machine']['torch_threads']} threads)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def write_table(result: dict[str, Any], path: Path) -> str:
    """Write the markdown table of a result file's methods (test split) to ``path``; return it."""
    methods = result["methods"]
    table = markdown_table(methods)
    cg_iters = next((m["iterations"] for m in methods if m["method"] == "clustergan"), "no")
    machine = result["machine"]
    path.write_text(
        f"{result['dataset']}; test split ({result['split']['test']} cells); "
        f"ClusterGAN {cg_iters} generator iterations; {machine['cpu']}, "
        f"torch {machine['torch']}, {machine['torch_threads']} threads.\n\n{table}\n"
    )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="zheng2017_sorted8")
    parser.add_argument("--h5ad", type=Path, help="any AnnData of raw counts instead of --dataset")
    parser.add_argument("--label-key", default="label")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="seeds of the baselines and of clustergan (a --clustergan variant trains its "
        "recipe's n_runs replicas per fit)",
    )
    parser.add_argument(
        "--n-top-genes",
        type=int,
        default=720,
        help="genes of the paper's preprocessing (paper_kmeans, clustergan; a --clustergan "
        "variant keeps its recipe's)",
    )
    parser.add_argument("--seed0", type=int, default=0)
    parser.add_argument(
        "--n-clusters",
        type=int,
        help="K every method clusters into (default: the number of labelled classes); another K "
        "needs --tag, so that its results go to their own file",
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--max-iter",
        type=int,
        default=RECIPES["paper"].max_iter,
        help="generator iterations of clustergan (a --clustergan variant trains its recipe's)",
    )
    parser.add_argument(
        "--curve-every", type=int, default=0, help="metrics along training every N iterations"
    )
    parser.add_argument("--methods", nargs="*", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument(
        "--clustergan",
        nargs="*",
        choices=sorted(CLUSTERGAN_VARIANTS),
        default=[],
        help="recipes of CLUSTERGAN_VARIANTS, each fitted --fits times",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="--clustergan: where the replicas train (cpu, cuda, ...; recorded with each run)",
    )
    parser.add_argument(
        "--fits",
        "--ensembles",
        dest="fits",
        type=int,
        default=1,
        help="--clustergan: fits per variant (seeds do not overlap), for the sd of consensus",
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="--clustergan: also write each fit's replica labels and latents to this folder "
        "(for benchmarks/scrna_readout.py)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the runs to an earlier entry of the same name in the result file (its seeds "
        "must not overlap) instead of replacing it",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="overwrite the result file instead of updating it"
    )
    args = parser.parse_args(argv)
    scg.settings.progress_bar = False
    sc.settings.verbosity = 0

    if args.h5ad is not None:
        adata = ad.read_h5ad(args.h5ad)
        name, description = args.h5ad.stem, str(args.h5ad)
    else:
        loader, description = DATASETS[args.dataset]
        adata = loader(args.data_dir)
        name = args.dataset
    if args.label_key not in adata.obs:
        parser.error(f"obs has no column {args.label_key!r}; pass --label-key.")
    truth = np.asarray(adata.obs[args.label_key].astype(str))
    n_classes = len(np.unique(truth))
    k = n_classes if args.n_clusters is None else args.n_clusters
    if k < 2:
        parser.error(f"--n-clusters must be at least 2, got {k}")
    if k != n_classes and not args.tag:
        parser.error(
            f"--n-clusters {k} is not the {n_classes} classes of the labels: pass --tag (e.g. "
            f"--tag _k{k}) so that these results do not mix with the others"
        )
    split = paper_split(adata.n_obs, seed=args.split_seed)
    print(
        f"{name}: {adata.n_obs} cells x {adata.n_vars} genes, K={k} ({n_classes} classes); "
        f"split {len(split['train'])}/{len(split['val'])}/{len(split['test'])} (train/val/test)"
    )
    stem = f"scrna_{name}{args.tag}"
    path = args.out / f"{stem}.json"
    split_info = {s: len(v) for s, v in split.items()} | {"seed": args.split_seed}
    if args.append and path.exists() and not args.fresh:  # before any fit, not after
        differs = data_mismatch(json.loads(path.read_text()), split_info, adata.n_obs, k)
        if differs:
            parser.error(f"{path} holds another {differs}; nothing to append to (see --tag)")
    cache = Cache(adata, args.n_top_genes)
    seeds = list(range(args.seed0, args.seed0 + args.runs))
    methods = []
    for mname in args.methods:
        if mname == "scvi_kmeans":
            try:
                import scvi  # noqa: F401
            except ImportError:
                print("  scvi-tools is not importable here: scvi_kmeans skipped")
                continue
        method = METHODS[mname](args, truth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_method(mname, method, cache, truth, split, k, seeds)
        res["fit"] = TRANSDUCTIVE.get(mname, "fit on train, predict val/test")
        if mname == "clustergan":
            res["iterations"] = args.max_iter
            res["checkpoints"] = checkpoint_table(res["runs"])
        methods.append(res)
    for variant in args.clustergan:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            methods += clustergan_replicas(
                variant,
                adata,
                truth,
                split,
                k,
                args.seed0,
                fits=args.fits,
                device=args.device,
                dump=args.dump,
            )

    result = {
        "script": "benchmarks/scrna.py",
        "command": "python benchmarks/scrna.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": description,
        "n_obs": adata.n_obs,
        "n_vars": adata.n_vars,
        "n_clusters": k,
        "n_classes": n_classes,
        "split": split_info,
        "nmi": "nmi: arithmetic mean (scikit-learn >= 0.22 default); nmi_geometric: the 2018 code's",
        "machine": machine(),
        "methods": methods,
    }
    if path.exists() and not args.fresh:
        # keep the methods of an earlier run on the same data and split that were not rerun now
        old = json.loads(path.read_text())
        if not data_mismatch(old, result["split"], result["n_obs"]):
            result = update_result(old, result, append=args.append)
    write_json(path, result)
    print(write_table(result, args.out / f"{stem}.md"))
    if any(m["method"] == "clustergan" and m.get("checkpoints") for m in result["methods"]):
        plot_curves(result, args.out / f"{stem}_curve.png")


if __name__ == "__main__":
    main()
