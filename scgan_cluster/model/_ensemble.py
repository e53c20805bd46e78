"""One ClusterGAN ensemble: ``n_runs`` replicas of one network (one network for ``n_runs=1``).

:class:`GANEnsemble` is the network-level model: the paper's ClusterGAN with its settings,
trained on one input (genes or principal components), labelling cells by its ``assign`` rule.
The user's model, :class:`scgan_cluster.ClusterGAN`, trains one or more of these and pools
their replicas (:mod:`scgan_cluster.model._pool`).
"""

from __future__ import annotations

import copy
import numbers
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from anndata import AnnData
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin

from scgan_cluster._consensus import consensus, row_blocks, vote
from scgan_cluster._docs import doc_params
from scgan_cluster._leiden import leiden_latent_k
from scgan_cluster._settings import logger
from scgan_cluster._validation import check_n_clusters, check_positive_int, resolve_device
from scgan_cluster.adapters import Prepared, as_source, prepare_fit, prepare_predict
from scgan_cluster.nn import (
    ARCHITECTURES,
    TRAINING_KEYS,
    MixedPrior,
    build_networks,
    init_normal_,
    pick_architecture,
    stack_ensemble,
)
from scgan_cluster.nn._registry import check_options
from scgan_cluster.pp._pca import PCAProjection
from scgan_cluster.recipes import PAPER_MAX_ITER
from scgan_cluster.train import TrainConfig, encode, run_seconds, train_clustergan
from scgan_cluster.train._loop import PRIOR_FLOOR

from ._io import load_model, write_model_dir

__all__ = ["GANEnsemble", "PRIOR_UPDATE_EVERY"]

_ASSIGN = ("kmeans", "argmax", "leiden")
_REPRESENTATIONS = ("zn", "full", "proba")
_NETWORKS = ("generator", "encoder", "critic", "prior")
_PRIORS = ("uniform", "learned")
_COMBINE = ("consensus", "select")
_PRECISIONS = ("fp32", "bf16")
PRIOR_UPDATE_EVERY = 500
"""Generator iterations between re-estimates of a learned prior (``prior="learned"``)."""


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


def _encode_all(models: list[GANEnsemble], x) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each model's ``(zn, softmax zc)`` of the networks' input ``x``, in one pass over the cells.

    The models share the input (replicas of one ensemble): every chunk of cells is read once and
    encoded by each of them, which for data read from disk (dask) is one read, not one per model.
    """
    source = as_source(x, models[0].device, models[0]._sample_shape())
    outputs = encode([m.encoder for m in models], source)
    return [
        (zn.numpy().astype(np.float32), torch.softmax(lg, dim=1).numpy().astype(np.float32))
        for zn, lg in outputs
    ]


def _index_generator(source, seed: int) -> torch.Generator:
    """The minibatch order's generator: on the GPU for data gathered there, else on the CPU."""
    device = source.device
    on_device = device.type == "cuda" and getattr(source, "gathers_on_device", False)
    return torch.Generator(device=device if on_device else "cpu").manual_seed(seed)


class GANEnsemble:
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
        ``hidden``, ``leak``, ``batch_norm``, ``batch_norm_first``, ``critic_batch_norm``,
        ``output``; see ``scgan_cluster.nn.ARCHITECTURES[name].network_defaults``). For example
        ``{"critic_batch_norm": False}`` takes batch norm out of the critic of the paper's
        synthetic / Pendigits networks (decision 0045).
    random_state
        Seed of initialisation, noise, minibatch order and KMeans; ``None`` draws one (then
        recorded in :attr:`params`). No global random state is touched.
    n_runs
        Train this many independent models (replicas) in one vectorized pass (the MLP and
        convolutional architectures; convolutions run grouped, one group per replica).
        Replica ``r`` uses seed ``random_state + r`` for everything, so it follows the same
        random stream as a single model fitted with that seed (the same result up to float
        rounding, which a GAN amplifies over many iterations). The model then exposes the
        replica that agrees most with the others (see :meth:`fit`); all replicas are in
        :attr:`replicas`.
    prior
        ``"uniform"`` (the paper): zc is uniform over the K modes. ``"learned"``: the mode
        proportions are re-estimated from the encoder's soft assignments of the real samples every
        ``prior_update_every`` (500) generator iterations from a quarter of the run on (momentum
        0.5, no mode below a tenth of 1/K; see :class:`scgan_cluster.train.TrainConfig`), for data
        whose clusters differ in size. On the staged count data the re-estimate is self-reinforcing:
        by the end of training a few modes hold almost all the weight (1-3 of 8 modes occupied on
        the sorted PBMC data, ``benchmarks/scrna_summary.py``), the others sit at the floor, and the
        clusters come from KMeans on the whole latent (zn, softmax zc), the default ``assign``. With
        ``assign="argmax"`` a learned prior therefore gives fewer than K clusters.
    prior_floor
        With ``prior="learned"``: each re-estimate floors every mode's proportion at
        ``prior_floor / K`` before renormalising (default 0.1), so that no mode is switched
        off; a higher floor keeps more weight on rarely used modes. Ignored with the uniform
        prior.
    prior_update_every
        With ``prior="learned"``: generator iterations between two re-estimates (default
        500; checked between the loop's blocks of 32 iterations). The re-estimates start a
        quarter into the run, so a shorter run gets fewer of them unless this shrinks with it
        (a run of 4,000 iterations gets 6 at the default, one of 1,000 gets 2).
    combine
        With ``n_runs > 1``: ``"consensus"`` labels each cell by the majority of the replicas
        after matching their cluster ids (with a per-cell confidence, and new cells by the same
        vote); ``"select"`` takes the labels of the replica that agrees most with the others.
    precision
        ``"fp32"`` (default): train in float32. ``"bf16"``: the training step's matrix products
        and convolutions run in bfloat16 (float32 parameters, gradients, losses and Adam), for
        every architecture (hand-written bf16 steps for ``"mlp"``, bf16 autocast for the
        others); faster where the hardware has bfloat16 products (CPUs with AMX or
        ``avx512_bf16``): for ``n_runs > 1`` and for the conv architectures. Results differ
        from float32 by rounding; with the reconstruction term (``beta_r > 0``) bf16 scored lower
        on two of four count datasets (``docs/decisions``, 0049); see
        ``benchmarks/PERFORMANCE.md``.
    compile
        Run the hand-written training steps of the fully connected architectures (``"mlp"``
        without batch-norm) through ``torch.compile``. About 1.2x faster per iteration on a
        2-core CPU, but compiling takes 10-20 s once per process and network shape, so it pays
        for runs of thousands of iterations; needs a working C++ compiler (inductor). The same
        numbers up to float rounding. Default ``False``.
    cuda_graph
        On a CUDA device, for the fully connected architectures without batch-norm: record
        one whole generator iteration as a CUDA graph after three eager ones and replay it
        (:class:`scgan_cluster.train.CapturedIteration`), so that the GPU no longer waits on
        Python's launches of several hundred small kernels per iteration. The same kernels,
        so the same numbers; needs a constant learning rate (``lr_final=None``). Default
        ``False`` (``benchmarks/bench_gpu.py`` measures it); an error on other devices.
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
    >>> model = GANEnsemble(n_clusters=8).fit(adata)  # raw counts: the paper's preprocessing is applied
    >>> adata.obs["cluster"] = model.labels_.astype(str)
    >>> latent = model.get_latent_representation(adata)
    >>> new_labels = model.predict(new_adata)  # aligned by var_names, on the training scale
    >>> model.save("my_model/")
    >>> model = GANEnsemble.load("my_model/")
    >>> images = scgan_cluster.datasets.mnist("data/mnist")  # flattened, uns["image_shape"]
    >>> model = GANEnsemble(10).fit(images)  # picks the "mnist" conv networks by shape
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
        lr_final: float | None = None,
        betas: tuple[float, float] | None = None,
        batch_size: int | None = None,
        max_iter: int = PAPER_MAX_ITER,
        assign: Literal["kmeans", "argmax", "leiden"] = "kmeans",
        random_state: int | None = 0,
        device: str | torch.device = "auto",
        n_runs: int = 1,
        prior: Literal["uniform", "learned"] = "uniform",
        prior_floor: float = PRIOR_FLOOR,
        prior_update_every: int = PRIOR_UPDATE_EVERY,
        combine: Literal["consensus", "select"] = "consensus",
        precision: Literal["fp32", "bf16"] = "fp32",
        compile: bool = False,
        cuda_graph: bool = False,
        n_pcs: int | None = None,
    ) -> None:
        check_n_clusters(n_clusters, np.iinfo(np.int64).max)
        if n_pcs is not None and not (
            isinstance(n_pcs, numbers.Integral) and not isinstance(n_pcs, bool) and n_pcs == 0
        ):
            check_positive_int(n_pcs, "n_pcs")
        # 0 means no PCA, as in scanpy
        self.n_pcs = None if n_pcs is None or n_pcs == 0 else int(n_pcs)
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}.")
        self.precision = precision
        for name, flag in (("compile", compile), ("cuda_graph", cuda_graph)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}.")
        self.compile, self.cuda_graph = compile, cuda_graph
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
        self._lr_final = lr_final
        self.prior_update_every = check_positive_int(prior_update_every, "prior_update_every")
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
        self.center_spread_: float | None = None
        self.history_: dict[str, list[float]] = {}
        self.train_seconds_: float | None = None
        self.fit_seconds_: dict[str, float] | None = None
        self.labels_: np.ndarray | None = None
        self.latent_: np.ndarray | None = None
        self.proba_: np.ndarray | None = None
        self.scores_: dict[str, float] | None = None
        self.replicas: list[GANEnsemble] | None = None
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
            lr_final=self._lr_final,
            prior_update_every=self.prior_update_every if self.prior_mode == "learned" else 0,
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
            "prior_update_every": self.prior_update_every,
            "combine": self.combine,
            "precision": self.precision,
            "compile": self.compile,
            "cuda_graph": self.cuda_graph,
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

    def _replica(self, r: int) -> GANEnsemble:
        """An untrained single model with replica ``r``'s seed and otherwise our settings."""
        params = {**self.params, "random_state": self.random_state + r, "n_runs": 1}
        params["betas"] = tuple(params["betas"])
        rep = GANEnsemble(**params, device=self.device)
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
        callback: Callable[[GANEnsemble, int], None] | None = None,
        flavor: Literal["paper", "lognorm"] = "paper",
        checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None,
    ) -> GANEnsemble:
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
            iterations during training, e.g. to follow the clustering along the run: inside it,
            ``model.snapshot()`` returns a trained copy of the networks as they stand (for
            ``n_runs > 1``, of every replica), labelled by the model's ``assign`` rule, without
            changing the training.
        flavor
            Preprocessing of raw counts applied here (see :func:`scgan_cluster.pp.preprocess`):
            ``"paper"`` (top genes by count variance, ``log2(1 + C) / max``) or ``"lognorm"``
            (library-size normalisation, ``ln(1 + x)``, scanpy's highly variable genes, ``/ max``).
        checkpoint
            A file that keeps the training's state (weights, optimisers, random generators,
            iteration, history), written every ``checkpoint_every`` generator iterations and at
            the end. If it exists, training continues from it: a fit that was stopped and is
            called again with the same data, settings, seed, device and checkpoint ends with the
            same networks and labels as one that ran through. A checkpoint of another fit is
            refused. See :func:`scgan_cluster.train.train_clustergan`.
        checkpoint_every
            Generator iterations between checkpoints (``None``: ``max_iter // 20``).

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
        fit_start = time.perf_counter()
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
        previous = dict(vars(self))
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
            prepare_seconds = time.perf_counter() - fit_start
            if self.n_runs > 1:
                wall = self._fit_ensemble(prepared, callback, checkpoint, checkpoint_every)
                self._set_fit_seconds(prepare_seconds, fit_start, wall)
                return self
            x = self._network_input(prepared)
            self._build(x.shape[1], prepared.image_shape)
            self.var_names = np.asarray(prepared.var_names, dtype=str)
            self.transform = prepared.transform
            source = as_source(x, self.device, self._sample_shape())
            self._live = {"x": x, "start": time.perf_counter()}
            noise_gen = torch.Generator(device=self.device).manual_seed(self.random_state + 1)
            index_gen = _index_generator(source, self.random_state + 2)
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
                callback=self._recorded(callback),
                precision=self.precision,
                compile=self.compile,
                cuda_graph=self.cuda_graph,
                checkpoint=checkpoint,
                checkpoint_every=checkpoint_every,
            )
            wall = time.perf_counter() - start
            self.train_seconds_ = run_seconds(self.history_, wall)
            del self._live
            self._assign(x)
            self._set_fit_seconds(prepare_seconds, fit_start, wall)
        except BaseException:
            vars(self).clear()
            vars(self).update(previous)
            raise
        return self

    def snapshot(self) -> GANEnsemble:
        """A trained copy of the model as it stands inside a running fit's ``callback``.

        The networks (for ``n_runs > 1``: every replica, unstacked) are copied in evaluation
        mode and the training cells are labelled by the model's ``assign`` rule (and, for an
        ensemble, pooled as at the end of a fit), so ``predict`` and
        ``get_latent_representation`` work on the copy; ``train_seconds_`` is the training
        time so far and ``history_`` is empty. The running fit is not changed: its networks,
        optimisers and random streams stay as they were.
        """
        live = getattr(self, "_live", None)
        if live is None:
            raise RuntimeError(
                "snapshot() is for the callback of a running fit; after fit, use the model itself."
            )
        # the loop's clock at its last record counts the seconds before a resumed checkpoint
        x, seconds = live["x"], live.get("seconds", time.perf_counter() - live["start"])
        params = {**self.params, "betas": tuple(self.params["betas"])}
        snap = GANEnsemble(**params, device=self.device)
        snap.image_shape, snap.projection = self.image_shape, self.projection
        snap.var_names, snap.transform = self.var_names, self.transform
        snap.prior = copy.deepcopy(self.prior)
        if "stacked" not in live:
            for name in ("generator", "encoder", "critic"):
                setattr(snap, name, copy.deepcopy(getattr(self, name)).eval())
            snap.history_, snap.train_seconds_ = {}, seconds
            snap._assign(x)
            return snap
        gen, enc, crit = live["stacked"]
        replicas = [snap._replica(r) for r in range(self.n_runs)]
        snap._adopt_replicas(
            replicas, gen.unstack(), enc.unstack(), crit.unstack(), [{}] * self.n_runs, seconds, x
        )
        return snap

    def _recorded(self, callback: Callable | None) -> Callable | None:
        """The loop's callback: keeps the training clock of each record, then calls ``callback``."""
        if callback is None:
            return None

        def on_record(it: int, record: dict) -> None:
            seconds = record["seconds"]
            self._live["seconds"] = float(seconds[0] if isinstance(seconds, list) else seconds)
            callback(self, it)

        return on_record

    def _set_fit_seconds(self, prepare_seconds: float, fit_start: float, wall: float) -> None:
        """Set ``fit_seconds_``: seconds of preparing the input, training and labelling.

        ``wall``: this call's training seconds (the assignment is the rest of the call).
        """
        total = time.perf_counter() - fit_start
        self.fit_seconds_ = {
            "preprocessing": prepare_seconds,
            "training": float(self.train_seconds_),
            "assignment": max(total - prepare_seconds - wall, 0.0),
        }

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

    def _assign(self, x, encoded: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Cluster the training cells from the networks' input ``x`` (see :meth:`_network_input`).

        ``encoded``: their ``(zn, softmax zc)`` when already computed.
        """
        zn, proba = self._encode(x) if encoded is None else encoded
        if self.assign == "kmeans":
            km = KMeans(self.n_clusters, n_init=10, random_state=self.random_state)
            km.fit(np.hstack([zn, proba]).astype(np.float64))
            self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        elif self.assign == "leiden":
            found = leiden_latent_k(zn, self.n_clusters, self.random_state)
            self.cluster_centers_ = np.stack(
                [zn[found == c].mean(axis=0) for c in range(int(found.max()) + 1)]
            ).astype(np.float32)
        else:
            self.cluster_centers_ = None
        # training cells are labelled by the rule new cells get (predict): the nearest centre
        self.latent_, self.proba_ = zn, proba
        self.labels_ = self._label_latent(zn, proba)
        self.center_spread_ = self._spread(zn, proba)

    def _spread(self, zn: np.ndarray, proba: np.ndarray) -> float | None:
        """Mean squared distance per dimension of the training cells to their centre.

        Summed over blocks of cells, so that no float64 copy of the whole latent is made.
        """
        if self.cluster_centers_ is None:
            return None
        centres = self.cluster_centers_.astype(np.float64)
        total = 0.0
        for rows in row_blocks(len(zn)):
            space = np.hstack([zn[rows], proba[rows]]) if self.assign == "kmeans" else zn[rows]
            diff = space.astype(np.float64) - centres[self.labels_[rows]]
            total += float((diff**2).sum())
        return total / max(len(zn), 1) / centres.shape[1]

    def _fit_ensemble(
        self,
        prepared: Prepared,
        callback: Callable | None,
        checkpoint: str | Path | None,
        checkpoint_every: int | None,
    ) -> float:
        """Train the replicas together and pool them; returns this call's training seconds."""
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
        index_gens = [_index_generator(source, s + 2) for s in seeds]
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
        self._live = {"x": x, "start": start, "stacked": (gen, enc, crit)}
        histories = train_clustergan(
            gen,
            enc,
            crit,
            self.prior,
            source,
            self.train_config,
            noise_generator=noise_gens,
            index_generator=index_gens,
            callback=self._recorded(callback),
            precision=self.precision,
            compile=self.compile,
            cuda_graph=self.cuda_graph,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
        )
        wall = time.perf_counter() - start
        seconds = run_seconds(histories[0], wall)
        del self._live
        self._adopt_replicas(
            replicas, gen.unstack(), enc.unstack(), crit.unstack(), histories, seconds, x
        )
        return wall

    def _adopt_replicas(
        self,
        replicas: list[GANEnsemble],
        gens: list,
        encs: list,
        crits: list,
        histories: list[dict[str, list[float]]],
        seconds: float,
        x,
    ) -> None:
        """Give each replica its trained networks and labels, then pool them into ``self``."""
        for r, (rep, g, e, c, hist) in enumerate(
            zip(replicas, gens, encs, crits, histories, strict=True)
        ):
            rep.generator, rep.encoder, rep.critic = g.eval(), e.eval(), c.eval()
            rep.prior = self._replica_prior(r)
            rep.var_names, rep.transform = self.var_names, self.transform
            rep.projection = self.projection
            rep.history_, rep.train_seconds_ = hist, seconds
        for rep, encoded in zip(replicas, _encode_all(replicas, x), strict=True):
            rep._assign(x, encoded)
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
        self, replicas: list[GANEnsemble], best: int, scores: np.ndarray, maps: np.ndarray
    ) -> None:
        self.replicas = replicas
        self.selected_run_ = best
        self.selection_scores_ = np.asarray(scores, dtype=np.float64)
        self.run_maps_ = np.asarray(maps, dtype=np.int64)
        chosen = replicas[best]
        self.generator, self.encoder, self.critic = chosen.generator, chosen.encoder, chosen.critic
        self.prior = chosen.prior
        self.cluster_centers_ = chosen.cluster_centers_
        self.center_spread_ = chosen.center_spread_
        self.history_ = chosen.history_

    def _encode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The encoder's zn and softmax(zc) for the networks' input ``x`` (see :meth:`_network_input`)."""
        return _encode_all([self], x)[0]

    def _replica_latents(self, data: AnnData | np.ndarray | Any, *, layer: str | None = None):
        """``(zn, softmax zc, network)`` of cells for each replica (or the one network).

        The data are aligned and transformed once for all replicas.
        """
        self._check_trained()
        prepared = prepare_predict(
            data, self.var_names, self.transform, layer=layer, image_shape=self.image_shape
        )
        x = self._network_input(prepared)
        reps = self.replicas or [self]
        for rep, (zn, proba) in zip(reps, _encode_all(reps, x), strict=True):
            yield zn, proba, rep

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
        if assign != self.assign and assign != "argmax":
            raise ValueError(
                f"This model was trained with assign={self.assign!r} and has no centres for "
                f"assign={assign!r}; pass assign={self.assign!r} or 'argmax'."
            )
        full = self.get_latent_representation(data, layer=layer, representation="full")
        return self._label_latent(full[:, : self.n_latent], full[:, self.n_latent :], assign)

    def _label_latent(
        self, zn: np.ndarray, proba: np.ndarray, assign: str | None = None
    ) -> np.ndarray:
        """Labels from the encoder's zn and softmax(zc): the one rule of training and predict.

        ``"kmeans"``: the nearest KMeans centre in the full latent; ``"leiden"``: the nearest
        leiden cluster mean in zn; ``"argmax"``: the most likely zc mode.
        """
        assign = self.assign if assign is None else assign
        if assign == "argmax":
            return proba.argmax(axis=1).astype(np.int64)
        # computed in chunks (no n x K x d array)
        space = np.hstack([zn, proba]) if assign == "kmeans" else zn
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
        config, state = self._state()
        write_model_dir(path, "GANEnsemble", config, state, self.var_names, overwrite=overwrite)

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The JSON config and the tensors that :meth:`_from_state` rebuilds the model from."""

        def networks(m: GANEnsemble) -> dict[str, Any]:
            out = {name: getattr(m, name).state_dict() for name in _NETWORKS}
            if m.cluster_centers_ is not None:
                out["cluster_centers"] = torch.from_numpy(m.cluster_centers_)
                out["center_spread"] = torch.tensor(float(m.center_spread_), dtype=torch.float64)
            return out

        state: dict[str, Any] = {}
        if self.replicas is None:
            state["networks"] = networks(self)
        else:  # the selected replica's networks are the model's: saved once, with the replicas
            state["replicas"] = [networks(rep) for rep in self.replicas]
        if self.projection is not None:
            state["projection"] = self.projection.state_dict()
        config: dict[str, Any] = {
            "params": self.params,
            "n_features": len(self.var_names),
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "transform": None
            if self.transform is None
            else {k: v for k, v in self.transform.items() if k != "genes"},
            "train_seconds": self.train_seconds_,
        }
        if self.replicas is None:
            config["history"] = self.history_
        else:
            config["runs"] = {
                "selected": self.selected_run_,
                "selection_scores": self.selection_scores_.tolist(),
                "maps": self.run_maps_.tolist(),
                "histories": [rep.history_ for rep in self.replicas],
            }
        return config, state

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "auto") -> GANEnsemble:
        """Load a model written by :meth:`save` (weights read with ``torch.load(weights_only=True)``).

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
        cls,
        config: dict[str, Any],
        state: dict[str, Any],
        var_names: np.ndarray,
        device: torch.device,
    ) -> GANEnsemble:
        params = dict(config["params"])
        params["betas"] = tuple(params["betas"])
        model = cls(**params, device=device)
        shape = config["image_shape"]
        model.image_shape = None if shape is None else tuple(int(s) for s in shape)
        if "projection" in state:
            model.projection = PCAProjection.from_state(state["projection"])
        n_in = int(config["n_features"]) if model.projection is None else model.projection.n_pcs
        model.var_names = var_names
        if config["transform"] is not None:
            model.transform = {**config["transform"], "genes": var_names.tolist()}
        model.train_seconds_ = config["train_seconds"]

        def restore(m: GANEnsemble, nets: dict[str, Any]) -> None:
            m._build(n_in, model.image_shape)
            for name in _NETWORKS:
                getattr(m, name).load_state_dict(nets[name])
            for name in ("generator", "encoder", "critic"):
                getattr(m, name).eval()
            if "cluster_centers" in nets:
                m.cluster_centers_ = nets["cluster_centers"].cpu().numpy()
                m.center_spread_ = float(nets["center_spread"])

        if "replicas" not in state:
            restore(model, state["networks"])
            model.history_ = config["history"]
            return model
        runs = config["runs"]
        replicas = []
        for r, (nets, hist) in enumerate(zip(state["replicas"], runs["histories"], strict=True)):
            rep = model._replica(r)
            restore(rep, nets)
            rep.var_names, rep.transform = model.var_names, model.transform
            rep.projection = model.projection
            rep.history_, rep.train_seconds_ = hist, model.train_seconds_
            replicas.append(rep)
        model._set_replicas(
            replicas,
            int(runs["selected"]),
            np.array(runs["selection_scores"]),
            np.array(runs["maps"], dtype=np.int64),
        )
        return model

    def __repr__(self) -> str:
        if not self.is_trained:
            state = "not trained"
        elif self.image_shape is not None:
            state = f"trained on images {list(self.image_shape)}"
        else:
            state = f"trained on {len(self.var_names)} features"
        return f"GANEnsemble(n_clusters={self.n_clusters}, n_latent={self.n_latent}, architecture={self.architecture!r}; {state})"


GANEnsemble = doc_params(GANEnsemble)
