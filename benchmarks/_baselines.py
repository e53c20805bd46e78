"""ClusterGAN and the paper's baselines as methods of the shared protocol (``benchmarks/_protocol.py``).

Every method has the signature ``method(data, split, n_clusters, seed) -> MethodResult``:
it trains on ``data.x[split["train"]]`` only (labels are never seen) and returns cluster labels
for the validation and test points. Two kinds:

* inductive (fit on train, predict held-out points): ClusterGAN, KMeans, NMF, PCA+GMM, VAE+GMM,
  InfoGAN, GAN with bp, GAN with Disc. phi;
* transductive (cannot predict new points): agglomerative (ward) and spectral clustering cluster
  the validation and test points together with a random subset of the training points and are
  scored on validation / test.

The GAN baselines reuse the package's networks (``scgan_cluster.nn.build_networks``) and its
training loop (``scgan_cluster.train.train_clustergan``) with no copied loop:

* "GAN" (for "GAN with bp" and "GAN with Disc. phi"): the same WGAN-GP loop, prior and G / D as
  ClusterGAN with ``beta_n = beta_c = 0`` and an encoder with no parameters (:class:`NullEncoder`),
  i.e. a plain WGAN-GP with the discrete-continuous prior;
* InfoGAN: the loop's zc term with ``beta_c = 1`` (InfoGAN's lambda for a categorical code) and
  ``beta_n = 0``, where the "encoder" is InfoGAN's Q network, a head ``FC 128 - BN - LReLU - FC K``
  on the critic's last hidden layer (:class:`InfoGANQ`, appendix 6.2 of the paper); the zc
  cross-entropy on G(z) is exactly InfoGAN's variational mutual-information bound for a uniform
  categorical code (up to the constant code entropy).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _protocol import MethodResult, score
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.decomposition import NMF, PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import nn

from scgan_cluster.adapters import DenseSource
from scgan_cluster.model import GANEnsemble
from scgan_cluster.nn import (
    EnsembleBatchNorm1d,
    EnsembleLinear,
    MixedPrior,
    build_networks,
    init_normal_,
    stack_ensemble,
    unstack_sequential,
)
from scgan_cluster.train import TrainConfig, backprop_decode, run_seconds, train_clustergan

__all__ = [
    "BenchData",
    "Budget",
    "InfoGANQ",
    "InfoGANQEnsemble",
    "NullEncoder",
    "METHOD_KIND",
    "make_methods",
    "train_gan",
    "train_gans",
    "train_vae",
]


@dataclass
class BenchData:
    """A dataset and the paper's ClusterGAN settings for it.

    ``x`` is float32 in [0, 1], shape (n, d) or (n, C, H, W); ``y`` holds the true classes (used
    only to score).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    n_clusters: int
    architecture: str = "mlp"
    architecture_options: dict[str, Any] = field(default_factory=dict)
    n_latent: int = 30
    beta_n: float = 10.0
    beta_c: float = 10.0
    batch_size: int = 64
    description: str = ""

    @property
    def input_shape(self) -> int | tuple[int, ...]:
        """What ``build_networks`` takes: the number of features, or ``(C, H, W)`` for images."""
        return int(self.x.shape[1]) if self.x.ndim == 2 else tuple(int(s) for s in self.x.shape[1:])

    @property
    def flat(self) -> np.ndarray:
        """``x`` as an (n, d) matrix, for the classical baselines."""
        return self.x.reshape(len(self.x), -1)


@dataclass
class Budget:
    """Compute budget of one run of each method (what the defaults of a script fit on a CPU)."""

    max_iter: int = 100_000  # generator iterations of every GAN (the paper's)
    bp_steps: int = 5000  # Adam iterations of Algorithm 1 per restart (the paper's)
    bp_max_points: int | None = None  # decode at most this many val and this many test points
    bp_lam: float = 1.0
    bp_lr: float = 0.01
    vae_iter: int = 20_000
    vae_batch: int = 1024
    vae_latent: int = 10
    agglo_max: int = 6000  # points clustered by agglomerative (all val + test, then train)
    spectral_max: int = 3000  # points clustered by spectral clustering
    device: str = "cpu"
    # a folder for the GAN methods' training checkpoints (one file per method, dataset, split
    # size, seed or ensemble and budget); a stopped run of the script continues from them
    checkpoint_dir: str | None = None
    # > 0: the runs (seeds 0 .. ensemble_runs - 1) of each GAN method (ClusterGAN, InfoGAN, the
    # GAN of "GAN with bp" / "Disc. phi") train together as one vectorized ensemble
    # (GANEnsemble(n_runs=...), train_gans); replica r follows seed r's random stream
    ensemble_runs: int = 0
    # > 0: score ClusterGAN's runs on validation and test every ``curve_every`` generator
    # iterations (a convergence curve, in each run's "curve"); 0: only at the end
    curve_every: int = 0
    # network options of the GAN methods (ClusterGAN, InfoGAN, the GAN of "GAN with bp" / "Disc.
    # phi") that replace the dataset's (the paper's), for example {"critic_batch_norm": False};
    # ClusterGAN's checkpoints then carry them in their names
    architecture_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# "inductive": fit on train, predict val / test; "transductive": clusters val + test (+ some
# train) together
METHOD_KIND = {
    "ClusterGAN": "inductive",
    "InfoGAN": "inductive",
    "GAN with bp": "inductive",
    "GAN with Disc. phi": "inductive",
    "KMeans": "inductive",
    "AGGLO. (ward)": "transductive",
    "NMF": "inductive",
    "SC (rbf)": "transductive",
    "PCA+GMM": "inductive",
    "VAE+GMM": "inductive",
}


# ----------------------------------------------------------------------------- GAN baselines
class NullEncoder(nn.Module):
    """An "encoder" with no parameters, for a plain GAN trained by the ClusterGAN loop with beta = 0.

    With ``n_runs``, the encoder of an ensemble: inputs and outputs have a leading replica axis.
    """

    def __init__(self, n_latent: int, n_clusters: int, n_runs: int | None = None) -> None:
        super().__init__()
        self.n_latent, self.n_clusters = n_latent, n_clusters
        if n_runs is not None:
            self.n_runs = n_runs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = x.shape[:2] if hasattr(self, "n_runs") else x.shape[:1]
        return x.new_zeros(*lead, self.n_latent), x.new_zeros(*lead, self.n_clusters)


class InfoGANQ(nn.Module):
    """InfoGAN's Q network on the critic's last hidden layer: ``FC 128 - BN - LReLU - FC K``.

    The critic is held by reference, not registered as a submodule, so the generator/encoder
    optimiser of the loop updates only this head (and the generator); the shared critic body is
    trained by the critic loss alone (the loop freezes it during the generator step).
    """

    def __init__(
        self, critic: nn.Module, width: int, n_latent: int, n_clusters: int, leak: float = 0.2
    ) -> None:
        super().__init__()
        self._critic = [critic]
        self.n_latent = n_latent
        self.head = nn.Sequential(
            nn.Linear(width, 128),
            nn.BatchNorm1d(128),
            nn.LeakyReLU(leak),
            nn.Linear(128, n_clusters),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._critic[0].features(x).flatten(1)
        return h.new_zeros(h.shape[0], self.n_latent), self.head(h)


class InfoGANQEnsemble(nn.Module):
    """R :class:`InfoGANQ` heads in one pass, on the features of a stacked critic
    (:func:`scgan_cluster.nn.stack_ensemble`): ``(R, batch, ...) -> (zeros, zc_logits)``.

    As in :class:`InfoGANQ`, the critic is held by reference: only the heads are parameters.
    """

    def __init__(self, heads: list[InfoGANQ], critic: nn.Module) -> None:
        super().__init__()
        self._critic = [critic]
        self.n_runs, self.n_latent = len(heads), heads[0].n_latent
        first, bn, act, last = zip(*(q.head for q in heads), strict=True)
        self.head = nn.Sequential(
            EnsembleLinear(first),
            EnsembleBatchNorm1d(bn),
            nn.LeakyReLU(act[0].negative_slope),
            EnsembleLinear(last),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._critic[0].features(x).flatten(2)
        return h.new_zeros(*h.shape[:2], self.n_latent), self.head(h)

    def unstack(self, critics: list[nn.Module]) -> list[InfoGANQ]:
        """The R heads as plain :class:`InfoGANQ` on the replicas' critics (copies)."""
        first, _, act, last = self.head
        width, k = first.weight.shape[1], last.weight.shape[2]
        out = []
        for r, critic in enumerate(critics):
            q = InfoGANQ(critic, width, self.n_latent, k, act.negative_slope)
            q = q.to(first.weight.device)
            unstack_sequential(self.head, r, q.head)
            out.append(q.train(self.training))
        return out


@dataclass
class TrainedGAN:
    generator: nn.Module
    encoder: nn.Module
    critic: nn.Module
    prior: MixedPrior
    history: dict[str, list[float]]
    seconds: float
    max_iter: int


def _arch_options(data: BenchData) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.architecture_options.items()}


def _build(
    data: BenchData, n_latent: int, n_clusters: int, seed: int
) -> tuple[nn.Module, nn.Module, nn.Module]:
    # as the model does: torch's default init (global RNG) is replaced by a seeded N(0, 0.02)
    with torch.random.fork_rng(devices=[]):
        nets = build_networks(
            data.architecture, data.input_shape, n_latent, n_clusters, **_arch_options(data)
        )
    init = torch.Generator().manual_seed(seed)
    for net in nets:
        init_normal_(net, 0.02, generator=init)
    return nets


def _gan_networks(
    data: BenchData, x_train: np.ndarray, kind: str, seed: int
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """G, the "encoder" (:class:`NullEncoder` or InfoGAN's :class:`InfoGANQ`) and D of one run."""
    gen, _, crit = _build(data, data.n_latent, data.n_clusters, seed)
    if kind == "gan":
        return gen, NullEncoder(data.n_latent, data.n_clusters), crit
    crit.eval()
    with torch.no_grad():
        probe = torch.from_numpy(np.ascontiguousarray(x_train[:2], dtype=np.float32))
        width = int(crit.features(probe).flatten(1).shape[1])
    with torch.random.fork_rng(devices=[]):
        enc = InfoGANQ(crit, width, data.n_latent, data.n_clusters)
    init_normal_(enc, 0.02, generator=torch.Generator().manual_seed(seed + 3))
    return gen, enc, crit


def train_gans(
    data: BenchData,
    x_train: np.ndarray,
    kind: str,
    *,
    max_iter: int,
    seeds: list[int],
    device: str = "cpu",
    checkpoint: Path | None = None,
) -> list[TrainedGAN]:
    """Train a plain GAN (``kind="gan"``) or InfoGAN (``kind="infogan"``) per seed with the package's loop.

    Both use the dataset's ClusterGAN architecture for G and D, and the paper's optimiser
    settings (Adam 1e-4, betas (0.5, 0.9), 5 critic steps, gradient penalty 10). The plain GAN
    samples the ClusterGAN prior (zn ~ N(0, 0.1^2), zc one-hot uniform), as Algorithm 1 needs;
    InfoGAN samples InfoGAN's unit-variance noise zn ~ N(0, 1) with a uniform categorical code.

    Two or more seeds train together as one vectorized ensemble (the loop's ``n_runs``
    networks); run r starts from and draws what the separate run of ``seeds[r]`` does, and its
    ``seconds`` are the ensemble's over R. ``checkpoint``: a file the training's state is kept
    in; a rerun continues from it (the same weights as an unstopped run).
    """
    if kind not in ("gan", "infogan"):
        raise ValueError(f"kind must be 'gan' or 'infogan', got {kind!r}.")
    if not seeds:
        raise ValueError("train_gans needs at least one seed.")
    dev, n_rep = torch.device(device), len(seeds)
    nets = [_gan_networks(data, x_train, kind, s) for s in seeds]
    if n_rep == 1:
        gen, enc, crit = nets[0]
    else:
        gen, crit = stack_ensemble([n[0] for n in nets]), stack_ensemble([n[2] for n in nets])
        if kind == "gan":
            enc = NullEncoder(data.n_latent, data.n_clusters, n_runs=n_rep)
        else:
            enc = InfoGANQEnsemble([n[1] for n in nets], crit)
    prior = MixedPrior(data.n_latent, data.n_clusters, sigma=0.1 if kind == "gan" else 1.0)
    gen, enc, crit, prior = gen.to(dev), enc.to(dev), crit.to(dev), prior.to(dev)
    config = TrainConfig(
        max_iter=max_iter,
        batch_size=data.batch_size,
        beta_n=0.0,
        beta_c=0.0 if kind == "gan" else 1.0,
    )
    noise = [torch.Generator(device=dev).manual_seed(s + 1) for s in seeds]
    index = [torch.Generator().manual_seed(s + 2) for s in seeds]
    start = time.perf_counter()
    history = train_clustergan(
        gen,
        enc,
        crit,
        prior,
        DenseSource(x_train, dev),
        config,
        noise_generator=noise if n_rep > 1 else noise[0],
        index_generator=index if n_rep > 1 else index[0],
        progress=False,
        checkpoint=checkpoint,
    )
    # a run resumed from its checkpoint counts the seconds before the stop (the loop's clock)
    seconds = run_seconds(history[0] if n_rep > 1 else history, time.perf_counter() - start)
    if n_rep == 1:
        return [TrainedGAN(gen, enc, crit, prior, history, seconds, max_iter)]
    gens, crits = gen.unstack(), crit.unstack()
    if kind == "gan":
        encs: list[nn.Module] = [NullEncoder(data.n_latent, data.n_clusters) for _ in seeds]
    else:
        encs = enc.unstack(crits)
    return [
        TrainedGAN(g, e, c, prior, hist, seconds / n_rep, max_iter)
        for g, e, c, hist in zip(gens, encs, crits, history, strict=True)
    ]


def train_gan(
    data: BenchData,
    x_train: np.ndarray,
    kind: str,
    *,
    max_iter: int,
    seed: int,
    device: str = "cpu",
) -> TrainedGAN:
    """One run of :func:`train_gans`."""
    return train_gans(data, x_train, kind, max_iter=max_iter, seeds=[seed], device=device)[0]


@torch.no_grad()
def _batched(fn, x: np.ndarray, device: str, chunk: int = 2048) -> np.ndarray:
    out = []
    for start in range(0, len(x), chunk):
        xb = torch.from_numpy(np.ascontiguousarray(x[start : start + chunk], dtype=np.float32))
        t = fn(xb.to(device))
        out.append((t.float() if t.is_floating_point() else t).cpu().numpy())
    return np.concatenate(out)


def clustergan_checkpoint(
    folder: str | Path,
    dataset: str,
    n_train: int,
    max_iter: int,
    n_rep: int,
    seed: int,
    options: dict[str, Any] | None = None,
    *,
    method: str = "clustergan",
) -> Path:
    """The checkpoint file of a benchmark GAN training (``method``: ClusterGAN, or a baseline's
    ``"gan"`` / ``"infogan"``): an ensemble of ``n_rep`` replicas, or (``n_rep`` 0) the single
    run of ``seed``; ``options`` (architecture options that differ from the dataset's, see
    :func:`architecture_options`) name networks of their own."""
    run = f"ens{n_rep}" if n_rep else f"seed{seed}"
    extra = options_suffix(options)
    return Path(folder) / f"{method}_{dataset}_n{n_train}_{max_iter}it_{run}{extra}.pt"


def with_options(data: BenchData, options: dict[str, Any] | None) -> BenchData:
    """``data`` whose GAN networks take ``options`` in place of the dataset's (the paper's)."""
    if not options:
        return data
    return replace(data, architecture_options={**data.architecture_options, **options})


def options_suffix(options: dict[str, Any] | None) -> str:
    """``"_critic_batch_norm-False"`` for ``{"critic_batch_norm": False}``: names files of
    networks built with options of their own ("" for none)."""
    return "".join(f"_{k}-{v}" for k, v in sorted((options or {}).items()))


def architecture_options(pairs: list[str]) -> dict[str, Any]:
    """``["critic_batch_norm=false", ...]`` (a script's ``--architecture-option``) as a dict;
    each value is read as JSON (``false``, ``2``, ``[64, 64]``), else kept as a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"an architecture option is KEY=VALUE, got {pair!r}.")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def fit_clustergan(
    data: BenchData,
    x_train: np.ndarray,
    *,
    max_iter: int,
    seed: int,
    device: str = "cpu",
    checkpoint: Path | None = None,
    callback: Callable[[GANEnsemble, int], None] | None = None,
    **options,
) -> GANEnsemble:
    """The package's network with the dataset's paper settings, KMeans on the encoder latent.

    ``options`` go to :class:`~scgan_cluster.model.GANEnsemble` as well (e.g. ``precision``);
    ``checkpoint`` and ``callback`` to its ``fit`` (a file the training's state is kept in and
    resumed from; a function called along the training).
    """
    model = GANEnsemble(
        data.n_clusters,
        n_latent=data.n_latent,
        architecture=data.architecture,
        architecture_options=dict(data.architecture_options),
        beta_n=data.beta_n,
        beta_c=data.beta_c,
        batch_size=data.batch_size,
        max_iter=max_iter,
        assign="kmeans",
        random_state=seed,
        device=device,
        **options,
    )
    return model.fit(x_train, preprocess=False, checkpoint=checkpoint, callback=callback)


# ----------------------------------------------------------------------------- VAE
def train_vae(
    data: BenchData,
    x_train: np.ndarray,
    *,
    latent_dim: int,
    n_iter: int,
    batch_size: int,
    seed: int,
    device: str = "cpu",
) -> tuple[nn.Module, float]:
    """A Gaussian VAE with the dataset's encoder / generator architecture (the course project's setup).

    The encoder outputs ``2 * latent_dim`` numbers (mean, and softplus of the rest for the standard
    deviation), the generator decodes a ``latent_dim`` vector; loss = squared error summed over
    features (Gaussian likelihood) + KL to N(0, I); Adam with lr = 1e-4 * batch_size / 64 (the
    course project's scaling). Returns the encoder and the training seconds.
    """
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        opts = _arch_options(data)
        encoder = build_networks(
            data.architecture, data.input_shape, latent_dim, latent_dim, **opts
        )[1]
        decoder = build_networks(data.architecture, data.input_shape, latent_dim, 0, **opts)[0]
    init = torch.Generator().manual_seed(seed)
    init_normal_(encoder, 0.02, generator=init)
    init_normal_(decoder, 0.02, generator=init)
    encoder, decoder = encoder.to(dev), decoder.to(dev)
    batch_size = min(batch_size, len(x_train))
    opt = torch.optim.Adam(
        [*encoder.parameters(), *decoder.parameters()], lr=1e-4 * batch_size / 64
    )
    source = DenseSource(x_train, dev)
    order = torch.Generator().manual_seed(seed + 2)
    noise = torch.Generator(device=dev).manual_seed(seed + 1)
    encoder.train()
    decoder.train()
    start = time.perf_counter()
    for _ in range(n_iter):
        x = source.take(torch.randperm(source.n_obs, generator=order)[:batch_size])
        mu, s = encoder(x)
        std = nn.functional.softplus(s) + 1e-6
        z = mu + std * torch.randn(mu.shape, generator=noise, device=dev)
        recon = (decoder(z) - x).pow(2).flatten(1).sum(1).mean()
        kl = 0.5 * (mu.pow(2) + std.pow(2) - 2 * std.log() - 1).sum(1).mean()
        loss = recon + kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if not torch.isfinite(loss):
        raise FloatingPointError("VAE training diverged (non-finite loss).")
    encoder.eval()
    return encoder, time.perf_counter() - start


# ----------------------------------------------------------------------------- helpers
def _transductive(split: dict[str, np.ndarray], cap: int, seed: int) -> np.ndarray:
    """All validation and test points, then random training points up to ``cap`` in total."""
    held = np.concatenate([split["val"], split["test"]])
    if len(held) > cap:
        raise ValueError(
            f"{len(held)} validation + test points exceed the cap of {cap}; raise the cap."
        )
    rng = np.random.RandomState(seed)
    extra = rng.choice(split["train"], min(cap - len(held), len(split["train"])), replace=False)
    return np.concatenate([held, np.sort(extra)])


def _held_out(labels: np.ndarray, split: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n_val = len(split["val"])
    return labels[:n_val], labels[n_val : n_val + len(split["test"])]


def _subset(idx: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Positions (within ``idx``) of at most ``cap`` points, sorted."""
    if cap is None or len(idx) <= cap:
        return np.arange(len(idx))
    return np.sort(np.random.RandomState(seed).choice(len(idx), cap, replace=False))


# ----------------------------------------------------------------------------- curves
class Curve:
    """A fit callback that scores each run on validation and test every ``every`` iterations.

    ``points[seed]`` is a list of ``{"iteration", "seconds", "val", "test"}`` (the scores of
    :func:`_protocol.score`): the model's :meth:`~scgan_cluster.model.GANEnsemble.snapshot`
    labels the held-out points by the same rule as the finished model, and the training is
    unchanged by it. With a ``checkpoint`` the points are kept beside it (``.curve.json``), so a
    resumed run keeps the points from before its stop.
    """

    def __init__(
        self,
        data: BenchData,
        split: dict[str, np.ndarray],
        seeds: list[int],
        every: int,
        checkpoint: Path | None = None,
    ) -> None:
        self.data, self.split, self.seeds, self.every = data, split, seeds, every
        self.path = None if checkpoint is None else checkpoint.with_suffix(".curve.json")
        self.points: dict[int, list[dict[str, Any]]] = {s: [] for s in seeds}
        if self.path is not None and self.path.exists() and checkpoint.exists():
            saved = json.loads(self.path.read_text())
            self.points = {int(s): pts for s, pts in saved.items()}
        self.done = {p["iteration"] for pts in self.points.values() for p in pts}

    def __call__(self, model: GANEnsemble, iteration: int) -> None:
        if iteration % self.every or iteration in self.done:
            return
        snap = model.snapshot()
        runs = snap.replicas if snap.replicas is not None else [snap]
        for seed, run in zip(self.seeds, runs, strict=True):
            point: dict[str, Any] = {
                "iteration": iteration,
                "seconds": round(snap.train_seconds_, 1),
            }
            for part in ("val", "test"):
                labels = run.predict(self.data.x[self.split[part]])
                point[part] = score(self.data.y[self.split[part]], labels)
            self.points[seed].append(point)
        self.done.add(iteration)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({str(s): p for s, p in self.points.items()}))


# ----------------------------------------------------------------------------- the methods
def make_methods(budget: Budget) -> dict[str, Any]:
    """All methods, each ``method(data, split, n_clusters, seed) -> MethodResult``, in table order.

    "GAN with bp" and "GAN with Disc. phi" use the same trained GAN (per dataset and seed), as in
    the paper; its training time is counted once, in "GAN with bp".
    """
    dev = budget.device
    gan_cache: dict[tuple[str, int, str, int], TrainedGAN] = {}

    ensembles: dict[tuple[str, int], GANEnsemble] = {}
    curves: dict[int, list[dict[str, Any]]] = {}

    def clustergan(data: BenchData, split, k, seed) -> MethodResult:
        n_rep, n = budget.ensemble_runs, len(split["train"])
        checkpoint = (
            None
            if budget.checkpoint_dir is None
            else clustergan_checkpoint(
                budget.checkpoint_dir,
                data.name,
                n,
                budget.max_iter,
                n_rep,
                seed,
                budget.architecture_options,
            )
        )

        def fit(seed: int, **options) -> GANEnsemble:
            seeds = list(range(n_rep)) if n_rep else [seed]
            curve = Curve(data, split, seeds, budget.curve_every, checkpoint)
            model = fit_clustergan(
                with_options(data, budget.architecture_options),
                data.x[split["train"]],
                max_iter=budget.max_iter,
                seed=seed,
                device=dev,
                checkpoint=checkpoint,
                callback=curve if budget.curve_every else None,
                **options,
            )
            curves.update(curve.points)
            return model

        if not n_rep:
            model = fit(seed)
            seconds = model.train_seconds_
        else:
            if not 0 <= seed < n_rep:
                raise ValueError(f"seed {seed} is not a replica of an ensemble of {n_rep} runs")
            key = (data.name, n)
            if key not in ensembles:  # every run trains on the first call, as one ensemble
                ensembles[key] = fit(0, n_runs=n_rep)
            model = ensembles[key].replicas[seed]
            seconds = ensembles[key].train_seconds_ / n_rep
        return MethodResult(
            model.predict(data.x[split["val"]]),
            model.predict(data.x[split["test"]]),
            {
                "iterations": budget.max_iter,
                "train_seconds": round(seconds, 2),
                **({"trained_as": f"replica {seed} of an ensemble of {n_rep}"} if n_rep else {}),
                **({"curve": curves[seed]} if budget.curve_every else {}),
            },
        )

    def _gan(data: BenchData, split, kind: str, seed: int) -> TrainedGAN:
        """The baseline GAN ("infogan" or "gan") of ``seed`` on the training split, trained on
        the first call: alone, or with the ensemble's other runs (seeds 0 .. R - 1)."""
        n_rep, n = budget.ensemble_runs, len(split["train"])
        if n_rep and not 0 <= seed < n_rep:
            raise ValueError(f"seed {seed} is not a replica of an ensemble of {n_rep} runs")
        if (data.name, n, kind, seed) not in gan_cache:
            seeds = list(range(n_rep)) if n_rep else [seed]
            folder, options = budget.checkpoint_dir, budget.architecture_options
            runs = train_gans(
                with_options(data, options),
                data.x[split["train"]],
                kind,
                max_iter=budget.max_iter,
                seeds=seeds,
                device=dev,
                checkpoint=None
                if folder is None
                else clustergan_checkpoint(
                    folder, data.name, n, budget.max_iter, n_rep, seed, options, method=kind
                ),
            )
            gan_cache.update(
                {(data.name, n, kind, s): run for s, run in zip(seeds, runs, strict=True)}
            )
        return gan_cache[data.name, n, kind, seed]

    def _trained(run: TrainedGAN, seed: int) -> dict[str, Any]:
        n_rep = budget.ensemble_runs
        return {
            "iterations": run.max_iter,
            "train_seconds": round(run.seconds, 2),
            **({"trained_as": f"replica {seed} of an ensemble of {n_rep}"} if n_rep else {}),
        }

    def infogan(data: BenchData, split, k, seed) -> MethodResult:
        run = _gan(data, split, "infogan", seed)
        run.critic.eval()
        run.encoder.eval()

        def q(xb):
            return run.encoder(xb)[1].argmax(1)

        return MethodResult(
            _batched(q, data.x[split["val"]], dev),
            _batched(q, data.x[split["test"]], dev),
            _trained(run, seed),
        )

    def gan_bp(data: BenchData, split, k, seed) -> MethodResult:
        run = _gan(data, split, "gan", seed)
        out, info = [], _trained(run, seed)
        start = time.perf_counter()
        noise = torch.Generator(device=dev).manual_seed(seed + 7)
        for part in ("val", "test"):
            pos = _subset(split[part], budget.bp_max_points, seed)
            x = torch.from_numpy(np.ascontiguousarray(data.x[split[part]][pos], dtype=np.float32))
            res = backprop_decode(
                run.generator,
                x.to(dev),
                k,
                n_latent=data.n_latent,
                sigma=run.prior.sigma,
                lam=budget.bp_lam,
                n_steps=budget.bp_steps,
                lr=budget.bp_lr,
                noise_generator=noise,
            )
            out.append((res.k.numpy(), pos))
            info[f"bp_{part}_points"] = len(pos)
        info["bp_seconds"] = round(time.perf_counter() - start, 2)
        info["bp_steps"] = budget.bp_steps
        (val, val_pos), (test, test_pos) = out
        return MethodResult(val, test, info, val_index=val_pos, test_index=test_pos)

    def gan_disc_phi(data: BenchData, split, k, seed) -> MethodResult:
        run = _gan(data, split, "gan", seed)
        run.critic.eval()

        def phi(xb):
            return run.critic.features(xb).flatten(1)

        km = KMeans(k, n_init=10, random_state=seed).fit(
            _batched(phi, data.x[split["train"]], dev).astype(np.float64)
        )
        return MethodResult(
            km.predict(_batched(phi, data.x[split["val"]], dev).astype(np.float64)),
            km.predict(_batched(phi, data.x[split["test"]], dev).astype(np.float64)),
            {"iterations": budget.max_iter, "shares_gan_of": "GAN with bp"},
        )

    def kmeans(data: BenchData, split, k, seed) -> MethodResult:
        x = data.flat.astype(np.float64)
        km = KMeans(k, n_init=10, random_state=seed).fit(x[split["train"]])
        return MethodResult(km.predict(x[split["val"]]), km.predict(x[split["test"]]))

    def agglo(data: BenchData, split, k, seed) -> MethodResult:
        idx = _transductive(split, budget.agglo_max, seed)
        labels = AgglomerativeClustering(k, linkage="ward").fit_predict(data.flat[idx])
        val, test = _held_out(labels, split)
        return MethodResult(val, test, {"points_clustered": len(idx)})

    def nmf(data: BenchData, split, k, seed) -> MethodResult:
        x = data.flat.astype(np.float64)
        if x.min() < 0:
            raise ValueError("NMF needs non-negative data.")
        model = NMF(
            k,
            init="nndsvda",
            solver="mu",
            beta_loss="kullback-leibler",
            alpha_W=1e-3,
            alpha_H="same",
            l1_ratio=0.5,
            max_iter=500,
            random_state=seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x[split["train"]])
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return MethodResult(
            model.transform(x[split["val"]]).argmax(1),
            model.transform(x[split["test"]]).argmax(1),
            {"assign": "argmax of the factor W", "converged": converged, "n_iter": model.n_iter_},
        )

    def spectral(data: BenchData, split, k, seed) -> MethodResult:
        idx = _transductive(split, budget.spectral_max, seed)
        x = data.flat[idx].astype(np.float64)
        # rbf affinity exp(-gamma ||x - x'||^2), gamma = 1 / (d * var(x)) (sklearn's "scale")
        gamma = 1.0 / (x.shape[1] * x.var())
        labels = SpectralClustering(
            k, affinity="rbf", gamma=gamma, assign_labels="kmeans", random_state=seed
        ).fit_predict(x)
        val, test = _held_out(labels, split)
        return MethodResult(val, test, {"points_clustered": len(idx), "gamma": gamma})

    def pca_gmm(data: BenchData, split, k, seed) -> MethodResult:
        x = data.flat.astype(np.float64)
        n_comp = min(budget.vae_latent, x.shape[1])
        pca = PCA(n_comp, random_state=seed).fit(x[split["train"]])
        gmm = GaussianMixture(k, random_state=seed).fit(pca.transform(x[split["train"]]))
        return MethodResult(
            gmm.predict(pca.transform(x[split["val"]])),
            gmm.predict(pca.transform(x[split["test"]])),
            {"pca_components": n_comp},
        )

    def vae_gmm(data: BenchData, split, k, seed) -> MethodResult:
        enc, seconds = train_vae(
            data,
            data.x[split["train"]],
            latent_dim=budget.vae_latent,
            n_iter=budget.vae_iter,
            batch_size=budget.vae_batch,
            seed=seed,
            device=dev,
        )

        def mu(xb):
            return enc(xb)[0]

        gmm = GaussianMixture(k, random_state=seed).fit(_batched(mu, data.x[split["train"]], dev))
        return MethodResult(
            gmm.predict(_batched(mu, data.x[split["val"]], dev)),
            gmm.predict(_batched(mu, data.x[split["test"]], dev)),
            {"iterations": budget.vae_iter, "train_seconds": round(seconds, 2)},
        )

    return {
        "ClusterGAN": clustergan,
        "InfoGAN": infogan,
        "GAN with bp": gan_bp,
        "GAN with Disc. phi": gan_disc_phi,
        "KMeans": kmeans,
        "AGGLO. (ward)": agglo,
        "NMF": nmf,
        "SC (rbf)": spectral,
        "PCA+GMM": pca_gmm,
        "VAE+GMM": vae_gmm,
    }
