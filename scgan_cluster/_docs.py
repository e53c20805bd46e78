"""Shared docstring fragments, filled in with :func:`doc_params`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

doc_adata = """\
adata
    Annotated data matrix of shape ``n_obs`` x ``n_vars`` (cells x genes)."""

doc_layer = """\
layer
    Key of ``adata.layers`` to read instead of ``adata.X``."""

doc_copy = """\
copy
    Return a modified copy instead of writing into ``adata``."""

doc_random_state = """\
random_state
    Seed of the run: network initialisation, latent noise, minibatch order and KMeans.
    Recorded in ``uns[key_added]["params"]``. No global random state is touched."""

doc_device = """\
device
    ``"auto"`` (cuda, then mps, then cpu; see :attr:`scgan_cluster.settings.device`),
    or any torch device such as ``"cpu"`` or ``"cuda:0"``."""

doc_model_params = """\
n_clusters
    K, the number of clusters: the dimension of the one-hot code zc.
n_latent
    Dimension of the continuous latent zn. ``None``: the architecture's paper value (10x_73k
    and MNIST 30, Fashion-MNIST 40, COIL-20 20, synthetic 6, Pendigits 5).
architecture
    Name of an entry of :data:`scgan_cluster.nn.ARCHITECTURES` (``"mlp"``: the paper's 10x_73k
    networks; ``"mnist"``, ``"fashion_mnist"``, ``"coil20"``, ``"pendigits"``, ``"synthetic"``:
    the paper's networks for those data), or ``"auto"``: chosen by the data when fitting (vectors
    get ``"mlp"``, images the conv entry for their height and width, see
    :func:`scgan_cluster.nn.pick_architecture`).
sigma
    Standard deviation of the prior zn ~ N(0, sigma^2 I) (``None``: the paper's 0.1).
beta_n
    Weight of the zn cycle loss ||zn - E(G(z))_n||^2 (``None``: the architecture's paper value,
    10; 0 for Fashion-MNIST).
beta_c
    Weight of the zc cross-entropy H(zc, E(G(z))_c) (``None``: the paper's 10).
beta_r
    Weight of a reconstruction term on real cells, ||x - G(E(x))||^2 summed over features with
    G fed (zn_hat, softmax(zc_logits)) (not in the paper, which trains E on generated samples
    only; default 0, the paper's objective; see :class:`scgan_cluster.train.TrainConfig`).
gp_weight
    Gradient-penalty coefficient of WGAN-GP (``None``: the paper's 10).
n_critic
    Critic updates per generator/encoder update (``None``: the paper's 5).
lr
    Adam learning rate of all three networks (``None``: the paper's 1e-4).
lr_final
    ``None`` (default, the paper): the learning rate stays ``lr``. A number: it falls linearly
    from ``lr`` at the first generator iteration to ``lr_final`` at the last.
betas
    Adam betas (``None``: the paper's ``(0.5, 0.9)``).
batch_size
    Minibatch size (``None``: the paper's 64).
max_iter
    Number of generator iterations (each after ``n_critic`` critic steps). The paper trained for
    100,000; the default of 8,000 is a CPU-friendly budget, see the Notes.
assign
    How cells become clusters: ``"kmeans"`` (the paper's rule: KMeans with K clusters on the
    encoder's full latent, zn joined with softmax(zc)), ``"argmax"`` (the encoder's zc mode) or
    ``"leiden"`` (leiden on the 15-nearest-neighbour graph of zn, at the resolution that gives
    K clusters, or the closest number below K; new cells go to the nearest cluster mean in zn)."""

doc_labels = """\
labels_true
    Reference labels, one per cell (any hashable values: ints, strings, a categorical).
labels_pred
    Cluster labels, one per cell."""

doc_new_data = """\
data
    AnnData (genes aligned by ``var_names``; raw counts are transformed with the training
    genes and scale) or a matrix with the model's features in order.
layer
    For AnnData: the layer to read instead of ``X``."""
doc_save_show = """\
save
    Write the figure to this path (PNG, PDF, ... by suffix).
show
    Show the figure; ``None`` shows it only when not saving."""

_FRAGMENTS = {
    "doc_labels": doc_labels,
    "doc_new_data": doc_new_data,
    "doc_adata": doc_adata,
    "doc_layer": doc_layer,
    "doc_copy": doc_copy,
    "doc_random_state": doc_random_state,
    "doc_device": doc_device,
    "doc_model_params": doc_model_params,
    "doc_save_show": doc_save_show,
}


def _indent(text: str, prefix: str) -> str:
    lines = text.splitlines()
    return "\n".join([lines[0]] + [prefix + line if line else line for line in lines[1:]])


def doc_params(func: F) -> F:
    """Fill ``{doc_adata}``-style placeholders of ``func.__doc__`` (indented like the placeholder)."""
    doc = func.__doc__
    if doc is None:
        return func
    out = []
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}") and stripped[1:-1] in _FRAGMENTS:
            prefix = line[: len(line) - len(line.lstrip())]
            out.append(prefix + _indent(_FRAGMENTS[stripped[1:-1]], prefix))
        else:
            out.append(line)
    func.__doc__ = "\n".join(out)
    return func
