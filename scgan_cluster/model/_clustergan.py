"""The user's model: a recipe's ensembles trained, pooled and kept, in the manner of scvi-tools."""

from __future__ import annotations

import dataclasses
import numbers
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData

from scgan_cluster._docs import doc_params
from scgan_cluster._settings import logger
from scgan_cluster._validation import (
    check_adata,
    check_n_clusters,
    check_positive_int,
    resolve_device,
)
from scgan_cluster.adapters import image_shape_of, is_prepared, prepare_fit
from scgan_cluster.adapters._inputs import UNS_KEY, _prepared_columns
from scgan_cluster.recipes import Ensemble, Recipe, resolve

from ._ensemble import GANEnsemble, _seed
from ._io import load_model, write_model_dir
from ._pool import ConsensusEmbedding, Pool, replica_weights

__all__ = ["ClusterGAN"]


@doc_params
class ClusterGAN:
    """ClusterGAN (Mukherjee et al., AAAI 2019) on single cells: one fitted, reusable model.

    A recipe (:mod:`scgan_cluster.recipes`) says what is trained: ``"lognorm"`` (default)
    trains two ensembles (3 replicas on the genes, 15 on 50 principal components) and pools
    their labels by co-association linkage; ``"paper"`` trains the paper's one network. Whatever the
    recipe, the fitted model gives one clustering: :attr:`labels_`, :meth:`predict` (the rule
    that labelled the training cells, so ``predict`` on them gives ``labels_``),
    :meth:`predict_proba` (column k is cluster k, argmax is the label),
    :meth:`get_latent_representation` (the latent that clustering lives in) and
    :meth:`generate`; :meth:`annotate` writes them into an AnnData as
    :func:`scgan_cluster.tl.clustergan` does, and :meth:`save` / :meth:`load` keep it.

    Parameters
    ----------
    n_clusters
        K, the number of clusters.
    flavor
        The recipe (:data:`scgan_cluster.recipes.RECIPES`): ``"lognorm"``, ``"lognorm_long"``
        (the previous default, six times slower), ``"lognorm_fast"`` or ``"paper"``.
        Images (an AnnData with ``uns["image_shape"]``, or a 4-D batch) always take the paper's
        recipe with its conv networks.
    max_iter
        Generator iterations of every ensemble. ``None``: the recipe's (``"lognorm"`` and
        ``"lognorm_fast"``: 1,000; ``"lognorm_long"``: ``max(4000, 500 K)`` for the genes,
        2,000 for the components; ``"paper"``: 8,000).
    {doc_random_state}
    {doc_device}
    **model_args
        Any other field of :class:`scgan_cluster.recipes.Recipe`: network and optimiser
        settings (``lr``, ``n_latent``, ``batch_size``, ``n_critic``, ``beta_r``, ``prior``,
        ...), ``n_runs`` (replicas of every ensemble), ``ensembles`` (names of
        :data:`scgan_cluster.recipes.ENSEMBLES`), ``pool``, ``n_top_genes``, ...

    Examples
    --------
    >>> model = scg.ClusterGAN(n_clusters=8).fit(adata)  # adata.X holds raw counts
    >>> model.annotate(adata)  # what tl.clustergan writes
    >>> new_labels = model.predict(new_adata)  # genes aligned by name
    >>> model.save("pbmc_model/")
    >>> model = scg.ClusterGAN.load("pbmc_model/")
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        flavor: str = "lognorm",
        max_iter: int | None = None,
        random_state: int | None = 0,
        device: str | torch.device = "auto",
        **model_args: Any,
    ) -> None:
        check_n_clusters(n_clusters, np.iinfo(np.int64).max)
        self.n_clusters = int(n_clusters)
        self.flavor = flavor
        self.recipe: Recipe = resolve(flavor, max_iter=max_iter, **model_args)
        self._overrides = {"max_iter": max_iter, **model_args}
        self.random_state = _seed(random_state)
        self.device = resolve_device(device)
        self._reset()

    def _reset(self) -> None:
        self.recipe_: Recipe | None = None
        self.members_: list[GANEnsemble] | None = None
        self.pool_: Pool | None = None
        self.embedding_: ConsensusEmbedding | None = None
        self.var_names_: np.ndarray | None = None
        self.labels_: np.ndarray | None = None
        self.proba_: np.ndarray | None = None
        self.latent_: np.ndarray | None = None
        self.labels_runs_: np.ndarray | None = None
        self.agreement_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None
        self.cluster_latent_: dict[str, np.ndarray] | None = None
        self.train_seconds_: float | None = None
        self.fit_seconds_: dict[str, float] | None = None
        self.fit_params_: dict[str, Any] | None = None

    # ------------------------------------------------------------------ state
    @property
    def is_trained(self) -> bool:
        """Whether the model has been fitted (or loaded)."""
        return self.members_ is not None

    @property
    def confidence_(self) -> np.ndarray | None:
        """Per training cell, the soft assignment of its label (``proba_`` at ``labels_``)."""
        if self.proba_ is None:
            return None
        return self.proba_[np.arange(len(self.labels_)), self.labels_].astype(np.float32)

    @property
    def history_(self) -> dict[str, list[float]]:
        """Training history of the replica with the largest pool weight (``uns[key]["history"]``)."""
        self._check_trained()
        return self._leading().history_

    @property
    def replicas(self) -> list[GANEnsemble]:
        """Every trained network, the ensembles' replicas one after the other."""
        self._check_trained()
        return [rep for m in self.members_ for rep in (m.replicas or [m])]

    @property
    def params(self) -> dict[str, Any]:
        """Every setting, JSON-friendly (what :func:`scgan_cluster.tl.clustergan` records)."""
        recipe = self.recipe if self.recipe_ is None else self.recipe_
        return {
            "n_clusters": self.n_clusters,
            "flavor": recipe.name,
            "random_state": self.random_state,
            "device": str(self.device),
            **recipe.to_dict(),
            **(self.fit_params_ or {}),
        }

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(
                "This ClusterGAN is not trained yet: call fit() first, or ClusterGAN.load()."
            )

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: AnnData | np.ndarray | Any,
        *,
        layer: str | None = None,
        preprocess: bool = True,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
    ) -> ClusterGAN:
        """Train the recipe's ensembles on ``data`` and pool them into one clustering.

        Parameters
        ----------
        data
            AnnData of raw counts (cells x genes), of data prepared by
            :func:`scgan_cluster.pp.preprocess` with the recipe's flavor, or of flattened images
            (``uns["image_shape"]``); or a numpy / scipy sparse / torch matrix or image batch.
        layer
            For AnnData: the layer to read instead of ``X``.
        preprocess
            ``True``: raw counts get the recipe's preprocessing (on a copy); data prepared by
            :func:`scgan_cluster.pp.preprocess` are used as they are. ``False``: the values are
            used as they are (scale them to about [0, 1] first).
        checkpoint_dir
            A folder for training checkpoints, one file per ensemble (``<ensemble>.pt``), each
            written every ``checkpoint_every`` generator iterations and when that ensemble is
            done. Calling ``fit`` again with the same data, settings, seed, device and folder
            after an interruption continues where it stopped (finished ensembles are not
            trained again) and ends with the same model as a fit that ran through. ``None``
            (default): no checkpoints.
        checkpoint_every
            Generator iterations between checkpoints (``None``: a twentieth of each ensemble's
            iterations).

        Returns
        -------
        ``self``, with ``labels_``, ``proba_``, ``confidence_``, ``latent_``, ``labels_runs_``
        (every replica's labels), ``agreement_`` / ``weights_`` (each replica's agreement with
        the others and its weight in the pool), ``members_`` (the trained ensembles),
        ``train_seconds_`` and ``fit_seconds_`` (wall seconds per phase: the preprocessing,
        done once for all ensembles of vectors, then each ensemble's own preparation (its
        principal components), training and assignment, then the pooling) set. With the recipe's
        ``concurrent=True`` the ensembles' phases overlap: ``fit_seconds_["ensembles together"]``
        is the wall time of all of them, and ``train_seconds_`` the longest ensemble's training
        (the sum otherwise). A failed fit leaves the model as it was.
        """
        if not isinstance(preprocess, (bool, np.bool_)):
            raise TypeError(f"preprocess must be True or False, got {preprocess!r}.")
        images = self._is_images(data)
        recipe = resolve("paper", **self._overrides) if images else self.recipe
        n_vars = self._check_input(data, layer, preprocess, recipe, images)
        if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, Path)):
            raise TypeError(f"checkpoint_dir must be a path, got {type(checkpoint_dir).__name__}.")
        previous = dict(vars(self))
        try:
            self._fit(
                data, layer, bool(preprocess), recipe, n_vars, checkpoint_dir, checkpoint_every
            )
        except BaseException:
            vars(self).clear()
            vars(self).update(previous)
            raise
        return self

    @staticmethod
    def _is_images(data: Any) -> bool:
        if isinstance(data, AnnData):
            return image_shape_of(data) is not None
        return getattr(data, "ndim", 2) == 4

    def _check_input(
        self, data: Any, layer: str | None, preprocess: bool, recipe: Recipe, images: bool
    ) -> int:
        """Checks before training; returns the number of features the preprocessing sees."""
        if isinstance(data, AnnData):
            check_adata(data, copy=True)
            if images:
                return data.n_vars
            if preprocess and is_prepared(data, layer):
                prepared_with = data.uns[UNS_KEY].get("flavor", "paper")
                if prepared_with != recipe.preprocessing:
                    raise ValueError(
                        f"These data were prepared by pp.preprocess with flavor "
                        f"{prepared_with!r}, but the {recipe.name!r} recipe trains on "
                        f"{recipe.preprocessing!r} preprocessing. Pass flavor={prepared_with!r}, "
                        "or give raw counts (the recipe then preprocesses them itself)."
                    )
                return len(_prepared_columns(data))
            return data.n_vars
        if layer is not None:
            raise ValueError("layer= only applies to AnnData input.")
        shape = getattr(data, "shape", None)
        if shape is None or len(shape) not in (2, 4):
            raise TypeError(
                "data must be an AnnData, a 2-D matrix (cells x features) or a 4-D image batch, "
                f"got {type(data).__name__}."
            )
        return int(shape[1])

    def _fit(
        self,
        data: Any,
        layer: str | None,
        preprocess: bool,
        recipe: Recipe,
        n_vars: int,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
    ) -> None:
        n_obs = int(data.shape[0]) if not isinstance(data, AnnData) else data.n_obs
        check_n_clusters(self.n_clusters, n_obs)
        # the recipe's number of genes, or every gene of a smaller matrix (a number passed is
        # taken as it is, and the preprocessing says if the data have fewer genes)
        n_top_genes = recipe.n_top_genes
        if self._overrides.get("n_top_genes") is None:
            n_top_genes = min(n_top_genes, n_vars)
        n_features = n_vars if (not preprocess or self._prepared(data, layer)) else n_top_genes
        start = time.perf_counter()
        train_data, train_layer = data, layer
        shared = not self._is_images(data)
        if shared:
            # the ensembles share one preprocessing: the cells are read and transformed once
            train_data = prepare_fit(
                data,
                layer=layer,
                preprocess=preprocess,
                n_top_genes=n_top_genes,
                flavor=recipe.preprocessing,
            )
            train_layer = None
        prepare_seconds = time.perf_counter() - start

        def train(ensemble: Ensemble, stop: threading.Event | None = None) -> GANEnsemble:
            settings = recipe.ensemble_settings(ensemble, self.n_clusters)
            if settings["n_pcs"] is not None:  # capped at what the data allow
                settings["n_pcs"] = int(min(settings["n_pcs"], n_features, n_obs - 1))
            member = GANEnsemble(
                self.n_clusters, random_state=self.random_state, device=self.device, **settings
            )
            logger.info("training the %r ensemble", ensemble.name)
            member.fit(
                train_data,
                layer=train_layer,
                preprocess=preprocess,
                n_top_genes=n_top_genes,
                flavor=recipe.preprocessing,
                checkpoint=None
                if checkpoint_dir is None
                else Path(checkpoint_dir) / f"{ensemble.name}.pt",
                checkpoint_every=checkpoint_every,
                callback=None if stop is None else _stop_when(stop),
            )
            return member

        concurrent = recipe.concurrent and len(recipe.ensembles) > 1
        if concurrent:
            together_start = time.perf_counter()
            members = _in_threads(train, recipe.ensembles, self.device)
            together = time.perf_counter() - together_start
        else:
            members = [train(ensemble) for ensemble in recipe.ensembles]
        self.members_ = members
        self.recipe_ = recipe
        self.var_names_ = members[0].var_names
        first = members[0]
        self.fit_params_ = {
            "preprocess": preprocess,
            "n_top_genes": int(n_top_genes),
            "architecture": first.architecture,
            **({"layer": layer} if layer is not None else {}),
            **({"image_shape": list(first.image_shape)} if first.image_shape else {}),
            **({"scale": float(first.transform["scale"])} if first.transform else {}),
        }
        pool_start = time.perf_counter()
        reps = self.replicas
        latents = [(rep.latent_, rep.proba_) for rep in reps]
        self.labels_runs_ = np.stack([rep.labels_ for rep in reps], axis=1)
        if len(reps) == 1:
            self.agreement_, self.weights_ = np.ones(1), np.ones(1)
            self.pool_ = self.embedding_ = None
        else:
            self.agreement_, self.weights_ = replica_weights(self.labels_runs_)
            self.pool_ = Pool.fit(
                self.labels_runs_,
                self.n_clusters,
                self.weights_,
                method=recipe.pool,
                max_cells=recipe.pool_max_cells,
                random_state=self.random_state,
            )
            self.embedding_ = ConsensusEmbedding.fit(latents, self.weights_, recipe.n_embedding)
        self.labels_, self.proba_, self.latent_ = self._outputs(self.labels_runs_, latents)
        self.cluster_latent_ = self._cluster_latent()
        # trained at the same time, the ensembles' clocks overlap: the longest one's, not the sum
        self.train_seconds_ = float((max if concurrent else sum)(m.train_seconds_ for m in members))
        self.fit_seconds_ = {
            f"{ensemble.name}: {phase}": float(seconds)
            for ensemble, member in zip(recipe.ensembles, members, strict=True)
            for phase, seconds in member.fit_seconds_.items()
        }
        if concurrent:
            self.fit_seconds_["ensembles together"] = together
        self.fit_seconds_["pooling"] = time.perf_counter() - pool_start
        if shared:
            self.fit_seconds_ = {"preprocessing": prepare_seconds} | self.fit_seconds_
        logger.info("trained %d networks in %.1fs", len(reps), time.perf_counter() - start)

    @staticmethod
    def _prepared(data: Any, layer: str | None) -> bool:
        return isinstance(data, AnnData) and is_prepared(data, layer)

    def _outputs(
        self, runs: np.ndarray, latents: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, soft assignment and latent of cells from their replicas' labels and latents.

        ``latents``: each replica's ``(zn, softmax zc)``.
        """
        if self.pool_ is not None:
            return (
                self.pool_.predict(runs),
                self.pool_.proba(runs),
                self.embedding_.transform(latents),
            )
        (net,) = self.replicas
        zn, proba = latents[0]
        full = np.hstack([zn, proba])
        return runs[:, 0].astype(np.int64), _network_proba(net, full), zn.astype(np.float32)

    def _leading(self) -> GANEnsemble:
        """The replica with the largest pool weight (the first on a tie)."""
        return self.replicas[int(np.argmax(self.weights_))]

    def _cluster_latent(self) -> dict[str, np.ndarray]:
        """Per cluster, the mean and sd of the leading replica's latent (for :meth:`generate`)."""
        rep = self._leading()
        k = self.n_clusters
        mean = np.full((k, rep.n_latent + k), np.nan, dtype=np.float32)
        sd = np.full((k, rep.n_latent), np.nan, dtype=np.float32)
        for c in range(k):
            cells = self.labels_ == c
            if cells.any():
                mean[c] = np.hstack([rep.latent_[cells].mean(0), rep.proba_[cells].mean(0)])
                sd[c] = rep.latent_[cells].std(0)
        return {"mean": mean, "sd": sd, "size": np.bincount(self.labels_, minlength=k)}

    # ------------------------------------------------------------------ inference
    def _infer(
        self, data: AnnData | np.ndarray | Any, layer: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Labels, soft assignment, latent and replica labels of cells, new or old."""
        self._check_trained()
        runs, latents = [], []
        for member in self.members_:
            for zn, proba, rep in member._replica_latents(data, layer=layer):
                latents.append((zn, proba))
                runs.append(rep._label_latent(zn, proba))
        runs = np.stack(runs, axis=1)
        labels, proba, latent = self._outputs(runs, latents)
        return labels, proba, latent, runs

    @doc_params
    def predict(self, data: AnnData | np.ndarray | Any, *, layer: str | None = None) -> np.ndarray:
        """Cluster labels (int, 0..K-1) of cells, new or old.

        Every replica labels the cells as it labelled the training cells, and the pool combines
        them as in training, so the training cells get :attr:`labels_` back.

        Parameters
        ----------
        {doc_new_data}
        """
        return self._infer(data, layer)[0]

    @doc_params
    def predict_proba(
        self, data: AnnData | np.ndarray | Any, *, layer: str | None = None
    ) -> np.ndarray:
        """Soft assignment ``(n_cells, K)``: column k is cluster k, rows sum to 1.

        Pooled replicas: each cluster's share of the weighted replicas that put the cell with
        that cluster's cells. One network: the responsibilities of its clusters' centres (an
        isotropic Gaussian around each, of the training cells' mean squared distance), or
        softmax(zc) with ``assign="argmax"``. The argmax is :meth:`predict`'s label.

        Parameters
        ----------
        {doc_new_data}
        """
        return self._infer(data, layer)[1]

    @doc_params
    def get_latent_representation(
        self, data: AnnData | np.ndarray | Any, *, layer: str | None = None
    ) -> np.ndarray:
        """The latent of cells (float32), as ``obsm["X_" + key_added]``.

        Pooled replicas: the consensus embedding of the replicas' latents
        (:class:`scgan_cluster.model.ConsensusEmbedding`); one network: its encoder's zn.

        Parameters
        ----------
        {doc_new_data}
        """
        return self._infer(data, layer)[2]

    @torch.no_grad()
    def generate(
        self, n: int, *, cluster: int | None = None, random_state: int | None = None
    ) -> np.ndarray:
        """Generate ``n`` cells resembling cluster ``cluster`` (or the clusters in proportion).

        The generator of the replica with the largest pool weight decodes latents drawn around
        the cluster's training cells in that replica's latent: zn from a Gaussian with their
        mean and per-dimension sd, zc their mean softmax(zc).

        Parameters
        ----------
        n
            Number of cells.
        cluster
            A label of :attr:`labels_`; ``None``: clusters drawn in proportion to their sizes.
        random_state
            Seed of the draw (``None``: a fresh one).

        Returns
        -------
        float32 ``(n, n_features)`` on the training scale (the preprocessed genes; an ensemble
        on principal components maps them back to the genes), or images ``(n, C, H, W)``.
        """
        self._check_trained()
        n = check_positive_int(n, "n")
        stats = self.cluster_latent_
        present = np.flatnonzero(stats["size"] > 0)
        if cluster is not None and (
            isinstance(cluster, bool)
            or not isinstance(cluster, numbers.Integral)
            or int(cluster) not in present
        ):
            raise ValueError(
                f"cluster must be one of the clusters found, {present.tolist()}, or None; "
                f"got {cluster!r}."
            )
        rng = np.random.default_rng(_seed(random_state))
        if cluster is None:
            which = rng.choice(present, size=n, p=stats["size"][present] / stats["size"].sum())
        else:
            which = np.full(n, int(cluster))
        rep = self._leading()
        d = rep.n_latent
        zn = stats["mean"][which, :d] + stats["sd"][which] * rng.standard_normal((n, d))
        z = np.hstack([zn, stats["mean"][which, d:]]).astype(np.float32)
        return rep.decode(z)

    @doc_params
    def annotate(
        self,
        adata: AnnData,
        *,
        layer: str | None = None,
        key_added: str = "clustergan",
        copy: bool = False,
    ) -> AnnData | None:
        """Write this model's clustering of ``adata``'s cells into it, as ``tl.clustergan`` does.

        The cells are labelled by :meth:`predict` (the training cells get :attr:`labels_`).

        Parameters
        ----------
        {doc_adata}
        {doc_layer}
        key_added
            Name under which results are stored.
        {doc_copy}

        Returns
        -------
        ``None``, or a new AnnData if ``copy=True``; see :func:`scgan_cluster.tl.clustergan`
        for what is written.
        """
        check_adata(adata, copy=copy)
        _check_key(key_added)
        labels, proba, latent, runs = self._infer(adata, layer)
        if copy:
            adata = adata.copy()
        self._write(adata, key_added, labels, proba, latent, runs)
        return adata if copy else None

    def _write(
        self,
        adata: AnnData,
        key: str,
        labels: np.ndarray,
        proba: np.ndarray,
        latent: np.ndarray,
        runs: np.ndarray,
    ) -> None:
        """Write one clustering of ``adata``'s cells (nothing may fail from here on)."""
        ids = [str(c) for c in range(self.pool_.n_clusters if self.pool_ else self.n_clusters)]
        present = [c for c in ids if c in set(labels.astype(str))]
        adata.obs[key] = pd.Categorical(labels.astype(str), categories=present)
        adata.obs[key + "_confidence"] = proba[np.arange(len(labels)), labels].astype(np.float32)
        adata.obsm["X_" + key] = latent.astype(np.float32)
        adata.obsm[key + "_proba"] = proba.astype(np.float32)
        adata.obsm[key + "_runs"] = runs.astype(np.int64)
        adata.uns[key] = {
            "params": _uns_params(self.params),
            "members": self._members_record(),
            "history": {
                k: np.asarray(v, dtype=np.float64) for k, v in self._leading().history_.items()
            },
            "var_names": np.asarray(self.var_names_, dtype=str),
            "train_seconds": float(self.train_seconds_),
        }

    def _members_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        r = 0
        for ensemble, member in zip(self.recipe_.ensembles, self.members_, strict=True):
            reps = member.replicas or [member]
            cols = slice(r, r + len(reps))
            out[ensemble.name] = {
                "runs_columns": np.arange(r, r + len(reps)),
                "random_state": np.array([rep.random_state for rep in reps]),
                "agreement": np.asarray(self.agreement_[cols], dtype=np.float64),
                "weight": np.asarray(self.weights_[cols], dtype=np.float64),
                "n_inputs": int(member.projection.n_pcs)
                if member.projection is not None
                else len(member.var_names),
                "train_seconds": float(member.train_seconds_),
                "history": {
                    str(i): {k: np.asarray(v, dtype=np.float64) for k, v in rep.history_.items()}
                    for i, rep in enumerate(reps)
                },
            }
            r += len(reps)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the model to one directory: ``model.pt``, ``config.json``, ``var_names.json``.

        Parameters
        ----------
        path
            A directory (created if needed).
        overwrite
            Replace a model saved there; otherwise a non-empty directory is an error.
        """
        self._check_trained()
        members = [m._state() for m in self.members_]
        state: dict[str, Any] = {
            "members": [s for _, s in members],
            "fitted": {
                "labels": torch.from_numpy(self.labels_),
                "proba": torch.from_numpy(np.ascontiguousarray(self.proba_)),
                "latent": torch.from_numpy(np.ascontiguousarray(self.latent_)),
                "labels_runs": torch.from_numpy(np.ascontiguousarray(self.labels_runs_)),
                "agreement": torch.from_numpy(np.asarray(self.agreement_, dtype=np.float64)),
                "weights": torch.from_numpy(np.asarray(self.weights_, dtype=np.float64)),
                **{
                    f"cluster_{k}": torch.from_numpy(np.asarray(v))
                    for k, v in self.cluster_latent_.items()
                },
            },
        }
        if self.pool_ is not None:
            pool = self.pool_
            state["pool"] = {
                "weights": torch.from_numpy(pool.weights),
                **(
                    {"profiles": torch.from_numpy(pool.profiles)}
                    if pool.profiles is not None
                    else {}
                ),
                **({"maps": torch.from_numpy(pool.maps)} if pool.maps is not None else {}),
            }
            emb = self.embedding_
            state["embedding"] = {
                "means": [torch.from_numpy(m) for m in emb.means],
                "scales": torch.from_numpy(emb.scales),
                "weights": torch.from_numpy(emb.weights),
                "components": torch.from_numpy(np.ascontiguousarray(emb.components)),
            }
        config = {
            "n_clusters": self.n_clusters,
            "flavor": self.flavor,
            "random_state": self.random_state,
            "recipe": self.recipe.to_dict(),
            "recipe_fitted": self.recipe_.to_dict(),
            "overrides": _json({k: v for k, v in self._overrides.items() if v is not None}),
            "fit_params": self.fit_params_,
            "pool": None
            if self.pool_ is None
            else {"method": self.pool_.method, "n_clusters": self.pool_.n_clusters},
            "members": [c for c, _ in members],
            "train_seconds": self.train_seconds_,
            "fit_seconds": self.fit_seconds_,
        }
        write_model_dir(path, "ClusterGAN", config, state, self.var_names_, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "auto") -> ClusterGAN:
        """Load a model written by :meth:`save` (tensors read with ``weights_only=True``).

        Parameters
        ----------
        path
            The directory given to :meth:`save`.
        device
            Where to put the networks (``"auto"``: cuda, then mps, then cpu).
        """
        device = resolve_device(device)
        return load_model(cls, path, device)

    @classmethod
    def _from_state(
        cls, config: dict[str, Any], state: dict[str, Any], var_names: np.ndarray, device
    ) -> ClusterGAN:
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.cpu().numpy()

        overrides = dict(config["overrides"])
        if "ensembles" in overrides:
            overrides["ensembles"] = tuple(Recipe.from_dict({**config["recipe"]}).ensembles)
        model = cls(
            config["n_clusters"],
            flavor=config["flavor"],
            random_state=config["random_state"],
            device=device,
            **overrides,
        )
        # the recipe as saved, whatever its flavor's name stands for in this version
        model.recipe = Recipe.from_dict(config["recipe"])
        model.recipe_ = Recipe.from_dict(config["recipe_fitted"])
        model.members_ = [
            GANEnsemble._from_state(c, s, var_names, device)
            for c, s in zip(config["members"], state["members"], strict=True)
        ]
        model.var_names_ = var_names
        model.fit_params_ = config["fit_params"]
        model.train_seconds_ = config["train_seconds"]
        model.fit_seconds_ = config.get("fit_seconds")
        fitted = state["fitted"]
        model.labels_ = arr(fitted["labels"])
        model.proba_ = arr(fitted["proba"])
        model.latent_ = arr(fitted["latent"])
        model.labels_runs_ = arr(fitted["labels_runs"])
        model.agreement_ = arr(fitted["agreement"])
        model.weights_ = arr(fitted["weights"])
        model.cluster_latent_ = {k: arr(fitted[f"cluster_{k}"]) for k in ("mean", "sd", "size")}
        if config["pool"] is not None:
            p = state["pool"]
            model.pool_ = Pool(
                config["pool"]["method"],
                int(config["pool"]["n_clusters"]),
                arr(p["weights"]),
                profiles=arr(p["profiles"]) if "profiles" in p else None,
                maps=arr(p["maps"]) if "maps" in p else None,
            )
            e = state["embedding"]
            model.embedding_ = ConsensusEmbedding(
                tuple(arr(m) for m in e["means"]),
                arr(e["scales"]),
                arr(e["weights"]),
                arr(e["components"]),
            )
        return model

    def __repr__(self) -> str:
        recipe = self.recipe if self.recipe_ is None else self.recipe_
        state = (
            f"trained: {len(self.replicas)} networks on {len(self.var_names_)} features"
            if self.is_trained
            else "not trained"
        )
        return f"ClusterGAN(n_clusters={self.n_clusters}, flavor={recipe.name!r}; {state})"


class _Stopped(RuntimeError):
    """A concurrent fit ended because another ensemble's fit failed."""


def _stop_when(stop: threading.Event):
    """A training callback that ends a fit once ``stop`` is set (another ensemble failed)."""

    def check(model: GANEnsemble, iteration: int) -> None:
        if stop.is_set():
            raise _Stopped(f"stopped at iteration {iteration}: another ensemble failed")

    return check


def _in_threads(train, ensembles: tuple[Ensemble, ...], device: torch.device) -> list:
    """``train(ensemble, stop)`` of every ensemble at once, one thread (and CUDA stream) each.

    When one fails, the others stop at their next history record and its error is raised.
    """
    stop = threading.Event()

    def run(ensemble: Ensemble) -> GANEnsemble:
        if device.type != "cuda":
            return train(ensemble, stop)
        with torch.cuda.stream(torch.cuda.Stream(device)):
            member = train(ensemble, stop)
            torch.cuda.current_stream().synchronize()
        return member

    with ThreadPoolExecutor(max_workers=len(ensembles)) as pool:
        futures = [pool.submit(run, ensemble) for ensemble in ensembles]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # e.g. Ctrl-C while waiting
            stop.set()
            raise
        if any(f.exception() is not None for f in done):
            stop.set()
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:  # the first real failure, not the others' stops
        raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
    return [f.result() for f in futures]


def _network_proba(net: GANEnsemble, full: np.ndarray) -> np.ndarray:
    """One network's soft assignment to its clusters (column k is its label k)."""
    d = net.n_latent
    if net.assign == "argmax":
        return full[:, d:].astype(np.float64)
    space = full if net.assign == "kmeans" else full[:, :d]
    centres = net.cluster_centers_.astype(np.float64)
    sq = (
        (space.astype(np.float64) ** 2).sum(1)[:, None]
        - 2 * space.astype(np.float64) @ centres.T
        + (centres**2).sum(1)[None, :]
    )
    sq = np.clip(sq, 0.0, None)
    var = max(float(net.center_spread_), 1e-12)
    logits = -sq / (2.0 * var)
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise TypeError(f"key_added must be a non-empty str, got {key!r}.")


def _json(value: Any) -> Any:
    """``value`` with tuples as lists and ensembles as dicts (for JSON)."""
    if isinstance(value, Ensemble):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


def _uns_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as ``write_h5ad`` can store them: no ``None``, the ensembles by name."""
    out = {}
    for key, value in params.items():
        if key == "ensembles":
            value = {e["name"]: {k: v for k, v in e.items() if k != "name"} for e in value}
        if isinstance(value, dict):
            value = _uns_params(value)
        if value is not None:
            out[key] = _json(value)
    return out
