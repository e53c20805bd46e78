"""``tl.clustergan``: AnnData in, clusters and latent out, like ``sc.tl.leiden``."""

from __future__ import annotations

from typing import Any

import torch
from anndata import AnnData

from scgan_cluster._docs import doc_params
from scgan_cluster._settings import logger
from scgan_cluster._validation import check_adata
from scgan_cluster.model import ClusterGAN
from scgan_cluster.model._clustergan import _check_key

__all__ = ["clustergan"]


@doc_params
def clustergan(
    adata: AnnData,
    n_clusters: int = 8,
    *,
    flavor: str = "lognorm",
    max_iter: int | None = None,
    layer: str | None = None,
    preprocess: bool = True,
    random_state: int = 0,
    device: str | torch.device = "auto",
    key_added: str = "clustergan",
    copy: bool = False,
    **model_args: Any,
) -> AnnData | None:
    """Cluster cells with ClusterGAN (Mukherjee et al., AAAI 2019).

    Fits :class:`scgan_cluster.ClusterGAN` with the recipe ``flavor`` and writes its
    clustering; ``ClusterGAN(...).fit(adata)`` with the same settings holds exactly what is
    written here, and keeps the model (:meth:`~scgan_cluster.ClusterGAN.save`,
    :meth:`~scgan_cluster.ClusterGAN.predict` on new cells).

    ``"lognorm"`` (default): library-size normalisation, 2,000 highly variable genes, a learned
    prior and a reconstruction term; two ensembles trained for 1,000 iterations with 2 critic
    steps, 3 replicas of the genes (lr 5e-4) and 15 of the cells' 50 principal components
    (lr 2e-3), whose labels are pooled by co-association linkage cut at K. About 2 minutes on
    2 CPU cores (``benchmarks/bench_default.py``). ``"lognorm_long"``: the previous default,
    about six times slower (two ensembles of 5 replicas, the genes for ``max(4000, 500 K)``
    iterations at lr 1e-4 with 5 critic steps). ``"lognorm_fast"``: ``"lognorm_long"`` trained
    for 1,000 iterations at lr 2e-3 with 2 critic steps. ``"paper"``: the paper's preprocessing
    (top 720 genes by variance, ``log2(1 + C) / max``), uniform prior and one network, 8,000
    iterations (the paper: 100,000). See :data:`scgan_cluster.recipes.RECIPES`; the benchmark
    behind the default is in the README.

    Parameters
    ----------
    {doc_adata}
    n_clusters
        K, the number of clusters.
    flavor
        The recipe: ``"lognorm"``, ``"lognorm_long"``, ``"lognorm_fast"`` or ``"paper"``. Data
        prepared by :func:`scgan_cluster.pp.preprocess` must have been prepared with the
        recipe's flavor.
    max_iter
        Generator iterations of every ensemble (``None``: the recipe's).
    {doc_layer}
    preprocess
        ``True``: raw counts get the recipe's preprocessing on an internal copy (data prepared
        by :func:`scgan_cluster.pp.preprocess` are used as they are). ``False``: the values are
        used as they are (scale them to about [0, 1] first).
    {doc_random_state}
    {doc_device}
    key_added
        Name under which results are stored.
    {doc_copy}
    **model_args
        Network, optimiser and ensemble settings: any field of
        :class:`scgan_cluster.recipes.Recipe`, e.g. ``lr``, ``n_runs`` (replicas of every
        ensemble), ``n_latent``, ``beta_r``, ``prior``, ``ensembles``, ``pool``, ``n_top_genes``.

    Returns
    -------
    ``None``, or a new AnnData if ``copy=True``. Sets

    ``adata.obs[key_added]``
        Categorical cluster labels ``"0"``, ``"1"``, ...
    ``adata.obs[key_added + "_confidence"]``
        The soft assignment of each cell's label.
    ``adata.obsm[key_added + "_proba"]``
        Soft assignment ``n_obs x K``: column k is cluster k, rows sum to 1, argmax is the label.
    ``adata.obsm["X_" + key_added]``
        float32 latent of the clustering, for ``sc.pp.neighbors(use_rep=...)``: the consensus
        embedding of the replicas' encoder latents (``"lognorm"``), or the network's zn
        (``"paper"``).
    ``adata.obsm[key_added + "_runs"]``
        int64 ``n_obs x R``: every replica's own labels (columns per ensemble in
        ``uns[key_added]["members"]``).
    ``adata.uns[key_added]``
        ``params`` (every setting), ``members`` (per ensemble: replica seeds, agreement, pool
        weight, inputs, training seconds and history), ``history`` (the training history of the
        replica with the largest pool weight), ``var_names`` (the genes used) and
        ``train_seconds`` (all ensembles).

    Examples
    --------
    >>> import scanpy as sc, scgan_cluster as scg
    >>> scg.tl.clustergan(adata, n_clusters=8)  # adata.X holds raw counts
    >>> sc.pp.neighbors(adata, use_rep="X_clustergan")
    >>> sc.tl.umap(adata)
    >>> sc.pl.umap(adata, color="clustergan")
    """
    check_adata(adata, copy=copy)
    _check_key(key_added)
    model = ClusterGAN(
        n_clusters,
        flavor=flavor,
        max_iter=max_iter,
        random_state=random_state,
        device=device,
        **model_args,
    ).fit(adata, layer=layer, preprocess=preprocess)
    # training succeeded: from here on only writes
    if copy:
        adata = adata.copy()
    model._write(adata, key_added, model.labels_, model.proba_, model.latent_, model.labels_runs_)
    logger.info(
        "finished: found %d clusters and added\n"
        "    '%s', the cluster labels (adata.obs, categorical)\n"
        "    'X_%s', the latent of the clustering (adata.obsm)\n"
        "    '%s_proba', the soft assignment (adata.obsm)\n"
        "    '%s', params and training record (adata.uns) (%.1fs)",
        len(adata.obs[key_added].cat.categories),
        key_added,
        key_added,
        key_added,
        key_added,
        model.train_seconds_,
    )
    return adata if copy else None
