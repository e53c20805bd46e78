"""The user-facing model class, in the manner of scvi-tools: fit, latent, predict, generate, save/load."""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from anndata import AnnData
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin

from ._consensus import (
    agreement_weights,
    align_labels,
    consensus,
    linkage_assign,
    linkage_consensus,
    vote,
)
from ._docs import doc_params
from ._leiden import leiden_latent_k
from ._settings import logger
from ._validation import check_n_clusters, check_positive_int, resolve_device
from .adapters import Prepared, as_source, prepare_fit, prepare_predict
from .nn import (
    ARCHITECTURES,
    TRAINING_KEYS,
    MixedPrior,
    build_networks,
    init_normal_,
    pick_architecture,
    stack_ensemble,
)
from .nn._registry import check_options
from .pp._pca import PCAProjection
from .train import TrainConfig, encode, train_clustergan
from .train._loop import PRIOR_FLOOR

__all__ = [
    "ClusterGAN",
    "DEFAULT_MAX_ITER",
    "PCS_SETTINGS",
    "PooledConsensus",
    "POOL_METHODS",
    "ENSEMBLES",
    "RECIPES",
    "fit_by_agreement",
    "pool_replicas",
    "recipe_max_iter",
    "replica_agreement",
]

DEFAULT_MAX_ITER = 8000
"""Default generator iterations: a CPU-friendly budget (the paper trained 100,000); see ``tl.clustergan``."""

RECIPES: dict[str, dict[str, object]] = {
    "lognorm": {
        "prior": "learned",
        "n_runs": 5,
        "max_iter": 4000,
        "max_iter_per_cluster": 500,
        "beta_r": 1.0,
        "n_top_genes": 2000,
        "n_pcs": "auto",
        "pool_candidates": True,
        "pool_method": "linkage",
        "candidates": ("genes", "pcs"),
    },
    "paper": {
        "prior": "uniform",
        "n_runs": 1,
        "max_iter": DEFAULT_MAX_ITER,
        "max_iter_per_cluster": 0,
        "beta_r": 0.0,
        "n_top_genes": 720,
        "n_pcs": None,
        "pool_candidates": False,
        "pool_method": "vote",
        "candidates": ("genes", "pcs"),
    },
}
"""Training settings that go with each count-preprocessing flavor in :func:`scgan_cluster.tl.clustergan`.

``"lognorm"`` (the default there) is the setting chosen on the validation split of the single-cell
benchmark (``benchmarks/scrna.py``); its ``n_pcs="auto"`` trains a second ensemble on principal
components (:data:`PCS_SETTINGS`), keeps the latent of the one whose replicas agree more, and
(``pool_candidates=True``, chosen on the training and validation cells) labels the cells by
pooling the replicas of both: average linkage of the cells' agreement-weighted co-association
(``pool_method="linkage"``, which replaced the weighted vote on the same evidence; see
:func:`pool_replicas`). ``"paper"`` is
the paper's recipe at the CPU budget of :data:`DEFAULT_MAX_ITER` iterations (the paper:
100,000). The :class:`ClusterGAN` class itself
defaults to the paper's settings.
"""


def recipe_max_iter(flavor: str, n_clusters: int) -> int:
    """Generator iterations of a recipe of :data:`RECIPES` for ``n_clusters`` clusters.

    ``max(max_iter, max_iter_per_cluster * n_clusters)``: the ``"lognorm"`` recipe trains
    4,000 iterations up to K = 8 and 500 per cluster above (10 clusters: 5,000; 16: 8,000), so
    that each zc mode gets about as many generated samples whatever K is; ``"paper"`` trains
    :data:`DEFAULT_MAX_ITER` for every K. On the validation split of the staged count data with
    more than 8 types, longer training of the genes ensemble scored higher (README, "Beyond the
    paper").
    """
    if flavor not in RECIPES:
        raise ValueError(f"flavor must be one of {tuple(RECIPES)}, got {flavor!r}.")
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    recipe = RECIPES[flavor]
    return max(int(recipe["max_iter"]), int(recipe["max_iter_per_cluster"]) * n_clusters)


PCS_SETTINGS: dict[str, object] = {"n_pcs": 50, "lr": 2e-3, "max_iter": 2000}
"""Settings of a model trained on principal components (``n_pcs``) in :func:`scgan_cluster.tl.clustergan`.

In exploratory runs the paper's learning rate (1e-4) left a generator of principal components
far from the data after 1,000-2,000 iterations (a high Wasserstein estimate of the critic, zn
ignored by the generator, poor clusters), while 2e-3 brought the estimate down within 2,000;
``benchmarks/scrna.py`` compares the settings on the validation split.
"""

ENSEMBLES: dict[str, dict[str, object]] = {
    "genes": {},
    "pcs": dict(PCS_SETTINGS),
    "genes_fast": {"lr": PCS_SETTINGS["lr"], "max_iter": PCS_SETTINGS["max_iter"]},
}
"""The ensembles ``n_pcs="auto"`` of :func:`scgan_cluster.tl.clustergan` can train (``candidates=``).

Each entry is what the ensemble changes from the recipe's settings: ``"genes"`` nothing (the
genes at the recipe's learning rate and :func:`recipe_max_iter`); ``"pcs"`` the cells' principal
components at :data:`PCS_SETTINGS` (``n_pcs`` capped at what the data allow); ``"genes_fast"``
the genes at the principal components' learning rate and budget (2e-3, 2,000 iterations; the
third ensemble measured in the README, "A third ensemble in the pool"). A ``lr`` or ``max_iter``
passed to ``tl.clustergan`` overrides the entry's.
"""

_ASSIGN = ("kmeans", "argmax", "leiden")
_REPRESENTATIONS = ("zn", "full", "proba")
_FILES = {"weights": "model.pt", "config": "config.json", "var_names": "var_names.json"}
_FITTED = (
    "architecture",
    "architecture_options",
    "n_latent",
    "sigma",
    "train_config",
    "image_shape",
    "generator",
    "encoder",
    "critic",
    "prior",
    "var_names",
    "transform",
    "projection",
    "cluster_centers_",
    "history_",
    "train_seconds_",
    "labels_",
    "latent_",
    "proba_",
    "scores_",
    "replicas",
    "labels_runs_",
    "selected_run_",
    "selection_scores_",
    "confidence_",
    "run_maps_",
)

_PRIORS = ("uniform", "learned")
_COMBINE = ("consensus", "select")
_PRECISIONS = ("fp32", "bf16")
PRIOR_UPDATE_EVERY = 500
"""Generator iterations between re-estimates of a learned prior (``prior="learned"``)."""


def _package_version() -> str:
    try:
        return version("scgan-cluster")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _seed(random_state: int | None) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if (
        isinstance(random_state, bool)
        or not isinstance(random_state, numbers.Integral)
        or random_state < 0
    ):
        raise TypeError(f"random_state must be a non-negative int or None, got {random_state!r}.")
    return int(random_state)


class ClusterGAN:
    """ClusterGAN (Mukherjee et al., AAAI 2019): a WGAN-GP with a one-hot + Gaussian prior and an encoder.

    Clusters are read from the encoder's latent: by default KMeans on (zn, softmax(zc)).
    Every training hyperparameter left at ``None`` takes the paper's value for the chosen
    architecture (its registry entry's ``defaults``; for ``"mlp"`` the 10x_73k settings), and
    ``max_iter`` defaults to a CPU-friendly budget.

    The data may be an AnnData, a numpy / scipy sparse / torch matrix ``(n, d)``, a 4-D image
    batch ``(n, C, H, W)`` (numpy or torch) or an AnnData of flattened images with
    ``uns["image_shape"] = [C, H, W]`` (as the loaders of :mod:`scgan_cluster.datasets` return).
    All of them reach the same training loop through :mod:`scgan_cluster.adapters`.

    Parameters
    ----------
    {doc_model_params}
    architecture_options
        Network options of the architecture entry, overriding its defaults (for ``"mlp"``:
        ``hidden``, ``leak``, ``batch_norm``, ``batch_norm_first``, ``output``; see
        ``scgan_cluster.nn.ARCHITECTURES[name].network_defaults``).
    random_state
        Seed of initialisation, noise, minibatch order and KMeans; ``None`` draws one (then
        recorded in :attr:`params`). No global random state is touched.
    n_runs
        Train this many independent models (replicas) in one vectorized pass (MLP architectures
        only). Replica ``r`` uses seed ``random_state + r`` for everything, so it follows the same
        random stream as a single model fitted with that seed (the same result up to float
        rounding, which a GAN amplifies over many iterations). The model then exposes the
        replica that agrees most with the others (see :meth:`fit`); all replicas are in
        :attr:`replicas`.
    prior
        ``"uniform"`` (the paper): zc is uniform over the K modes. ``"learned"``: the mode
        proportions are re-estimated from the encoder's soft assignments of the real samples
        every 500 generator iterations from a quarter of the run on (momentum 0.5, no mode
        below a tenth of 1/K; see :class:`scgan_cluster.train.TrainConfig`), for data whose
        clusters differ in size. On the staged count data the re-estimate is self-reinforcing:
        by the end of training a few modes hold almost all the weight (1-3 of 8 modes occupied
        on the sorted PBMC data, ``benchmarks/scrna_summary.py``), the others sit at the floor,
        and the clusters come from KMeans on the whole latent (zn, softmax zc), the default
        ``assign``. With ``assign="argmax"`` a learned prior therefore gives fewer than K
        clusters.
    prior_floor
        With ``prior="learned"``: each re-estimate floors every mode's proportion at
        ``prior_floor / K`` before renormalising (default 0.1), so that no mode is switched
        off; a higher floor keeps more weight on rarely used modes. Ignored with the uniform
        prior.
    combine
        With ``n_runs > 1``: ``"consensus"`` labels each cell by the majority of the replicas
        after matching their cluster ids (with a per-cell confidence, and new cells by the same
        vote); ``"select"`` takes the labels of the replica that agrees most with the others.
    precision
        ``"fp32"`` (default): train in float32. ``"bf16"``: the training step's matrix products
        and convolutions run in bfloat16 (float32 parameters, gradients, losses and Adam), for
        every architecture (hand-written bf16 steps for ``"mlp"``, bf16 autocast for the
        others); faster where the hardware has bfloat16 matrix units (e.g. CPUs with AMX):
        for ``n_runs > 1`` and for the conv architectures. Results differ from float32 by
        rounding; see ``benchmarks/PERFORMANCE.md`` for the accuracy checks.
    compile
        Run the hand-written training steps of the fully connected architectures (``"mlp"``
        without batch-norm) through ``torch.compile``. About 1.2x faster per iteration on a
        2-core CPU, but compiling takes 10-20 s once per process and network shape, so it pays
        for runs of thousands of iterations; needs a working C++ compiler (inductor). The same
        numbers up to float rounding. Default ``False``.
    n_pcs
        ``None`` (default, the paper): the networks see the preprocessed genes. An integer: they
        see the cells' ``n_pcs`` leading principal components instead, fitted on the training
        cells after the preprocessing (each gene standardised and clipped at 10 sd, as
        ``scanpy.pp.scale`` does, then PCA; the components scaled by three times their sd). New
        cells get the same projection; :meth:`generate` and :meth:`decode` map the generator's
        components back to genes. Vectors only.
    {doc_device}

    Examples
    --------
    >>> model = ClusterGAN(n_clusters=8).fit(adata)  # raw counts: the paper's preprocessing is applied
    >>> adata.obs["cluster"] = model.labels_.astype(str)
    >>> latent = model.get_latent_representation(adata)
    >>> new_labels = model.predict(new_adata)  # aligned by var_names, on the training scale
    >>> model.save("my_model/")
    >>> model = ClusterGAN.load("my_model/")
    >>> images = scgan_cluster.datasets.mnist("data/mnist")  # flattened, uns["image_shape"]
    >>> model = ClusterGAN(10).fit(images)  # picks the "mnist" conv networks by shape
    >>> model.generate(16, cluster=3).shape
    (16, 1, 28, 28)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_latent: int | None = None,
        architecture: str = "auto",
        architecture_options: dict[str, Any] | None = None,
        sigma: float | None = None,
        beta_n: float | None = None,
        beta_c: float | None = None,
        beta_r: float = 0.0,
        gp_weight: float | None = None,
        n_critic: int | None = None,
        lr: float | None = None,
        betas: tuple[float, float] | None = None,
        batch_size: int | None = None,
        max_iter: int = DEFAULT_MAX_ITER,
        assign: Literal["kmeans", "argmax", "leiden"] = "kmeans",
        random_state: int | None = 0,
        device: str | torch.device = "auto",
        n_runs: int = 1,
        prior: Literal["uniform", "learned"] = "uniform",
        prior_floor: float = PRIOR_FLOOR,
        combine: Literal["consensus", "select"] = "consensus",
        precision: Literal["fp32", "bf16"] = "fp32",
        compile: bool = False,
        n_pcs: int | None = None,
    ) -> None:
        check_n_clusters(n_clusters, np.iinfo(np.int64).max)
        if n_pcs is not None:
            check_positive_int(n_pcs, "n_pcs")
        self.n_pcs = None if n_pcs is None else int(n_pcs)
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}.")
        self.precision = precision
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}.")
        self.compile = compile
        if prior not in _PRIORS:
            raise ValueError(f"prior must be one of {_PRIORS}, got {prior!r}.")
        if combine not in _COMBINE:
            raise ValueError(f"combine must be one of {_COMBINE}, got {combine!r}.")
        self.prior_mode = prior
        self.combine = combine
        if not isinstance(architecture, str) or (
            architecture != "auto" and architecture not in ARCHITECTURES
        ):
            raise ValueError(
                f"Unknown architecture {architecture!r}; registered: {sorted(ARCHITECTURES)}, or "
                "'auto' to pick one by the data's shape."
            )
        if assign not in _ASSIGN:
            raise ValueError(f"assign must be one of {_ASSIGN}, got {assign!r}.")
        self._requested: dict[str, Any] = {
            "n_latent": n_latent,
            "sigma": sigma,
            "beta_n": beta_n,
            "beta_c": beta_c,
            "gp_weight": gp_weight,
            "n_critic": n_critic,
            "lr": lr,
            "betas": betas,
            "batch_size": batch_size,
        }
        self._requested_options = dict(architecture_options or {})
        self._max_iter = max_iter
        self._beta_r = beta_r
        self._prior_floor = prior_floor
        self.n_clusters = int(n_clusters)
        self.assign = assign
        self.random_state = _seed(random_state)
        self.n_runs = check_positive_int(n_runs, "n_runs")
        self.device = resolve_device(device)
        # "auto" is resolved by the data in fit(); until then the 10x MLP's settings are shown
        # (the options are checked once the entry is known)
        self._auto = architecture == "auto"
        if self._auto:
            known = {k for a in ARCHITECTURES.values() for k in a.network_defaults}
            unknown = set(self._requested_options) - known
            if unknown:
                raise ValueError(
                    f"No architecture takes the options {sorted(unknown)}; the registered ones "
                    f"take {sorted(known)}."
                )
            self._configure("mlp", options={})
        else:
            self._configure(architecture)
        self.architecture = architecture
        # fitted state
        self.generator: torch.nn.Module | None = None
        self.encoder: torch.nn.Module | None = None
        self.critic: torch.nn.Module | None = None
        self.prior: MixedPrior | None = None
        self.var_names: np.ndarray | None = None
        self.transform: dict | None = None
        self.projection: PCAProjection | None = None
        self.image_shape: tuple[int, int, int] | None = None
        self.cluster_centers_: np.ndarray | None = None
        self.history_: dict[str, list[float]] = {}
        self.train_seconds_: float | None = None
        self.labels_: np.ndarray | None = None
        self.latent_: np.ndarray | None = None
        self.proba_: np.ndarray | None = None
        self.scores_: dict[str, float] | None = None
        self.replicas: list[ClusterGAN] | None = None
        self.labels_runs_: np.ndarray | None = None
        self.selected_run_: int | None = None
        self.selection_scores_: np.ndarray | None = None
        self.confidence_: np.ndarray | None = None
        self.run_maps_: np.ndarray | None = None

    def _configure(self, name: str, options: dict[str, Any] | None = None) -> None:
        """Settle the hyperparameters: the entry's paper values, overridden by what the user passed."""
        entry = ARCHITECTURES[name]
        options = self._requested_options if options is None else options
        check_options(name, options)
        hp = {
            **entry.training_defaults,
            **{k: v for k, v in self._requested.items() if v is not None},
        }
        missing = [k for k in TRAINING_KEYS if k not in hp]
        if missing:
            raise ValueError(
                f"Architecture {name!r} has no default for {missing}; pass them to ClusterGAN."
            )
        check_positive_int(hp["n_latent"], "n_latent")
        sigma = hp["sigma"]
        if not isinstance(sigma, numbers.Real) or not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a positive number, got {sigma!r}.")
        self.train_config = TrainConfig(
            max_iter=self._max_iter,
            batch_size=hp["batch_size"],
            n_critic=hp["n_critic"],
            lr=hp["lr"],
            betas=tuple(hp["betas"]),
            gp_weight=hp["gp_weight"],
            beta_n=hp["beta_n"],
            beta_c=hp["beta_c"],
            beta_r=self._beta_r,
            prior_floor=self._prior_floor,
            prior_update_every=PRIOR_UPDATE_EVERY if self.prior_mode == "learned" else 0,
        )
        self.n_latent = int(hp["n_latent"])
        self.sigma = float(sigma)
        self.architecture = name
        self.architecture_options = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in {**entry.network_defaults, **options}.items()
        }

    # ------------------------------------------------------------------ state
    @property
    def params(self) -> dict[str, Any]:
        """All settings as a JSON-friendly dict (what :meth:`save` writes and :meth:`load` reads)."""
        cfg = self.train_config.to_dict()
        cfg.pop("log_every")
        cfg.pop("prior_update_every")
        return {
            "n_clusters": self.n_clusters,
            "n_latent": self.n_latent,
            "architecture": self.architecture,
            "architecture_options": self.architecture_options,
            "sigma": self.sigma,
            **cfg,
            "assign": self.assign,
            "random_state": self.random_state,
            "n_runs": self.n_runs,
            "prior": self.prior_mode,
            "combine": self.combine,
            "precision": self.precision,
            "compile": self.compile,
            "n_pcs": self.n_pcs,
        }

    @property
    def is_trained(self) -> bool:
        """Whether the networks have been trained (or loaded)."""
        return self.encoder is not None

    @property
    def scale(self) -> float | None:
        """The divisor of the paper's transform used in training (``None`` if the input was used as is)."""
        return None if self.transform is None else float(self.transform["scale"])

    def _check_trained(self) -> None:
        if not self.is_trained:
            raise RuntimeError(
                "This ClusterGAN is not trained yet: call fit() first, or ClusterGAN.load()."
            )

    def _sample_shape(self) -> tuple[int, ...] | None:
        """Shape of one row as the networks take it: ``(C, H, W)`` for conv nets, else flat."""
        if self.image_shape is not None and ARCHITECTURES[self.architecture].kind == "image":
            return self.image_shape
        return None

    def _choose_architecture(self, prepared: Prepared) -> None:
        """Resolve ``architecture="auto"`` by the data, and check the data fit the chosen entry."""
        n_features = prepared.x.shape[1]
        shape = prepared.image_shape
        if self._auto:
            self._configure(pick_architecture(shape if shape is not None else n_features))
        elif ARCHITECTURES[self.architecture].kind == "image" and shape is None:
            raise ValueError(
                f"Architecture {self.architecture!r} takes images, but the data are vectors of "
                f"{n_features} features. Pass a (n, C, H, W) batch or an AnnData with "
                "uns['image_shape'], or choose an MLP architecture."
            )

    def _image_hint(self) -> tuple[int, int, int] | None:
        """For an explicit image entry: its paper shape, to read 2-D data as flattened images."""
        if self._auto:
            return None
        entry = ARCHITECTURES[self.architecture]
        if entry.kind != "image" or entry.input_shape is None:
            return None
        return tuple(int(s) for s in entry.input_shape)

    def _build(self, n_features: int, image_shape: tuple[int, int, int] | None = None) -> None:
        self.generator, self.encoder, self.critic = self._networks(
            n_features, image_shape, self.random_state
        )
        self.prior = MixedPrior(self.n_latent, self.n_clusters, self.sigma).to(self.device)

    def _networks(
        self, n_features: int, image_shape: tuple[int, int, int] | None, seed: int
    ) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        opts = {
            k: tuple(v) if isinstance(v, list) else v for k, v in self.architecture_options.items()
        }
        kind = ARCHITECTURES[self.architecture].kind
        input_shape = image_shape if kind == "image" else n_features
        # torch's layer constructors draw a default init from the global RNG; ours is re-drawn
        # from a seeded generator below, and fork_rng leaves the user's global state as it was
        with torch.random.fork_rng(devices=[]):
            gen, enc, crit = build_networks(
                self.architecture, input_shape, self.n_latent, self.n_clusters, **opts
            )
        init = torch.Generator().manual_seed(seed)
        for net in (gen, enc, crit):
            init_normal_(net, 0.02, generator=init)
        return gen.to(self.device), enc.to(self.device), crit.to(self.device)

    def _replica(self, r: int) -> ClusterGAN:
        """An untrained single model with replica ``r``'s seed and otherwise our settings."""
        params = {**self.params, "random_state": self.random_state + r, "n_runs": 1}
        params["betas"] = tuple(params["betas"])
        rep = ClusterGAN(**params, device=self.device)
        rep.image_shape = self.image_shape
        return rep

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: AnnData | np.ndarray | Any,
        *,
        layer: str | None = None,
        preprocess: bool = True,
        n_top_genes: int = 720,
        callback: Callable[[ClusterGAN, int], None] | None = None,
        flavor: Literal["paper", "lognorm"] = "paper",
    ) -> ClusterGAN:
        """Train on ``data`` and cluster it.

        Parameters
        ----------
        data
            AnnData (cells x genes, or flattened images with ``uns["image_shape"]``), a numpy /
            scipy sparse / torch matrix ``(n, d)``, or an image batch ``(n, C, H, W)``.
        layer
            For AnnData: the layer to read instead of ``X``.
        preprocess
            For vectors: ``True``: data prepared by :func:`scgan_cluster.pp.preprocess` are used
            as they are, anything else must be raw counts and gets the preprocessing of
            ``flavor`` (on a copy). ``False``: the values are used as they are (they should lie
            roughly in [0, 1]). Images never get count preprocessing: their pixels must lie in
            [0, 1] (integer images are divided by 255).
        n_top_genes
            Genes kept when the preprocessing is applied here.
        callback
            Called as ``callback(model, iteration)`` every ``max_iter // 100`` generator
            iterations during training, e.g. to evaluate the clustering along the run
            (``model.get_latent_representation`` works inside it) or to save checkpoints.
            With ``n_runs > 1`` the replicas are still stacked while it runs, so the model has
            no networks yet inside the callback (it serves for progress and timing only).
        flavor
            Preprocessing of raw counts applied here (see :func:`scgan_cluster.pp.preprocess`):
            ``"paper"`` (top genes by count variance, ``log2(1 + C) / max``) or ``"lognorm"``
            (library-size normalisation, ``ln(1 + x)``, scanpy's highly variable genes, ``/ max``).

        Returns
        -------
        ``self``, with ``labels_`` (int cluster of each training cell), ``latent_`` (zn),
        ``proba_`` (softmax of zc), ``history_`` and ``cluster_centers_`` (KMeans) set.

        With ``n_runs > 1`` also ``replicas`` (the R trained single models), ``labels_runs_``
        (``n_obs x R`` labels of every replica), ``selection_scores_`` (each replica's mean
        adjusted Rand index with the others), ``selected_run_`` (the replica that agrees most
        with the others: a label-free choice, whose networks, ``latent_`` and ``proba_`` the
        model exposes), ``run_maps_`` (each replica's cluster ids matched onto the consensus
        ids) and ``confidence_`` (per cell, the fraction of replicas that agree with its label).
        ``labels_`` is the consensus (``combine="consensus"``) or the selected replica's labels.
        """
        prepared = prepare_fit(
            data,
            layer=layer,
            preprocess=preprocess,
            n_top_genes=n_top_genes,
            image_shape=self._image_hint(),
            flavor=flavor,
        )
        n_obs = prepared.x.shape[0]
        check_n_clusters(self.n_clusters, n_obs)
        # a failed or interrupted fit leaves the model as it was before the call
        previous = {name: getattr(self, name) for name in _FITTED}
        try:
            self.scores_ = None
            self._choose_architecture(prepared)
            if self.train_config.batch_size > n_obs:
                raise ValueError(
                    f"There are fewer cells ({n_obs}) than one batch (batch_size={self.train_config.batch_size}). "
                    f"Pass batch_size={n_obs} or smaller."
                )
            self.image_shape = prepared.image_shape
            self.projection = self._fit_projection(prepared)
            if self.n_runs > 1:
                self._fit_ensemble(prepared, callback)
                return self
            x = self._network_input(prepared)
            self._build(x.shape[1], prepared.image_shape)
            self.var_names = np.asarray(prepared.var_names, dtype=str)
            self.transform = prepared.transform
            source = as_source(x, self.device, self._sample_shape())
            noise_gen = torch.Generator(device=self.device).manual_seed(self.random_state + 1)
            index_gen = torch.Generator().manual_seed(self.random_state + 2)
            logger.info(
                "training ClusterGAN (%s) on %d samples x %s, K=%d, %d iterations on %s",
                self.architecture,
                n_obs,
                f"{x.shape[1]} features"
                if prepared.image_shape is None
                else f"images {list(prepared.image_shape)}",
                self.n_clusters,
                self.train_config.max_iter,
                self.device,
            )
            start = time.perf_counter()
            self.history_ = train_clustergan(
                self.generator,
                self.encoder,
                self.critic,
                self.prior,
                source,
                self.train_config,
                noise_generator=noise_gen,
                index_generator=index_gen,
                callback=None if callback is None else (lambda it, record: callback(self, it)),
                precision=self.precision,
                compile=self.compile,
            )
            self.train_seconds_ = time.perf_counter() - start
            self._assign(x)
        except BaseException:
            for name, value in previous.items():
                setattr(self, name, value)
            raise
        return self

    def _fit_projection(self, prepared: Prepared) -> PCAProjection | None:
        """With ``n_pcs``: the principal components the networks will see, fitted on ``prepared``."""
        if self.n_pcs is None:
            return None
        if prepared.image_shape is not None:
            raise ValueError(
                "n_pcs applies to vectors (cells x genes), not to images; pass n_pcs=None."
            )
        return PCAProjection.fit(prepared.x, self.n_pcs)

    def _network_input(self, prepared: Prepared):
        """What the networks take: the prepared matrix, or its principal components (``n_pcs``)."""
        if self.projection is None:
            return prepared.x
        return self.projection.transform(prepared.x)

    def _assign(self, x) -> None:
        """Cluster the training cells from the networks' input ``x`` (see :meth:`_network_input`)."""
        zn, proba = self._encode(x)
        if self.assign == "kmeans":
            km = KMeans(self.n_clusters, n_init=10, random_state=self.random_state)
            self.labels_ = km.fit_predict(np.hstack([zn, proba]).astype(np.float64)).astype(
                np.int64
            )
            self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        elif self.assign == "leiden":
            self.labels_ = leiden_latent_k(zn, self.n_clusters, self.random_state)
            # new cells go to the nearest cluster mean in zn
            self.cluster_centers_ = np.stack(
                [zn[self.labels_ == c].mean(axis=0) for c in range(int(self.labels_.max()) + 1)]
            ).astype(np.float32)
        else:
            self.labels_ = proba.argmax(axis=1).astype(np.int64)
            self.cluster_centers_ = None
        self.latent_, self.proba_ = zn, proba

    def _fit_ensemble(self, prepared: Prepared, callback: Callable | None) -> None:
        x = self._network_input(prepared)
        n_features = x.shape[1]
        replicas = [self._replica(r) for r in range(self.n_runs)]
        nets = [rep._networks(n_features, self.image_shape, rep.random_state) for rep in replicas]
        try:
            gen, enc, crit = (stack_ensemble([n[i] for n in nets]) for i in range(3))
        except ValueError as err:
            raise ValueError(
                f"n_runs > 1 is not available for architecture {self.architecture!r}: {err}"
            ) from None
        self.prior = MixedPrior(self.n_latent, self.n_clusters, self.sigma).to(self.device)
        self.var_names = np.asarray(prepared.var_names, dtype=str)
        self.transform = prepared.transform
        source = as_source(x, self.device, self._sample_shape())
        seeds = [rep.random_state for rep in replicas]
        noise_gens = [torch.Generator(device=self.device).manual_seed(s + 1) for s in seeds]
        index_gens = [torch.Generator().manual_seed(s + 2) for s in seeds]
        logger.info(
            "training %d ClusterGAN replicas together on %d cells x %d features, K=%d, %d iterations on %s",
            self.n_runs,
            x.shape[0],
            n_features,
            self.n_clusters,
            self.train_config.max_iter,
            self.device,
        )
        start = time.perf_counter()
        histories = train_clustergan(
            gen,
            enc,
            crit,
            self.prior,
            source,
            self.train_config,
            noise_generator=noise_gens,
            index_generator=index_gens,
            callback=None if callback is None else (lambda it, record: callback(self, it)),
            precision=self.precision,
            compile=self.compile,
        )
        seconds = time.perf_counter() - start
        for r, (rep, g, e, c, hist) in enumerate(
            zip(replicas, gen.unstack(), enc.unstack(), crit.unstack(), histories, strict=True)
        ):
            rep.generator, rep.encoder, rep.critic = g.eval(), e.eval(), c.eval()
            rep.prior = self._replica_prior(r)
            rep.var_names, rep.transform = self.var_names, self.transform
            rep.projection = self.projection
            rep.history_, rep.train_seconds_ = hist, seconds
            rep._assign(x)
        self.train_seconds_ = seconds
        self.labels_runs_ = np.stack([rep.labels_ for rep in replicas], axis=1)
        labels, confidence, maps, scores = consensus(self.labels_runs_, self.n_clusters)
        best = int(np.argmax(scores))
        self._set_replicas(replicas, best, scores, maps)
        chosen = replicas[best]
        self.latent_, self.proba_ = chosen.latent_, chosen.proba_
        if self.combine == "consensus":
            self.labels_, self.confidence_ = labels.astype(np.int64), confidence
        else:
            self.labels_ = chosen.labels_
            # fraction of replicas that agree with the chosen one, after matching cluster ids
            self.confidence_ = (
                vote(self.labels_runs_, maps, self.n_clusters)[
                    np.arange(len(labels)), maps[best][self.labels_]
                ]
                / self.n_runs
            )

    def _replica_prior(self, r: int) -> MixedPrior:
        """Replica ``r``'s prior: its own learned proportions, or the shared uniform prior."""
        if self.prior.weights.dim() == 1:
            return self.prior
        prior = MixedPrior(self.n_latent, self.n_clusters, self.sigma).to(self.device)
        prior.weights.copy_(self.prior.weights[r])
        return prior

    def _set_replicas(
        self, replicas: list[ClusterGAN], best: int, scores: np.ndarray, maps: np.ndarray
    ) -> None:
        self.replicas = replicas
        self.selected_run_ = best
        self.selection_scores_ = np.asarray(scores, dtype=np.float64)
        self.run_maps_ = np.asarray(maps, dtype=np.int64)
        chosen = replicas[best]
        self.generator, self.encoder, self.critic = chosen.generator, chosen.encoder, chosen.critic
        self.prior = chosen.prior
        self.cluster_centers_ = chosen.cluster_centers_
        self.history_ = chosen.history_

    def _encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The encoder's zn and softmax(zc) for the networks' input ``x`` (see :meth:`_network_input`)."""
        sample_shape = self._sample_shape()
        zn, logits = encode(self.encoder, as_source(x, self.device, sample_shape))
        return zn.numpy().astype(np.float32), torch.softmax(logits, dim=1).numpy().astype(
            np.float32
        )

    # ------------------------------------------------------------------ inference
    @doc_params
    def get_latent_representation(
        self,
        data: AnnData | np.ndarray | Any,
        *,
        layer: str | None = None,
        representation: Literal["zn", "full", "proba"] = "zn",
    ) -> np.ndarray:
        """Encode cells.

        Parameters
        ----------
        {doc_new_data}
        representation
            ``"zn"`` (continuous latent, ``n_latent`` columns), ``"proba"`` (softmax of zc, K
            columns) or ``"full"`` (both joined: what KMeans clusters).

        Returns
        -------
        float32 array with one row per cell.
        """
        self._check_trained()
        if representation not in _REPRESENTATIONS:
            raise ValueError(
                f"representation must be one of {_REPRESENTATIONS}, got {representation!r}."
            )
        prepared = prepare_predict(
            data, self.var_names, self.transform, layer=layer, image_shape=self.image_shape
        )
        zn, proba = self._encode(self._network_input(prepared))
        if representation == "zn":
            return zn
        if representation == "proba":
            return proba
        return np.hstack([zn, proba])

    @doc_params
    def predict(
        self,
        data: AnnData | np.ndarray | Any,
        *,
        layer: str | None = None,
        assign: Literal["kmeans", "argmax", "leiden"] | None = None,
    ) -> np.ndarray:
        """Cluster labels (int, 0..K-1) of cells, new or old.

        Parameters
        ----------
        {doc_new_data}
        assign
            ``"kmeans"`` puts each cell in the nearest KMeans centre found in training;
            ``"leiden"`` in the leiden cluster whose mean zn (in training) is nearest;
            ``"argmax"`` takes its most likely zc mode. ``None`` uses the model's ``assign``;
            other than ``"argmax"``, only the model's own ``assign`` has centres.
            An ensemble with ``combine="consensus"`` labels cells by the replicas' matched vote
            (with the matching found in training; for the other ``assign``, matched on ``data``).
        """
        self._check_trained()
        assign = self.assign if assign is None else assign
        if assign not in _ASSIGN:
            raise ValueError(f"assign must be one of {_ASSIGN}, got {assign!r}.")
        if self.replicas is not None and self.combine == "consensus":
            runs = np.stack(
                [rep.predict(data, layer=layer, assign=assign) for rep in self.replicas], axis=1
            )
            if assign != self.assign:
                # run_maps_ match the ids of the replicas' own assignment; zc modes carry other
                # ids, so these labellings are matched afresh (label-free, as in training)
                return consensus(runs, self.n_clusters)[0].astype(np.int64)
            return vote(runs, self.run_maps_, self.n_clusters).argmax(axis=1).astype(np.int64)
        full = self.get_latent_representation(data, layer=layer, representation="full")
        if assign == "argmax":
            return full[:, self.n_latent :].argmax(axis=1).astype(np.int64)
        if assign != self.assign:
            raise ValueError(
                f"This model was trained with assign={self.assign!r} and has no centres for "
                f"assign={assign!r}; pass assign={self.assign!r} or 'argmax'."
            )
        # nearest centre (KMeans: in the full latent; leiden: cluster means in zn), computed in
        # chunks (no n x K x d array)
        space = full if assign == "kmeans" else full[:, : self.n_latent]
        return pairwise_distances_argmin(space, self.cluster_centers_).astype(np.int64)

    @torch.no_grad()
    def generate(
        self, n: int, *, cluster: int | None = None, random_state: int | None = None
    ) -> np.ndarray:
        """Sample ``n`` cells from the generator, from zc mode ``cluster`` (or from all modes).

        Parameters
        ----------
        n
            Number of samples.
        cluster
            The zc mode to sample from; ``None`` draws modes from the prior.
        random_state
            Seed of the latent draw (``None``: a fresh one).

        Returns
        -------
        float32 array ``(n, n_features)`` on the training scale (for counts: the preprocessed
        values; with ``n_pcs``, the generated components mapped back to the genes),
        or ``(n, C, H, W)`` images with pixels in [0, 1] for a model trained on images.
        """
        self._check_trained()
        check_positive_int(n, "n")
        if cluster is not None and (
            isinstance(cluster, bool)
            or not isinstance(cluster, numbers.Integral)
            or not 0 <= cluster < self.n_clusters
        ):
            raise ValueError(
                f"cluster must be an integer in [0, {self.n_clusters - 1}] or None, got {cluster!r}."
            )
        gen = torch.Generator(device=self.device).manual_seed(_seed(random_state))
        z, _, _ = self.prior.sample(int(n), generator=gen, cluster=cluster)
        return self.decode(z)

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Generator output for given latent vectors ``z = (zn, zc)`` (zc need not be one-hot).

        Parameters
        ----------
        z
            ``(n, n_latent + n_clusters)`` array or tensor: zn joined with zc, e.g. a convex
            combination of two one-hot codes to interpolate between clusters (section 2.7 of the
            paper).

        Returns
        -------
        float32 array ``(n, n_features)``, or ``(n, C, H, W)`` for a model trained on images.
        """
        self._check_trained()
        z = torch.as_tensor(np.asarray(z) if not isinstance(z, torch.Tensor) else z)
        if z.ndim != 2 or z.shape[1] != self.n_latent + self.n_clusters:
            raise ValueError(
                f"z must have shape (n, n_latent + n_clusters) = (n, {self.n_latent + self.n_clusters}), "
                f"got {tuple(z.shape)}."
            )
        self.generator.eval()
        x = self.generator(z.to(device=self.device, dtype=torch.float32)).float().cpu().numpy()
        if self.projection is not None:  # back from principal components to the features
            x = self.projection.inverse_transform(x)
        if self.image_shape is not None:
            x = x.reshape(x.shape[0], *self.image_shape)
        return x

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the model to directory ``path``: ``model.pt`` (state dicts), ``config.json``, ``var_names.json``.

        Parameters
        ----------
        path
            A directory (created if needed).
        overwrite
            Replace a model already saved there; otherwise a non-empty directory is an error.
        """
        self._check_trained()
        path = Path(path)
        if path.exists() and not overwrite and any(path.iterdir()):
            raise FileExistsError(
                f"{path} exists and is not empty; pass overwrite=True to replace the model there."
            )
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "generator": self.generator.state_dict(),
            "encoder": self.encoder.state_dict(),
            "critic": self.critic.state_dict(),
            "prior": self.prior.state_dict(),
        }
        if self.cluster_centers_ is not None:
            state["cluster_centers"] = torch.from_numpy(self.cluster_centers_)
        if self.projection is not None:
            state["projection"] = self.projection.state_dict()
        if self.replicas is not None:
            state["replicas"] = [
                {
                    "generator": rep.generator.state_dict(),
                    "encoder": rep.encoder.state_dict(),
                    "critic": rep.critic.state_dict(),
                    "prior": rep.prior.state_dict(),
                    **(
                        {}
                        if rep.cluster_centers_ is None
                        else {"cluster_centers": torch.from_numpy(rep.cluster_centers_)}
                    ),
                }
                for rep in self.replicas
            ]
        config = {
            "scgan_cluster_version": _package_version(),
            "params": self.params,
            "n_features": len(self.var_names),
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "transform": None
            if self.transform is None
            else {k: v for k, v in self.transform.items() if k != "genes"},
            "history": self.history_,
            "train_seconds": self.train_seconds_,
        }
        if self.replicas is not None:
            config["runs"] = {
                "selected": self.selected_run_,
                "selection_scores": self.selection_scores_.tolist(),
                "maps": self.run_maps_.tolist(),
                "histories": [rep.history_ for rep in self.replicas],
            }
        (path / _FILES["config"]).write_text(json.dumps(config, indent=1))
        (path / _FILES["var_names"]).write_text(json.dumps(self.var_names.tolist()))
        torch.save(state, path / _FILES["weights"])

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "auto") -> ClusterGAN:
        """Load a model written by :meth:`save` (weights read with ``torch.load(weights_only=True)``).

        Parameters
        ----------
        path
            The directory given to :meth:`save`.
        device
            Where to put the networks (``"auto"``: cuda, then mps, then cpu).
        """
        path = Path(path)
        missing = [f for f in _FILES.values() if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a saved ClusterGAN: missing {missing}.")
        config = json.loads((path / _FILES["config"]).read_text())
        var_names = np.asarray(json.loads((path / _FILES["var_names"]).read_text()), dtype=str)
        params = dict(config["params"])
        params["betas"] = tuple(params["betas"])
        model = cls(**params, device=device)
        shape = config.get("image_shape")
        model.image_shape = None if shape is None else tuple(int(s) for s in shape)
        state = torch.load(path / _FILES["weights"], map_location=model.device, weights_only=True)
        if "projection" in state:
            model.projection = PCAProjection.from_state(state["projection"])
        n_in = int(config["n_features"]) if model.projection is None else model.projection.n_pcs
        model._build(n_in, model.image_shape)
        model.generator.load_state_dict(state["generator"])
        model.encoder.load_state_dict(state["encoder"])
        model.critic.load_state_dict(state["critic"])
        model.prior.load_state_dict(state["prior"])
        for net in (model.generator, model.encoder, model.critic):
            net.eval()
        if "cluster_centers" in state:
            model.cluster_centers_ = state["cluster_centers"].cpu().numpy()
        model.var_names = var_names
        if config["transform"] is not None:
            model.transform = {**config["transform"], "genes": var_names.tolist()}
        model.history_ = config.get("history", {})
        model.train_seconds_ = config.get("train_seconds")
        if "replicas" in state:
            runs = config["runs"]
            replicas = []
            for r, (rstate, hist) in enumerate(
                zip(state["replicas"], runs["histories"], strict=True)
            ):
                rep = model._replica(r)
                rep._build(n_in, model.image_shape)
                for name in ("generator", "encoder", "critic"):
                    getattr(rep, name).load_state_dict(rstate[name])
                    getattr(rep, name).eval()
                if "prior" in rstate:
                    rep.prior.load_state_dict(rstate["prior"])
                rep.var_names, rep.transform = model.var_names, model.transform
                rep.projection = model.projection
                if "cluster_centers" in rstate:
                    rep.cluster_centers_ = rstate["cluster_centers"].cpu().numpy()
                rep.history_, rep.train_seconds_ = hist, model.train_seconds_
                replicas.append(rep)
            maps = runs.get("maps")
            if maps is None:  # saved before consensus existed: the model used the selected replica
                model.combine = "select"
                maps = np.tile(np.arange(model.n_clusters), (len(replicas), 1))
            model._set_replicas(
                replicas,
                int(runs["selected"]),
                np.array(runs["selection_scores"]),
                np.array(maps, dtype=np.int64),
            )
        return model

    def __repr__(self) -> str:
        if not self.is_trained:
            state = "not trained"
        elif self.image_shape is not None:
            state = f"trained on images {list(self.image_shape)}"
        else:
            state = f"trained on {len(self.var_names)} features"
        return f"ClusterGAN(n_clusters={self.n_clusters}, n_latent={self.n_latent}, architecture={self.architecture!r}; {state})"


ClusterGAN = doc_params(ClusterGAN)


def replica_agreement(model: ClusterGAN) -> float:
    """Mean adjusted Rand index between the replicas of a trained ensemble (no labels used).

    Parameters
    ----------
    model
        A model trained with ``n_runs >= 2``.
    """
    if model.replicas is None or len(model.replicas) < 2:
        raise ValueError("replica_agreement needs a model trained with n_runs >= 2.")
    return float(np.mean(model.selection_scores_))


def fit_by_agreement(
    candidates: Sequence[ClusterGAN], data: AnnData | np.ndarray | Any, **fit_kwargs: Any
) -> tuple[int, list[float]]:
    """Fit every candidate on ``data`` and pick, without labels, the one whose replicas agree most.

    Replicas that land on the same clustering from different seeds are taken as the sign of a
    stable one: the pick is the candidate with the highest :func:`replica_agreement` (the first
    on a tie).

    Parameters
    ----------
    candidates
        Untrained models, each with ``n_runs >= 2`` (e.g. on genes and on principal components).
    data
        What :meth:`ClusterGAN.fit` takes.
    **fit_kwargs
        Passed to every :meth:`ClusterGAN.fit`.

    Returns
    -------
    The index of the chosen candidate and every candidate's agreement. All candidates are trained.
    """
    if not candidates:
        raise ValueError("fit_by_agreement needs at least one candidate.")
    if any(c.n_runs < 2 for c in candidates):
        raise ValueError(
            "Every candidate needs n_runs >= 2: the choice compares the agreement of replicas."
        )
    scores = [replica_agreement(c.fit(data, **fit_kwargs)) for c in candidates]
    return int(np.argmax(scores)), scores


@dataclass(frozen=True)
class PooledConsensus:
    """The weighted consensus of the replicas of several trained ensembles (see :func:`pool_replicas`).

    Attributes end in ``_`` as on :class:`ClusterGAN`, so that code reading a fitted model's
    ``labels_`` / ``confidence_`` / ``labels_runs_`` / ``predict`` reads these the same way.
    """

    candidates: tuple[ClusterGAN, ...]
    labels_: np.ndarray
    """``(n_cells,)`` consensus labels of the training cells."""
    confidence_: np.ndarray
    """``(n_cells,)`` ``"vote"``: share of the total weight that votes for the consensus label;
    ``"linkage"``: mean weighted co-association of the cell with its cluster."""
    labels_runs_: np.ndarray
    """``(n_cells, R)`` every replica's labels, the candidates' replicas one after the other."""
    weights_: np.ndarray
    """``(R,)`` each replica's vote: its mean adjusted Rand index with all other replicas."""
    run_maps_: np.ndarray
    """``(R, K)`` relabelling of each replica onto the consensus ids."""
    method: str = "vote"
    """How the replicas were combined (:func:`pool_replicas`)."""
    profiles_: np.ndarray | None = None
    """``"linkage"``: ``(K, R * K)`` the clusters' co-association profiles; ``None`` for the vote."""

    @property
    def n_clusters(self) -> int:
        """The number of consensus clusters.

        The candidates' K, or fewer for a linkage tree cut at another number
        (``pool_replicas(n_groups=...)``).
        """
        if self.profiles_ is not None:
            return len(self.profiles_)
        return self.candidates[0].n_clusters

    def predict(self, data: AnnData | np.ndarray | Any, *, layer: str | None = None) -> np.ndarray:
        """Consensus labels of cells, new or old: the replicas' labels combined as in training.

        ``"vote"``: the weighted vote, matched as in training; ``"linkage"``: the cluster whose
        training cells the replicas put the cell with most (highest mean co-association).
        """
        runs = _replica_labels(self.candidates, data, layer)
        if self.method == "linkage":
            k = self.candidates[0].n_clusters  # the replicas' labels
            return linkage_assign(runs, self.profiles_, k, self.weights_)
        return vote(runs, self.run_maps_, self.n_clusters, self.weights_).argmax(axis=1)


def _replica_labels(
    candidates: Sequence[ClusterGAN], data: AnnData | np.ndarray | Any, layer: str | None
) -> np.ndarray:
    """``(n_cells, R)`` every replica's labels of ``data``, the candidates one after the other."""
    return np.concatenate(
        [
            np.stack([rep.predict(data, layer=layer) for rep in c.replicas], axis=1)
            for c in candidates
        ],
        axis=1,
    )


POOL_METHODS = ("vote", "linkage")
"""Ways :func:`pool_replicas` combines the replicas."""


def pool_replicas(
    candidates: Sequence[ClusterGAN],
    *,
    method: Literal["vote", "linkage"] = "vote",
    max_cells: int = 5000,
    n_groups: int | None = None,
    random_state: int = 0,
    data: AnnData | np.ndarray | Any | None = None,
    layer: str | None = None,
) -> PooledConsensus:
    """One labelling from the replicas of several trained ensembles together, without labels.

    Every replica of every candidate (e.g. the ensemble on genes and the one on principal
    components of ``tl.clustergan(n_pcs="auto")``) counts with the weight of its agreement with
    all the others (mean adjusted Rand index; negative values count 0), so that replicas that
    disagree with the rest count less.

    Parameters
    ----------
    candidates
        Ensembles (``n_runs >= 2``) trained on the same cells with the same ``n_clusters``.
    method
        ``"vote"``: each replica's cluster ids are matched to the consensus and each cell takes
        the label of the weighted majority (:func:`scgan_cluster._consensus.consensus`);
        ``"linkage"``: average-linkage clustering of the weighted co-association (the share of
        replicas that put two cells together), cut at K clusters, no matching of ids
        (:func:`scgan_cluster._consensus.linkage_consensus`; on more than ``max_cells``
        training cells a random subset builds the tree and the others join the cluster they
        are co-assigned with most).
    max_cells, random_state
        ``"linkage"`` only: most cells the tree is built on, and the seed of that subset.
    n_groups
        ``"linkage"`` only: the number of clusters to cut the tree into, at most the replicas'
        ``n_clusters`` (``None``: that).
    data, layer
        The cells to pool, labelled here by every replica (as :meth:`PooledConsensus.predict`
        does). ``None``: the training cells' labels the ensembles hold. Ensembles loaded with
        :meth:`ClusterGAN.load` hold none (only their networks are saved): pass their training
        cells here to pool them again; with the same cells and settings this gives the pooled
        labels of training back.
    """
    if method not in POOL_METHODS:
        raise ValueError(f"method must be one of {POOL_METHODS}, got {method!r}.")
    if not candidates:
        raise ValueError("pool_replicas needs at least one trained ensemble.")
    for c in candidates:
        c._check_trained()
        if c.replicas is None:
            raise ValueError("pool_replicas needs ensembles trained with n_runs >= 2.")
    if len({c.n_clusters for c in candidates}) > 1:
        raise ValueError("The ensembles must share n_clusters.")
    if n_groups is not None and method != "linkage":
        raise ValueError("n_groups cuts the linkage tree: pass method='linkage'.")
    if data is not None:
        runs = _replica_labels(candidates, data, layer)
    elif any(c.labels_runs_ is None for c in candidates):
        raise ValueError(
            "These ensembles hold no labels of training cells (loaded from disk: only the "
            "networks are saved); pass data= (their training cells, or any cells to pool) so "
            "that their replicas label them."
        )
    elif len({len(c.labels_runs_) for c in candidates}) > 1:
        raise ValueError("The ensembles must share their training cells (or pass data=).")
    else:
        runs = np.concatenate([c.labels_runs_ for c in candidates], axis=1)
    k = candidates[0].n_clusters
    profiles = None
    if method == "linkage":
        labels, confidence, profiles, scores = linkage_consensus(
            runs,
            k,
            weights="agreement",
            max_cells=max_cells,
            n_groups=n_groups,
            random_state=random_state,
        )
        maps = np.stack([align_labels(labels, runs[:, r], k) for r in range(runs.shape[1])])
    else:
        labels, confidence, maps, scores = consensus(runs, k, weights="agreement")
    return PooledConsensus(
        tuple(candidates),
        labels.astype(np.int64),
        confidence,
        runs,
        agreement_weights(scores),
        maps,
        method,
        profiles,
    )
