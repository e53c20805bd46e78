"""Recipes: every setting of a ClusterGAN fit as one typed, frozen, torch-free object.

A :class:`Recipe` names the preprocessing of raw counts, the training settings shared by its
networks, the ensembles it trains (:class:`Ensemble`) and how their replicas are pooled into
one clustering. :data:`RECIPES` holds the four that ship: ``"lognorm"`` (the default of
:func:`scgan_cluster.tl.clustergan` and :class:`scgan_cluster.ClusterGAN`), ``"lognorm_long"``
(the previous default, about six times slower), ``"lognorm_fast"`` (the previous default trained
shorter) and ``"paper"`` (the paper's 10x_73k recipe). :func:`resolve` applies a user's
overrides to one of them; a benchmark variant is ``dataclasses.replace(recipe, field=value)``.

Network and optimiser settings left at ``None`` take the paper's value for the architecture
(:data:`scgan_cluster.nn.ARCHITECTURES`; for the 10x_73k ``"mlp"``: zn 30, batch 64,
sigma 0.1, beta_n = beta_c = 10, lr 1e-4, 5 critic steps, penalty 10).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ENSEMBLES",
    "Ensemble",
    "MODEL_ARGS",
    "RECIPES",
    "Recipe",
    "resolve",
]

PAPER_MAX_ITER = 8000
"""Generator iterations of the ``"paper"`` recipe: a CPU budget (the paper trained 100,000)."""

_FLAVORS = ("lognorm", "paper")
_PRIORS = ("uniform", "learned")
_ASSIGN = ("kmeans", "argmax", "leiden")
_POOLS = ("linkage", "vote")
_PRECISIONS = ("fp32", "bf16")


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def _check_int(value: Any, name: str, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_number(value: Any, name: str, *, positive: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise ValueError(
            f"{name} must be a finite number {'>' if positive else '>='} 0, got {value!r}."
        )


@dataclass(frozen=True)
class Ensemble:
    """One ensemble of a recipe: ``n_runs`` replicas of one network trained together.

    Fields left at ``None`` take the recipe's value.

    Parameters
    ----------
    name
        How the ensemble is reported (``uns[key]["members"]``).
    n_pcs
        ``None``: the networks see the preprocessed genes. An integer: they see the cells'
        leading principal components (capped at what the data allow: features and cells - 1).
    lr
        Adam learning rate of this ensemble.
    max_iter
        Generator iterations of this ensemble.
    n_critic
        Critic steps per generator iteration of this ensemble.
    n_runs
        Replicas of this ensemble.
    """

    name: str
    n_pcs: int | None = None
    lr: float | None = None
    max_iter: int | None = None
    n_critic: int | None = None
    n_runs: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"An ensemble's name must be a non-empty str, got {self.name!r}.")
        if self.n_pcs is not None:
            _check_int(self.n_pcs, "n_pcs", minimum=1)
        if self.lr is not None:
            _check_number(self.lr, "lr", positive=True)
        if self.max_iter is not None:
            _check_int(self.max_iter, "max_iter", minimum=1)
        if self.n_critic is not None:
            _check_int(self.n_critic, "n_critic", minimum=1)
        if self.n_runs is not None:
            _check_int(self.n_runs, "n_runs", minimum=1)


ENSEMBLES: dict[str, Ensemble] = {
    "genes": Ensemble("genes"),
    "pcs": Ensemble("pcs", n_pcs=50, lr=2e-3, max_iter=2000),
    "genes_fast": Ensemble("genes_fast", lr=2e-3, max_iter=2000),
}
"""The ensembles a recipe can name: ``"genes"`` (the recipe's settings), ``"pcs"`` (50
principal components at lr 2e-3 for 2,000 iterations: the paper's lr left a generator of
components far from the data after 2,000 iterations, 2e-3 did not; see ``docs/decisions``) and
``"genes_fast"`` (the genes at the components' lr and budget)."""


@dataclass(frozen=True)
class Recipe:
    """Every setting of a ClusterGAN fit (see :data:`RECIPES` and :func:`resolve`).

    Parameters
    ----------
    name
        The recipe's name (``flavor`` of :func:`scgan_cluster.tl.clustergan`).
    preprocessing
        How raw counts are prepared (:func:`scgan_cluster.pp.preprocess`): ``"lognorm"``
        (library size to 10,000, ``ln(1 + x)``, scanpy's highly variable genes, ``/ max``) or
        ``"paper"`` (top genes by count variance, ``log2(1 + C) / max``).
    n_top_genes
        Genes kept by the preprocessing (every gene of a smaller matrix).
    max_iter, max_iter_per_cluster
        Generator iterations: ``max(max_iter, max_iter_per_cluster * n_clusters)`` (see
        :meth:`budget`), unless an ensemble fixes its own.
    n_runs
        Replicas per ensemble, unless an ensemble fixes its own (replica r of every ensemble
        has seed ``random_state + r``).
    prior
        ``"uniform"`` (the paper's zc prior) or ``"learned"`` (the mode proportions are
        re-estimated from the encoder along training, floored at ``prior_floor / K``).
    prior_floor
        Floor of a learned prior's proportions, times ``1 / K``.
    prior_update_every
        Generator iterations between two re-estimates of a learned prior (from a quarter of
        each ensemble's run on).
    beta_r
        Weight of a reconstruction term ``||x - G(E(x))||^2`` on real cells (0: the paper).
    ensembles
        The ensembles trained on the same cells (:data:`ENSEMBLES`).
    pool
        How the replicas of all ensembles become one clustering when there are two or more:
        ``"linkage"`` (average linkage of the agreement-weighted co-association, cut at K) or
        ``"vote"`` (agreement-weighted vote after matching cluster ids).
    assign
        How one network labels cells: ``"kmeans"`` (the paper's rule: KMeans on zn joined with
        softmax(zc), new cells to the nearest centre), ``"argmax"`` (the most likely zc mode) or
        ``"leiden"`` (leiden on the zn graph at the resolution giving K clusters).
    n_embedding
        Dimensions of the consensus embedding of two or more replicas
        (``obsm["X_" + key_added]``; at most what the replicas' latents span).
    pool_max_cells
        ``"linkage"``: most cells the tree is built on (a seeded subset of larger data; the
        other cells join the cluster they are co-assigned with most).
    architecture, architecture_options, n_latent, sigma, beta_n, beta_c, gp_weight, n_critic, lr, betas, batch_size
        The networks and the optimiser (``None``: the architecture's paper value).
    lr_final
        ``None``: every ensemble trains at its constant learning rate (the paper). A number:
        each ensemble's rate falls linearly from its ``lr`` to ``lr_final`` over its run.
    precision, compile
        ``"fp32"`` or ``"bf16"`` matrix products in training; ``torch.compile`` the steps.
    cuda_graph
        On a CUDA device: record one generator iteration as a CUDA graph and replay it (fully
        connected networks without batch-norm, constant learning rate; see
        :class:`~scgan_cluster.model.GANEnsemble`). The same numbers as without.
    concurrent
        Train the ensembles at the same time, each in its own thread (and, on a GPU, its own
        CUDA stream), so that one ensemble's kernels fill the gaps of the other's on a GPU (a
        CPU's cores one ensemble already keeps busy). The same results as one ensemble after
        the other. Default ``False`` (decision 0053: not yet measured on a GPU).
    """

    name: str
    preprocessing: Literal["lognorm", "paper"]
    n_top_genes: int
    max_iter: int
    max_iter_per_cluster: int = 0
    n_runs: int = 1
    prior: Literal["uniform", "learned"] = "uniform"
    prior_floor: float = 0.1
    prior_update_every: int = 500
    beta_r: float = 0.0
    ensembles: tuple[Ensemble, ...] = (ENSEMBLES["genes"],)
    pool: Literal["linkage", "vote"] = "linkage"
    assign: Literal["kmeans", "argmax", "leiden"] = "kmeans"
    n_embedding: int = 30
    pool_max_cells: int = 5000
    architecture: str = "auto"
    architecture_options: Mapping[str, Any] = field(default_factory=dict)
    n_latent: int | None = None
    sigma: float | None = None
    beta_n: float | None = None
    beta_c: float | None = None
    gp_weight: float | None = None
    n_critic: int | None = None
    lr: float | None = None
    lr_final: float | None = None
    betas: tuple[float, float] | None = None
    batch_size: int | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    cuda_graph: bool = False
    concurrent: bool = False

    def __post_init__(self) -> None:
        _check_choice(self.preprocessing, "preprocessing", _FLAVORS)
        _check_choice(self.prior, "prior", _PRIORS)
        _check_choice(self.pool, "pool", _POOLS)
        _check_choice(self.assign, "assign", _ASSIGN)
        _check_choice(self.precision, "precision", _PRECISIONS)
        for name in ("n_top_genes", "max_iter", "n_runs", "n_embedding"):
            _check_int(getattr(self, name), name, minimum=1)
        _check_int(self.max_iter_per_cluster, "max_iter_per_cluster", minimum=0)
        _check_int(self.prior_update_every, "prior_update_every", minimum=1)
        _check_int(self.pool_max_cells, "pool_max_cells", minimum=2)
        _check_number(self.beta_r, "beta_r")
        floor = self.prior_floor
        _check_number(floor, "prior_floor")
        if floor > 1:
            raise ValueError(f"prior_floor must lie in [0, 1], got {floor!r}.")
        for name in ("compile", "cuda_graph", "concurrent"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if not isinstance(self.architecture, str):
            raise TypeError(f"architecture must be a str, got {self.architecture!r}.")
        if not isinstance(self.architecture_options, Mapping):
            raise TypeError(
                f"architecture_options must be a dict, got {self.architecture_options!r}."
            )
        object.__setattr__(
            self,
            "architecture_options",
            {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in self.architecture_options.items()
            },
        )
        ensembles = self.ensembles
        if (
            isinstance(ensembles, (str, Ensemble))
            or not isinstance(ensembles, Sequence)
            or not ensembles
            or not all(isinstance(e, Ensemble) for e in ensembles)
        ):
            raise TypeError(
                f"ensembles must be a non-empty tuple of Ensemble (see ENSEMBLES), got {ensembles!r}."
            )
        names = [e.name for e in ensembles]
        if len(set(names)) != len(names):
            raise ValueError(f"The ensembles' names must differ, got {names}.")
        object.__setattr__(self, "ensembles", tuple(ensembles))
        for name in ("n_latent", "n_critic", "batch_size"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name, minimum=1)
        for name in ("sigma", "lr", "lr_final"):
            if getattr(self, name) is not None:
                _check_number(getattr(self, name), name, positive=True)
        for name in ("beta_n", "beta_c", "gp_weight"):
            if getattr(self, name) is not None:
                _check_number(getattr(self, name), name)
        if self.betas is not None:
            betas = tuple(self.betas)
            if len(betas) != 2 or not all(
                isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas
            ):
                raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}.")
            object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))

    @property
    def n_replicas(self) -> int:
        """Replicas over all ensembles."""
        return sum(self.replicas_of(e) for e in self.ensembles)

    def replicas_of(self, ensemble: Ensemble) -> int:
        """Replicas of ``ensemble`` (one of :attr:`ensembles`).

        Its own ``n_runs``, else the recipe's.
        """
        return int(self.n_runs if ensemble.n_runs is None else ensemble.n_runs)

    def budget(self, n_clusters: int, ensemble: Ensemble | None = None) -> int:
        """Generator iterations of ``ensemble`` (default: the recipe's own) for K clusters.

        Parameters
        ----------
        n_clusters
            K.
        ensemble
            One of :attr:`ensembles`; its own ``max_iter`` wins.
        """
        if ensemble is not None and ensemble.max_iter is not None:
            return int(ensemble.max_iter)
        return max(int(self.max_iter), int(self.max_iter_per_cluster) * int(n_clusters))

    def ensemble_settings(self, ensemble: Ensemble, n_clusters: int) -> dict[str, Any]:
        """The keyword arguments of :class:`scgan_cluster.model.GANEnsemble` for one ensemble.

        Parameters
        ----------
        ensemble
            One of :attr:`ensembles`.
        n_clusters
            K.
        """
        return {
            "n_latent": self.n_latent,
            "architecture": self.architecture,
            "architecture_options": dict(self.architecture_options),
            "sigma": self.sigma,
            "beta_n": self.beta_n,
            "beta_c": self.beta_c,
            "beta_r": float(self.beta_r),
            "gp_weight": self.gp_weight,
            "n_critic": self.n_critic if ensemble.n_critic is None else ensemble.n_critic,
            "lr": self.lr if ensemble.lr is None else ensemble.lr,
            "lr_final": self.lr_final,
            "betas": self.betas,
            "batch_size": self.batch_size,
            "max_iter": self.budget(n_clusters, ensemble),
            "assign": self.assign,
            "n_runs": self.replicas_of(ensemble),
            "prior": self.prior,
            "prior_floor": float(self.prior_floor),
            "prior_update_every": int(self.prior_update_every),
            "precision": self.precision,
            "compile": self.compile,
            "cuda_graph": self.cuda_graph,
            "n_pcs": ensemble.n_pcs,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field (:func:`from_dict` reads it back)."""
        out = dataclasses.asdict(self)
        out["ensembles"] = [dataclasses.asdict(e) for e in self.ensembles]
        out["architecture_options"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.architecture_options.items()
        }
        if self.betas is not None:
            out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Recipe:
        """The recipe written by :meth:`to_dict`.

        Parameters
        ----------
        values
            What :meth:`to_dict` returned.
        """
        values = dict(values)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown recipe fields {sorted(unknown)}.")
        values["ensembles"] = tuple(Ensemble(**e) for e in values.get("ensembles", ()))
        if values.get("betas") is not None:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


_LONG = Recipe(
    name="lognorm_long",
    preprocessing="lognorm",
    n_top_genes=2000,
    max_iter=4000,
    max_iter_per_cluster=500,
    n_runs=5,
    prior="learned",
    beta_r=1.0,
    ensembles=(ENSEMBLES["genes"], ENSEMBLES["pcs"]),
    pool="linkage",
)
_FAST = dataclasses.replace(
    _LONG,
    name="lognorm_fast",
    max_iter=1000,
    max_iter_per_cluster=0,
    ensembles=(Ensemble("genes"), Ensemble("pcs", n_pcs=50)),
    lr=2e-3,
    n_critic=2,
)

RECIPES: dict[str, Recipe] = {
    "lognorm": dataclasses.replace(
        _FAST,
        name="lognorm",
        ensembles=(Ensemble("genes", lr=5e-4, n_runs=3), Ensemble("pcs", n_pcs=50, n_runs=15)),
    ),
    "lognorm_long": _LONG,
    "lognorm_fast": _FAST,
    "paper": Recipe(
        name="paper",
        preprocessing="paper",
        n_top_genes=720,
        max_iter=PAPER_MAX_ITER,
    ),
}
"""The recipes that ship.

``"lognorm"`` (the default) was chosen on the training and validation cells of the staged count
data (``benchmarks/scrna.py``; each step is a record in ``docs/decisions``): library-size
normalisation and 2,000 highly variable genes, a learned prior, a reconstruction term on real
cells, and two ensembles trained for 1,000 generator iterations with 2 critic steps each: 3
replicas of the genes at lr 5e-4 and 15 replicas of the cells' 50 principal components (five
times cheaper each) at lr 2e-3, all 18 pooled by co-association linkage (0054).
``"lognorm_long"`` is the previous default, about six times slower: two ensembles of 5 replicas
at 5 critic steps, the genes for ``max(4000, 500 K)`` iterations at the paper's lr 1e-4 and the
components for 2,000 at lr 2e-3. ``"lognorm_fast"`` is ``"lognorm_long"`` with both ensembles
trained for 1,000 iterations at lr 2e-3 with 2 critic steps (0042): the default's cost, below it
on the staged data. ``"paper"`` is the paper's 10x_73k recipe (top 720 genes by variance,
``log2(1 + C) / max``, uniform prior, one network) at a CPU budget of 8,000 iterations (the
paper: 100,000; pass ``max_iter``).
"""

MODEL_ARGS = tuple(
    f.name for f in dataclasses.fields(Recipe) if f.name not in ("name", "preprocessing")
)
"""Recipe fields a user may override (``**model_args`` of ``tl.clustergan`` and ``ClusterGAN``)."""


def resolve(flavor: str = "lognorm", **overrides: Any) -> Recipe:
    """A recipe of :data:`RECIPES` with the settings a user passed.

    A ``max_iter`` passed applies to every ensemble (and drops the per-cluster growth), and so
    do a ``lr``, a ``n_critic`` and a ``n_runs``; ``ensembles`` takes names of :data:`ENSEMBLES` or
    :class:`Ensemble` objects.

    Parameters
    ----------
    flavor
        The recipe (:data:`RECIPES`).
    **overrides
        Fields of :class:`Recipe` (:data:`MODEL_ARGS`); ``None`` values are ignored.

    Returns
    -------
    The recipe, validated.
    """
    if flavor not in RECIPES:
        raise ValueError(f"flavor must be one of {tuple(RECIPES)}, got {flavor!r}.")
    recipe = RECIPES[flavor]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(MODEL_ARGS))
    if unknown:
        raise TypeError(
            f"Unknown settings {unknown}; the settings a recipe takes are {sorted(MODEL_ARGS)}."
        )
    if "ensembles" in overrides:
        overrides["ensembles"] = _ensembles(overrides["ensembles"])
    ensembles = overrides.get("ensembles", recipe.ensembles)
    if "max_iter" in overrides:
        overrides.setdefault("max_iter_per_cluster", 0)
        ensembles = tuple(dataclasses.replace(e, max_iter=None) for e in ensembles)
    for name in ("lr", "n_critic", "n_runs"):
        if name in overrides:
            ensembles = tuple(dataclasses.replace(e, **{name: None}) for e in ensembles)
    overrides["ensembles"] = ensembles  # a passed list too loses what a passed setting overrides
    return dataclasses.replace(recipe, **overrides)


def _ensembles(value: Any) -> tuple[Ensemble, ...]:
    if isinstance(value, (str, Ensemble)) or not isinstance(value, Sequence) or not value:
        raise TypeError(
            f"ensembles must be a non-empty list of names from {tuple(ENSEMBLES)} or Ensemble "
            f"objects, got {value!r}."
        )
    out = []
    for e in value:
        if isinstance(e, str):
            if e not in ENSEMBLES:
                raise ValueError(f"Unknown ensemble {e!r}; the named ones are {tuple(ENSEMBLES)}.")
            e = ENSEMBLES[e]
        elif not isinstance(e, Ensemble):
            raise TypeError(f"ensembles takes names or Ensemble objects, got {e!r}.")
        out.append(e)
    return tuple(out)
