"""``tl.clustergan``: AnnData in, clusters and latent out, like ``sc.tl.leiden``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from scgan_cluster._docs import doc_params
from scgan_cluster._settings import logger
from scgan_cluster._validation import check_adata
from scgan_cluster.adapters import image_shape_of, is_prepared
from scgan_cluster.adapters._inputs import _prepared_columns
from scgan_cluster.model import (
    ENSEMBLES,
    PCS_SETTINGS,
    POOL_METHODS,
    RECIPES,
    ClusterGAN,
    fit_by_agreement,
    pool_replicas,
    recipe_max_iter,
)
from scgan_cluster.train._loop import PRIOR_FLOOR

__all__ = ["clustergan"]


@doc_params
def clustergan(
    adata: AnnData,
    n_clusters: int = 8,
    *,
    n_latent: int | None = None,
    layer: str | None = None,
    preprocess: bool = True,
    n_top_genes: int | None = None,
    max_iter: int | None = None,
    batch_size: int | None = None,
    assign: Literal["kmeans", "argmax", "leiden"] = "kmeans",
    sigma: float | None = None,
    beta_n: float | None = None,
    beta_c: float | None = None,
    beta_r: float | None = None,
    gp_weight: float | None = None,
    n_critic: int | None = None,
    lr: float | None = None,
    architecture: str = "auto",
    random_state: int = 0,
    device: str = "auto",
    key_added: str = "clustergan",
    copy: bool = False,
    n_runs: int | None = None,
    flavor: Literal["lognorm", "paper"] = "lognorm",
    prior: Literal["uniform", "learned"] | None = None,
    prior_floor: float | None = None,
    combine: Literal["consensus", "select"] = "consensus",
    precision: Literal["fp32", "bf16"] = "fp32",
    compile: bool = False,
    n_pcs: int | Literal["auto"] | None = None,
    pool_candidates: bool | None = None,
    pool_method: Literal["vote", "linkage"] | None = None,
    candidates: Sequence[str] | None = None,
) -> AnnData | None:
    """Cluster cells with ClusterGAN (Mukherjee et al., AAAI 2019).

    Trains the paper's MLP ClusterGAN for single-cell counts (WGAN-GP, prior zn ~ N(0, 0.1^2 I)
    joined with a one-hot zc over K clusters, and an encoder trained to recover both) and
    clusters the cells in the encoder's latent space. An AnnData of flattened images with
    ``uns["image_shape"]`` (see :mod:`scgan_cluster.datasets`) gets the paper's conv networks
    instead, no count preprocessing and the paper's training settings.

    ``flavor`` chooses the recipe. ``"lognorm"`` (default) normalises library size, keeps 2,000
    highly variable genes, learns the cluster proportions of the prior, adds a reconstruction
    term on real cells (``beta_r=1``, so that the encoder is trained on real cells too, not only
    on generated ones), takes the consensus of 5 replicas trained together for 4,000
    iterations each, and trains the same on the cells' 50 principal components, keeping the
    latent of whichever ensemble's replicas agree more (``n_pcs="auto"``) and labelling the
    cells by pooling all 10 replicas (``pool_candidates=True``): average linkage of how often
    the replicas put two cells together, cut at ``n_clusters`` (``pool_method="linkage"``)
    (:data:`scgan_cluster.model.RECIPES`); on the staged count data it
    clusters better than the paper's recipe (see the README's benchmark). ``"paper"`` is the
    paper's recipe: its preprocessing, a uniform prior and one model (8,000 iterations here; the
    paper trained 100,000). Settings passed explicitly override the recipe's.

    Network and optimiser hyperparameters left at ``None`` take the paper's value for the
    architecture in both recipes (for the 10x_73k ``"mlp"``: zn 30, batch 64, sigma 0.1,
    beta_n = beta_c = 10, lr 1e-4, 5 critic steps, penalty 10).

    Parameters
    ----------
    {doc_adata}
    n_clusters
        K, the number of clusters.
    n_latent
        Dimension of the continuous latent zn (paper, 10x_73k: 30).
    {doc_layer}
    preprocess
        ``True``: data prepared by :func:`scgan_cluster.pp.preprocess` (for the same ``layer``) are
        used as they are; anything else must be raw counts and gets the preprocessing of
        ``flavor`` on an internal copy, leaving ``adata`` as it was. ``False``: the values are
        used as they are (scale them to about [0, 1] first).
    n_top_genes
        Genes kept when the preprocessing is applied here. ``None``: the recipe's
        (``"lognorm"``: 2,000, scanpy's usual number of highly variable genes, or every gene of
        a smaller matrix; ``"paper"``: the paper's 720).
    max_iter
        Generator iterations, each after ``n_critic`` critic steps. ``None``: the recipe's
        (:func:`scgan_cluster.model.recipe_max_iter`; ``"lognorm"``: 4,000 per replica up to
        8 clusters and 500 per cluster above, e.g. 8,000 for 16; ``"paper"``: 8,000). The
        paper trained 100,000 (about an hour per model on a 2-core CPU); see the Notes.
    batch_size
        Minibatch size (paper: 64).
    assign
        ``"kmeans"``: the paper's rule, KMeans with K clusters on the encoder's full latent (zn
        joined with softmax(zc)). ``"argmax"``: the encoder's most likely zc mode.
        ``"leiden"``: leiden on the 15-nearest-neighbour graph of zn, at the resolution that
        gives K clusters (or the closest number below K); with ``n_runs > 1`` each replica's
        leiden labels enter the consensus.
    sigma
        Standard deviation of zn in the prior (paper: 0.1).
    beta_n, beta_c
        Weights of the zn cycle loss and of the zc cross-entropy (paper: 10 and 10).
    beta_r
        Weight of a reconstruction term ||x - G(E(x))||^2 on real cells (not in the paper);
        ``None``: the recipe's (``"lognorm"``: 1, ``"paper"``: 0, the paper's objective). See
        :class:`scgan_cluster.ClusterGAN`.
    gp_weight
        WGAN-GP gradient-penalty coefficient (paper: 10).
    n_critic
        Critic steps per generator step (paper: 5).
    lr
        Adam learning rate, betas (0.5, 0.9) (paper: 1e-4).
    architecture
        Entry of :data:`scgan_cluster.nn.ARCHITECTURES` (``"mlp"``: the paper's 10x_73k networks),
        or ``"auto"``: ``"mlp"`` for genes, the matching conv entry for images.
    {doc_random_state}
    {doc_device}
    key_added
        Name under which results are stored.
    {doc_copy}
    n_runs
        Train this many independent replicas (seeds ``random_state + r``) in one vectorized pass
        (MLP only); ``None``: the recipe's (``"lognorm"``: 5, ``"paper"``: 1). On a 2-core CPU
        R = 5 cost about 3.7 single runs (see ``benchmarks/PERFORMANCE.md``). ``obs[key_added]``
        is then combined from the replicas as ``combine`` says, every replica's labels are kept
        and ``obs[key_added + "_confidence"]`` is added. ``n_runs=10`` scored higher than the
        default 5 on the training and validation cells of the staged count data (README, "Beyond
        the paper", item 9) and costs little more on a GPU, about twice as much on a CPU.
    flavor
        The recipe (see above) and the preprocessing of raw counts it applies (see
        :func:`scgan_cluster.pp.preprocess`): ``"lognorm"`` (library-size normalisation to
        10,000 counts, ``ln(1 + x)``, scanpy's ``n_top_genes`` highly variable genes, ``/ max``)
        or ``"paper"`` (top ``n_top_genes`` genes by count variance, ``log2(1 + C) / max``).
    prior
        ``"uniform"`` (the paper's zc prior) or ``"learned"`` (cluster proportions re-estimated
        from the encoder during training; in practice it concentrates on a few modes and the
        clusters come from KMeans on the latent, see :class:`scgan_cluster.ClusterGAN`);
        ``None``: the recipe's (``"lognorm"``: learned, ``"paper"``: uniform).
    prior_floor
        With the learned prior: each re-estimate floors every mode's proportion at
        ``prior_floor / K`` before renormalising; ``None``: 0.1. See
        :class:`scgan_cluster.ClusterGAN`.
    combine
        With ``n_runs > 1``: ``"consensus"`` (majority vote of the replicas after matching their
        cluster ids) or ``"select"`` (the replica that agrees most with the others). Neither
        uses labels.
    precision
        ``"fp32"`` (default) or ``"bf16"``: bfloat16 matrix products in training (float32
        parameters and optimizer), faster on hardware with bfloat16 matrix units, mostly for
        ``n_runs > 1`` and conv architectures; see :class:`scgan_cluster.ClusterGAN`.
    compile
        ``torch.compile`` the training steps (fully connected networks): faster per
        iteration, 10-20 s to compile; for long runs. See :class:`scgan_cluster.ClusterGAN`.
    n_pcs
        An integer: train on the cells' ``n_pcs`` leading principal components (of the
        preprocessed genes, each standardised and clipped at 10 sd, fitted on these cells)
        instead of the genes, with ``lr`` 2e-3 and ``max_iter`` 2,000 unless passed
        (:data:`scgan_cluster.model.PCS_SETTINGS`). ``0``: train on the genes. ``"auto"``: train
        the ensembles named by ``candidates`` (by default both: the PC model with 50
        components, or fewer where the data have fewer genes or cells) and keep the one whose
        replicas agree more (mean adjusted Rand index between replicas; no labels), which needs
        ``n_runs >= 2``; the PC model adds about a tenth to the genes model's time. ``None``:
        the recipe's (``"lognorm"``: ``"auto"``, or the genes when ``n_runs=1``; ``"paper"``:
        the genes). See :class:`scgan_cluster.ClusterGAN`.
    pool_candidates
        With ``n_pcs="auto"``: ``True`` labels the cells by pooling every replica of every
        ensemble of ``candidates``, each weighted by its agreement with all the others
        (:func:`scgan_cluster.model.pool_replicas`; no labels), instead of the consensus of the
        ensemble whose replicas agree more (``False``); the latent is the latter's either way.
        ``None``: the recipe's (:data:`scgan_cluster.model.RECIPES`; ``"lognorm"``: ``True``
        whenever ``n_pcs="auto"``; ``"paper"``: ``False``).
    pool_method
        With ``pool_candidates``: how the replicas are pooled (no labels either way):
        ``"vote"``, the agreement-weighted vote after matching cluster ids; ``"linkage"``,
        average-linkage clustering of the cells' agreement-weighted co-association (the share of
        replicas that put two cells in one cluster) cut at ``n_clusters``, built on at most
        5,000 cells (a random subset of larger data; the other cells join the cluster they are
        co-assigned with most). See :func:`scgan_cluster.model.pool_replicas`. ``None``: the
        recipe's (:data:`scgan_cluster.model.RECIPES`).
    candidates
        With ``n_pcs="auto"``: the ensembles to train, compare and pool, in that order, as
        names of :data:`scgan_cluster.model.ENSEMBLES` (at least two): ``"genes"`` (the recipe's
        learning rate and budget), ``"pcs"`` (principal components at 2e-3 for 2,000
        iterations) and ``"genes_fast"`` (the genes at 2e-3 for 2,000 iterations; about half
        the genes ensemble's time again). ``None``: the recipe's, ``("genes", "pcs")``.
        ``("genes", "pcs", "genes_fast")`` is the third ensemble measured in the README ("A
        third ensemble in the pool"): higher on average over 8 fits, not yet the default.

    Returns
    -------
    ``None``, or a new AnnData if ``copy=True``. Sets

    ``adata.obs[key_added]``
        Categorical cluster labels ``"0"``, ``"1"``, ...
    ``adata.obsm["X_" + key_added]``
        The encoder's zn, float32 (use it as ``use_rep`` for :func:`scanpy.pp.neighbors`).
    ``adata.obsm[key_added + "_proba"]``
        softmax(zc): the encoder's soft assignment to the K modes of the prior.
    ``adata.uns[key_added]``
        ``params`` (every setting, JSON-friendly), ``history`` (losses along training: critic loss,
        Wasserstein estimate, gradient penalty, generator loss, zn and zc losses, sampled every
        ``max_iter // 100`` iterations), ``var_names`` (the genes used) and ``train_seconds``.
    ``adata.obsm[key_added + "_runs"]`` (only with ``n_runs > 1``)
        int64 array ``n_obs x n_runs``: the labels of every replica (column r: seed
        ``random_state + r``); with ``pool_candidates``, ``n_obs x (n_runs per ensemble of
        candidates)``: the genes ensemble's replicas, then the principal components' (per
        column, its vote weight, ensemble and seed in ``uns[key_added]["runs"]``:
        ``pooled_weights``, ``pooled_candidate`` (``"genes"`` / ``"pcs"`` / ...) and
        ``pooled_random_state``).
        ``adata.uns[key_added]["runs"]`` holds, for the ensemble behind the latent (with
        ``n_pcs="auto"``: the kept one), ``random_state`` (per replica), ``selected`` (the
        replica that agrees most with the others, behind ``obsm["X_" + key_added]``),
        ``selection_score`` (each replica's mean adjusted Rand index with the others) and
        ``history`` (one dict per replica).
    ``adata.obs[key_added + "_confidence"]`` (only with ``n_runs > 1``)
        Per cell, the fraction of replicas that give it its label (after matching cluster ids;
        with ``pool_candidates``, the share of the replicas' total weight; with
        ``pool_method="linkage"``, its mean weighted co-association with its cluster's cells).

    Notes
    -----
    The paper's protocol is reached by parameters alone: ``flavor="paper", max_iter=100_000``
    on raw counts (top 720 genes, ``log2(1 + C) / max``, uniform prior, one model) is its
    10x_73k setting. Its default ``max_iter=8000`` is a budget choice for CPUs, set from the
    time-to-accuracy study of ``benchmarks/scrna.py`` on the sorted PBMC populations of 10x_73k
    (5 seeds): the mean test NMI / ARI rise from 0.54 / 0.50 at 4,000 iterations to
    0.58 / 0.53 at 8,000.

    The ``"lognorm"`` recipe was chosen on the validation split of the same data (5 replicas):
    library-size normalisation and the learned prior raise single replicas to a validation
    NMI / ARI of 0.77 / 0.63 (the paper's recipe: 0.60 / 0.53), 4,000 iterations did as well
    as 8,000, and the consensus of the 5 replicas reaches 0.82 / 0.71, at or above the best
    scanpy baseline there (KMeans on 50 PCs, 0.81 / 0.70). The reconstruction term
    (``beta_r=1``) was added after comparing it on the validation split of all five staged
    count datasets, where it raised the consensus' NMI and ARI on each (e.g. sorted PBMC 8,
    mean of 3 fits: 0.809 / 0.686 to 0.813 / 0.752; PBMC 4k: 0.709 / 0.585 to
    0.717 / 0.645), and then 2,000 genes instead of 720, which raised both on four of the five
    (PBMC 4k: 0.752 / 0.697; mouse bladder: 0.681 / 0.446 to 0.777 / 0.598) and traded 0.01 NMI
    for 0.02 ARI on the fifth (sorted PBMC 10). Last, ``n_pcs="auto"``: a second ensemble on
    50 principal components (2e-3, 2,000 iterations) is trained beside the genes one and the
    ensemble whose replicas agree more is kept; on the validation split this kept the candidate
    with the higher ARI on all five datasets (the PCs on worm neurons: 0.670 / 0.438 against
    0.526 / 0.314 with the genes; the genes on the other four). Then the genes ensemble's
    budget grew with K (``max(4000, 500 * K)`` iterations): on the two staged datasets with more
    than 8 types it raised the validation NMI / ARI (mouse bladder, 16 types: 0.777 / 0.598 to
    0.814 / 0.629; sorted PBMC 10: 0.696 / 0.630 to 0.715 / 0.642). Last, the labels became the
    agreement-weighted vote of both ensembles' replicas (``pool_candidates=True``): over 11 fits
    on the five datasets its training-cell and validation NMI and ARI were higher than the kept
    ensemble's consensus on average (lower on sorted PBMC 10's ARI). Then the replicas were
    pooled by co-association linkage instead of the vote (``pool_method="linkage"``): on 6 fits
    of the five datasets its training-cell and validation NMI and ARI were higher than the
    vote's on average, from the same replicas (README, item 10). The recipe takes about 11
    minutes on 2 CPU cores up to 8 clusters (5 replicas of 4,000 iterations on 2,000 genes,
    then 5 of 2,000 on 50 components) and longer above (measured: 11 minutes for 10 clusters,
    18 for 16); the number of cells does not matter.
    Test-split results on all staged datasets are in the README.
    The same ``random_state`` on the same device gives the same labels.

    Examples
    --------
    >>> import scanpy as sc, scgan_cluster as scg
    >>> scg.tl.clustergan(adata, n_clusters=8)  # adata.X holds raw counts
    >>> sc.pp.neighbors(adata, use_rep="X_clustergan")
    >>> sc.tl.umap(adata)
    >>> sc.pl.umap(adata, color="clustergan")
    """
    check_adata(adata, copy=copy)
    if not isinstance(key_added, str) or not key_added:
        raise TypeError(f"key_added must be a non-empty str, got {key_added!r}.")
    if flavor not in RECIPES:
        raise ValueError(f"flavor must be one of {tuple(RECIPES)}, got {flavor!r}.")
    # the flavor's training recipe fills what was not passed; images take the paper's settings
    recipe_name = "paper" if image_shape_of(adata) is not None else flavor
    recipe = RECIPES[recipe_name]
    max_iter_passed = max_iter
    if max_iter is None:
        max_iter = recipe_max_iter(recipe_name, n_clusters)
    n_runs = recipe["n_runs"] if n_runs is None else n_runs
    prior = recipe["prior"] if prior is None else prior
    beta_r = recipe["beta_r"] if beta_r is None else beta_r
    if n_pcs is None:  # the recipe's; its "auto" compares replicas, so one model takes genes
        n_pcs = recipe["n_pcs"] if n_runs >= 2 else None
    elif isinstance(n_pcs, str) and n_pcs != "auto":
        raise ValueError(f"n_pcs must be an integer, 'auto' or None, got {n_pcs!r}.")
    elif not isinstance(n_pcs, (bool, str)) and n_pcs == 0:  # scanpy's convention: no PCA
        n_pcs = None
    if n_pcs is not None and image_shape_of(adata) is not None:
        raise ValueError("n_pcs applies to cells x genes, not to images; pass n_pcs=None.")
    if n_pcs == "auto" and n_runs < 2:
        raise ValueError(
            "n_pcs='auto' keeps the model whose replicas agree more, so it needs n_runs >= 2; "
            "pass n_pcs=0 (genes) or an integer (principal components) for a single model."
        )
    if candidates is None:
        candidates = tuple(recipe["candidates"])
    elif n_pcs != "auto":
        raise ValueError(
            "candidates names the ensembles of n_pcs='auto'; pass n_pcs='auto' (or leave n_pcs "
            "at None with n_runs >= 2), or leave candidates at None."
        )
    else:
        candidates = _check_candidates(candidates)
    if pool_candidates is None:
        pool_candidates = bool(recipe["pool_candidates"]) and n_pcs == "auto"
    elif not isinstance(pool_candidates, (bool, np.bool_)):
        raise TypeError(f"pool_candidates must be True, False or None, got {pool_candidates!r}.")
    elif pool_candidates and n_pcs != "auto":
        raise ValueError(
            "pool_candidates=True pools the ensembles of n_pcs='auto'; pass n_pcs='auto' "
            "or leave pool_candidates at None."
        )
    if pool_method is None:
        pool_method = recipe["pool_method"]
    elif pool_method not in POOL_METHODS:
        raise ValueError(f"pool_method must be one of {POOL_METHODS} or None, got {pool_method!r}.")
    if n_top_genes is None:  # the recipe's number, or every gene of a smaller matrix
        n_top_genes = min(recipe["n_top_genes"], adata.n_vars)

    def ensemble_model(name: str, n_pcs: int | None = None) -> ClusterGAN:
        # an entry of ENSEMBLES: its own learning rate and budget unless passed, its n_pcs capped
        changes = dict(ENSEMBLES[name])
        if "n_pcs" in changes:
            changes["n_pcs"] = n_pcs
        if lr is not None and "lr" in changes:
            changes["lr"] = lr
        if max_iter_passed is not None and "max_iter" in changes:
            changes["max_iter"] = max_iter_passed
        return make_model(**changes)

    def make_model(**changes) -> ClusterGAN:
        settings = {"n_pcs": None, "lr": lr, "max_iter": max_iter, **changes}
        return ClusterGAN(
            n_clusters,
            n_latent=n_latent,
            architecture=architecture,
            sigma=sigma,
            beta_n=beta_n,
            beta_c=beta_c,
            beta_r=beta_r,
            gp_weight=gp_weight,
            n_critic=n_critic,
            batch_size=batch_size,
            assign=assign,
            random_state=random_state,
            device=device,
            n_runs=n_runs,
            prior=prior,
            combine=combine,
            prior_floor=PRIOR_FLOOR if prior_floor is None else prior_floor,
            precision=precision,
            compile=compile,
            **settings,
        )

    fit_kwargs = {
        "layer": layer,
        "preprocess": preprocess,
        "n_top_genes": n_top_genes,
        "flavor": flavor,
    }
    representation = pooled = None
    if n_pcs == "auto":
        n_auto = int(min(PCS_SETTINGS["n_pcs"], _n_inputs(adata, layer, preprocess, n_top_genes)))
        models = [ensemble_model(name, n_auto) for name in candidates]
        chosen, agreement = fit_by_agreement(models, adata, **fit_kwargs)
        model = models[chosen]
        pooled = (
            pool_replicas(models, method=pool_method, random_state=random_state)
            if pool_candidates
            else None
        )
        representation = {
            "chosen": candidates[chosen],
            "candidates": list(candidates),
            **{f"agreement_{name}": a for name, a in zip(candidates, agreement, strict=True)},
            **({"n_pcs": n_auto} if "pcs" in candidates else {}),
            "pooled": pooled is not None,
            **({"pool_method": pool_method} if pooled is not None else {}),
        }
    else:
        model = make_model() if n_pcs is None else ensemble_model("pcs", n_pcs)
        model.fit(adata, **fit_kwargs)

    # training succeeded: from here on only writes
    if copy:
        adata = adata.copy()
    labels = model.labels_ if pooled is None else pooled.labels_
    present = np.unique(labels)
    adata.obs[key_added] = pd.Categorical(labels.astype(str), categories=[str(k) for k in present])
    adata.obsm["X_" + key_added] = model.latent_
    adata.obsm[key_added + "_proba"] = model.proba_
    params = {
        **model.params,
        "preprocess": bool(preprocess),
        "n_top_genes": int(n_top_genes),
        "flavor": flavor if model.transform is None else model.transform["flavor"],
        "device": str(model.device),
        "key_added": key_added,
    }
    if layer is not None:
        params["layer"] = layer
    if model.image_shape is not None:
        params["image_shape"] = list(model.image_shape)
    if model.transform is not None:
        params["scale"] = float(model.transform["scale"])
    adata.uns[key_added] = {
        "params": params,
        "history": {k: np.asarray(v, dtype=np.float64) for k, v in model.history_.items()},
        "var_names": np.asarray(model.var_names, dtype=str),
        "train_seconds": float(model.train_seconds_),
    }
    if representation is not None:
        adata.uns[key_added]["representation"] = representation
    if model.replicas is not None:
        voters = model if pooled is None else pooled
        adata.obsm[key_added + "_runs"] = voters.labels_runs_
        adata.obs[key_added + "_confidence"] = voters.confidence_.astype(np.float32)
        adata.uns[key_added]["runs"] = {
            "random_state": np.array([rep.random_state for rep in model.replicas]),
            "selected": int(model.selected_run_),
            "selection_score": np.asarray(model.selection_scores_, dtype=np.float64),
            "history": {
                str(r): {k: np.asarray(v, dtype=np.float64) for k, v in rep.history_.items()}
                for r, rep in enumerate(model.replicas)
            },
        }
        if pooled is not None:  # what each of obsm[key + "_runs"]'s columns is
            adata.uns[key_added]["runs"].update(
                pooled_weights=np.asarray(pooled.weights_),
                pooled_candidate=np.array(
                    [name for name, c in zip(candidates, models, strict=True) for _ in c.replicas]
                ),
                pooled_random_state=np.array(
                    [rep.random_state for c in models for rep in c.replicas]
                ),
            )
    logger.info(
        "finished: found %d clusters and added\n"
        "    '%s', the cluster labels (adata.obs, categorical)\n"
        "    'X_%s', the encoder latent zn (adata.obsm)\n"
        "    '%s_proba', softmax of zc (adata.obsm)\n"
        "    '%s', params and training history (adata.uns) (%.1fs)",
        len(present),
        key_added,
        key_added,
        key_added,
        key_added,
        model.train_seconds_,
    )
    return adata if copy else None


def _check_candidates(candidates: Sequence[str]) -> tuple[str, ...]:
    """``candidates`` as a tuple of distinct :data:`scgan_cluster.model.ENSEMBLES` names (>= 2)."""
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(
            f"candidates must be a list or tuple of names from {tuple(ENSEMBLES)}, "
            f"got {candidates!r}."
        )
    candidates = tuple(candidates)
    unknown = [c for c in candidates if c not in ENSEMBLES]
    if unknown:
        raise ValueError(f"candidates must be names from {tuple(ENSEMBLES)}, got {unknown!r}.")
    if len(set(candidates)) != len(candidates) or len(candidates) < 2:
        raise ValueError(
            f"candidates needs at least two distinct ensembles (n_pcs='auto' compares them), "
            f"got {candidates!r}; for one ensemble pass n_pcs=0 (genes) or an integer."
        )
    return candidates


def _n_inputs(adata: AnnData, layer: str | None, preprocess: bool, n_top_genes: int) -> int:
    """How many principal components the data allow: min(features the model will see, cells - 1)."""
    if not preprocess:
        n_features = adata.n_vars
    elif is_prepared(adata, layer):
        n_features = len(_prepared_columns(adata))
    else:
        n_features = n_top_genes
    return min(n_features, adata.n_obs - 1)
