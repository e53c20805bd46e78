"""Turn what the user passes (AnnData, numpy, scipy sparse, torch) into one prepared matrix."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy import sparse

from scgan_cluster._dask import check_dask_matrix, is_dask
from scgan_cluster._validation import (
    check_adata,
    check_counts,
    check_finite,
    get_matrix,
    where_text,
)
from scgan_cluster.pp._prepare import (
    UNS_KEY,
    align_genes,
    apply_transform,
    check_flavor,
    fit_transform,
    library_size,
)

__all__ = [
    "Prepared",
    "prepare_fit",
    "prepare_predict",
    "is_prepared",
    "image_shape_of",
    "IMAGE_SHAPE_KEY",
]

IMAGE_SHAPE_KEY = "image_shape"
"""Key of ``adata.uns`` that marks an AnnData of flattened images: ``[C, H, W]``."""


@dataclass
class Prepared:
    """A float32 feature matrix ready for the networks.

    Attributes
    ----------
    x
        ``(n_obs, n_features)`` numpy array or scipy sparse matrix, float32. Images are held
        flattened in C order (``n_features = C * H * W``), pixels in [0, 1].
    var_names
        Names of the features (gene names; ``"0"``, ``"1"``, ... for arrays).
    transform
        ``{"genes": [...], "scale": s}`` when the features are ``log2(1 + C) / s`` of counts of
        those genes, else ``None`` (the features were used as given).
    image_shape
        ``(C, H, W)`` when the rows are images, else ``None``.
    """

    x: np.ndarray | sparse.spmatrix
    var_names: np.ndarray
    transform: dict | None
    image_shape: tuple[int, int, int] | None = None


def image_shape_of(adata: AnnData) -> tuple[int, int, int] | None:
    """The ``(C, H, W)`` recorded in ``adata.uns["image_shape"]``, checked against ``n_vars``; else ``None``.

    Parameters
    ----------
    adata
        An AnnData, e.g. from :func:`scgan_cluster.datasets.mnist`.
    """
    if IMAGE_SHAPE_KEY not in adata.uns:
        return None
    raw = np.asarray(adata.uns[IMAGE_SHAPE_KEY]).ravel()
    if raw.size != 3 or not np.issubdtype(raw.dtype, np.integer) or (raw < 1).any():
        raise ValueError(
            f"adata.uns[{IMAGE_SHAPE_KEY!r}] must be three positive ints [C, H, W], got {adata.uns[IMAGE_SHAPE_KEY]!r}."
        )
    shape = (int(raw[0]), int(raw[1]), int(raw[2]))
    if shape[0] * shape[1] * shape[2] != adata.n_vars:
        raise ValueError(
            f"adata.uns[{IMAGE_SHAPE_KEY!r}] = {list(shape)} holds {shape[0] * shape[1] * shape[2]} "
            f"pixels, but adata has {adata.n_vars} variables."
        )
    return shape


def _image_pixels(x, what: str) -> np.ndarray | sparse.spmatrix:
    """Pixels as float32 in [0, 1]: integer images are read as 8-bit (divided by 255)."""
    if is_dask(x):
        raise TypeError(
            f"{what} is a dask array of images; images are read into memory: pass "
            "x.compute() (dask input is for cells x genes matrices)."
        )
    check_finite(x, what)
    v = x.data if sparse.issparse(x) else np.asarray(x)
    if v.dtype == bool:
        x = x.astype(np.float32)
        v = x.data if sparse.issparse(x) else x
    if np.issubdtype(v.dtype, np.integer):
        if v.size and (v.min() < 0 or v.max() > 255):
            raise ValueError(
                f"{what} holds integer pixels outside [0, 255]; scale the images to [0, 1] first."
            )
        x = x.astype(np.float32) / np.float32(255)
    elif v.size and (v.min() < 0 or v.max() > 1):
        raise ValueError(
            f"{what} holds pixels in [{float(v.min()):.4g}, {float(v.max()):.4g}]; the image "
            "networks end in a sigmoid, so scale the pixels to [0, 1] first (the paper divides "
            "8-bit pixels by 255; integer uint8 images are divided by 255 here)."
        )
    return _float32(x)


def _as_array(data):
    """Array-like input -> numpy (2-D or 4-D) or scipy sparse (2-D)."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if is_dask(data):
        check_dask_matrix(data, "The input")
        x = data
    elif sparse.issparse(data) or isinstance(data, np.ndarray):
        x = data
    elif isinstance(data, (pd.DataFrame, list, tuple)):
        x = np.asarray(data)
    else:
        raise TypeError(
            f"Expected an AnnData, numpy array, scipy sparse matrix, dask array or torch tensor, got {type(data).__name__}."
        )
    if x.ndim not in (2, 4):
        extra = (
            " For grey images (n, H, W), pass x[:, None] to add the channel axis."
            if x.ndim == 3
            else ""
        )
        raise ValueError(
            f"Expected a 2-D matrix (n, features) or a 4-D image batch (n, C, H, W), got shape {x.shape}.{extra}"
        )
    if 0 in x.shape:
        raise ValueError(f"The input is empty (shape {x.shape}).")
    return x


def _float32(x):
    if is_dask(x):
        return x if x.dtype == np.float32 else x.astype(np.float32)
    if sparse.issparse(x):
        return sparse.csr_matrix(x, dtype=np.float32)
    return np.asarray(x, dtype=np.float32)


def is_prepared(adata: AnnData, layer: str | None) -> bool:
    """Whether ``pp.preprocess`` wrote this layer (its record in ``uns`` names the same layer).

    Parameters
    ----------
    adata
        The data.
    layer
        ``None`` for ``X``, else a key of ``adata.layers``.
    """
    info = adata.uns.get(UNS_KEY)
    return isinstance(info, dict) and "scale" in info and info.get("layer") == layer


def _prepared_columns(adata: AnnData) -> np.ndarray:
    if "clustergan_selected" in adata.var and not adata.uns[UNS_KEY].get("subset", True):
        return np.flatnonzero(adata.var["clustergan_selected"].to_numpy(dtype=bool))
    return np.arange(adata.n_vars)


def _check_flat_images(n_columns: int, image_shape: tuple[int, int, int]) -> None:
    if n_columns != int(np.prod(image_shape)):
        raise ValueError(
            f"The architecture takes images of shape {list(image_shape)} "
            f"({int(np.prod(image_shape))} pixels), but the data have {n_columns} columns. "
            "Pass a (n, C, H, W) batch or an AnnData with uns['image_shape']."
        )


def _fit_images(x, names: np.ndarray, shape: tuple[int, int, int], what: str) -> Prepared:
    return Prepared(_image_pixels(x, what), names, None, shape)


def prepare_fit(
    data,
    *,
    layer: str | None = None,
    preprocess: bool = True,
    n_top_genes: int = 720,
    copy: bool = True,
    image_shape: tuple[int, int, int] | None = None,
    flavor: str = "paper",
) -> Prepared:
    """Input for training.

    Vectors: with ``preprocess=True``, data already prepared by :func:`scgan_cluster.pp.preprocess`
    are used as they are; otherwise the data must be raw counts and the paper's transform is
    applied to a copy. With ``preprocess=False`` the values are used as they are.

    Images (a 4-D ``(n, C, H, W)`` array or tensor, or an AnnData with ``uns["image_shape"]``)
    get no count preprocessing, whatever ``preprocess`` says: the pixels must lie in [0, 1]
    (integer images are read as 8-bit and divided by 255, as the paper scales MNIST), and they
    are returned flattened with ``image_shape`` set.

    Parameters
    ----------
    data
        AnnData, numpy array, scipy sparse matrix or torch tensor (cells x features), or a 4-D
        image batch; a :class:`Prepared` is returned as it is.
    layer
        For AnnData: read this layer instead of ``X``.
    preprocess
        Apply (or accept already applied) the paper's preprocessing of counts.
    n_top_genes
        Genes kept when the preprocessing is applied here.
    copy
        Whether the caller will write into a copy (a view of an AnnData is then allowed).
    flavor
        The preprocessing applied here (:data:`scgan_cluster.pp.FLAVORS`); data prepared by
        :func:`scgan_cluster.pp.preprocess` keep the flavor they were prepared with.
    image_shape
        Read 2-D data (and AnnData without ``uns["image_shape"]``) as flattened images of this
        ``(C, H, W)``; the number of columns must match. Data that carry their own image shape
        keep it.
    """
    if isinstance(data, Prepared):  # prepared once for several networks
        return data
    if image_shape is not None:
        image_shape = tuple(int(s) for s in image_shape)
    if isinstance(data, AnnData):
        check_adata(data, copy=copy)
        x = get_matrix(data, layer)
        names = data.var_names.astype(str).to_numpy()
        shape = image_shape_of(data)
        if shape is None and image_shape is not None:
            _check_flat_images(data.n_vars, image_shape)
            shape = image_shape
        if shape is not None:
            return _fit_images(x, names, shape, where_text(layer))
        if preprocess and is_prepared(data, layer):
            cols = _prepared_columns(data)
            x = x[:, cols] if len(cols) < data.n_vars else x
            check_finite(x, where_text(layer))
            info = data.uns[UNS_KEY]
            transform = {
                "genes": names[cols].tolist(),
                **{k: info[k] for k in ("flavor", "scale", "target_sum") if k in info},
            }
            transform["scale"] = float(transform["scale"])
            return Prepared(_float32(x), names[cols], transform)
        adata = data
    else:
        if layer is not None:
            raise ValueError("layer= only applies to AnnData input.")
        x = _as_array(data)
        if x.ndim == 4:
            shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
            flat = x.reshape(x.shape[0], -1)
            return _fit_images(flat, np.arange(flat.shape[1]).astype(str), shape, "The input")
        names = np.arange(x.shape[1]).astype(str)
        if image_shape is not None:
            _check_flat_images(x.shape[1], image_shape)
            return _fit_images(x, names, image_shape, "The input")
        adata = None
    if not preprocess:
        check_finite(x, where_text(layer) if adata is not None else "The input")
        return Prepared(_float32(x), names, None)
    check_counts(
        x,
        layer,
        adata,
        extra_hint=" Or pass preprocess=False to use the values as they are (they should lie in [0, 1]).",
    )
    check_flavor(flavor)
    values, cols, record = fit_transform(
        x, n_top_genes, flavor, where_text(layer) if adata is not None else "the input"
    )
    transform = {"genes": names[cols].tolist(), **record}
    if adata is None:
        transform["n_input_features"] = int(x.shape[1])
    elif record["flavor"] == "lognorm":  # the genes each cell's library size is summed over
        transform["library_genes"] = names.tolist()
    return Prepared(values, names[cols], transform)


def _predict_images(
    data, var_names: np.ndarray, image_shape: tuple[int, int, int], layer: str | None
) -> Prepared:
    n_pixels = int(np.prod(image_shape))
    if isinstance(data, AnnData):
        check_adata(data, copy=True, allow_view=True)
        x = get_matrix(data, layer)
        shape = image_shape_of(data)
        if (shape is not None and shape != tuple(image_shape)) or data.n_vars != n_pixels:
            got = list(shape) if shape is not None else f"{data.n_vars} variables"
            raise ValueError(
                f"The model was trained on images of shape {list(image_shape)}, got {got}."
            )
        what = where_text(layer)
    else:
        if layer is not None:
            raise ValueError("layer= only applies to AnnData input.")
        x = _as_array(data)
        if x.ndim == 4 and tuple(x.shape[1:]) != tuple(image_shape):
            raise ValueError(
                f"The model was trained on images of shape {list(image_shape)}, got {list(x.shape[1:])}."
            )
        x = x.reshape(x.shape[0], -1) if x.ndim == 4 else x
        if x.shape[1] != n_pixels:
            raise ValueError(
                f"The model was trained on images of shape {list(image_shape)} ({n_pixels} "
                f"pixels), got {x.shape[1]} columns."
            )
        what = "The input"
    return Prepared(_image_pixels(x, what), np.asarray(var_names), None, tuple(image_shape))


def prepare_predict(
    data,
    var_names: np.ndarray,
    transform: dict | None,
    *,
    layer: str | None = None,
    image_shape: tuple[int, int, int] | None = None,
) -> Prepared:
    """Input for a trained model: aligned to its features and put on its training scale.

    Parameters
    ----------
    data
        AnnData (aligned by ``var_names``) or a matrix with the model's columns. For a model
        trained on images: images of the same shape, as a 4-D batch, a flattened 2-D matrix or
        an AnnData of flattened images (matched by position).
    var_names
        The model's features, in order.
    transform
        The model's ``{"genes", "flavor", "scale"[, "target_sum", "n_input_features"]}`` or
        ``None``.
    layer
        For AnnData: read this layer instead of ``X``.
    image_shape
        ``(C, H, W)`` of the training images, or ``None`` for a model trained on vectors.
    """
    if image_shape is not None:
        return _predict_images(data, var_names, image_shape, layer)
    n_features = len(var_names)
    if isinstance(data, AnnData):
        check_adata(data, copy=True, allow_view=True)
        x = get_matrix(data, layer)
        pos = align_genes(data.var_names, var_names)
        if transform is not None and is_prepared(data, layer):
            x = x[:, pos]
            info = data.uns[UNS_KEY]
            scale, flavor = float(info["scale"]), info.get("flavor", "paper")
            if flavor != transform.get("flavor", "paper"):
                raise ValueError(
                    f"These data were preprocessed with flavor {flavor!r}, the model with "
                    f"{transform.get('flavor', 'paper')!r}. Pass raw counts instead."
                )
            if not np.isclose(scale, transform["scale"]):
                warnings.warn(
                    f"These data were preprocessed with scale {scale:.6g}, the model with "
                    f"{transform['scale']:.6g}; the values are not on the training scale. Pass raw "
                    "counts instead, or rerun pp.preprocess on counts with genes=model.var_names, "
                    "scale=model.scale.",
                    UserWarning,
                    stacklevel=3,
                )
            check_finite(x, where_text(layer))
            return Prepared(_float32(x), np.asarray(var_names), transform)
        what = where_text(layer)
        adata = data
        cols = pos
    else:
        if layer is not None:
            raise ValueError("layer= only applies to AnnData input.")
        x = _as_array(data)
        if x.ndim != 2:
            raise ValueError(
                f"The model was trained on vectors of {n_features} features, got an image batch "
                f"of shape {x.shape}."
            )
        if transform is not None and "n_input_features" in transform:
            # trained on an unnamed counts matrix: the kept genes are column positions
            n_in = int(transform["n_input_features"])
            if x.shape[1] != n_in:
                raise ValueError(
                    f"The model was trained on {n_in} columns of counts, got {x.shape[1]}."
                )
            cols = np.asarray(transform["genes"], dtype=int)
        elif x.shape[1] != n_features:
            raise ValueError(
                f"The model expects {n_features} features (its var_names, in order), got {x.shape[1]}. "
                "Pass an AnnData to align genes by name."
            )
        elif transform is not None and transform.get("flavor", "paper") == "lognorm":
            raise ValueError(
                "This model normalises each cell by its total counts over all genes, so it needs "
                "every gene of the cells: pass an AnnData of raw counts (genes aligned by name)."
            )
        else:
            cols = np.arange(n_features)
        what = "The input"
        adata = None
    if transform is None:
        if not np.array_equal(cols, np.arange(x.shape[1])):  # subset or reorder by name
            x = x[:, cols]
        check_finite(x, what)
        return Prepared(_float32(x), np.asarray(var_names), None)
    check_counts(x, layer, adata)
    totals = None
    if adata is not None and "library_genes" in transform:
        totals = _library_size(adata, x, transform["library_genes"], what)
    return Prepared(
        apply_transform(x, cols, transform, what, totals=totals), np.asarray(var_names), transform
    )


def _library_size(adata: AnnData, x, library_genes: list, what: str) -> np.ndarray:
    """Each cell's total over the genes the training cells were normalised over.

    Genes of ``adata`` that training did not have are left out, whatever their order; genes of
    training missing here cannot count, and a warning says how many.
    """
    pos = pd.Index(adata.var_names).get_indexer(pd.Index([str(g) for g in library_genes]))
    present = pos[pos >= 0]
    n_missing = len(pos) - len(present)
    if n_missing:
        warnings.warn(
            f"{n_missing} of the {len(pos)} genes whose counts made up a training cell's library "
            f"size are missing from {what}; these cells' library sizes are summed over the "
            f"{len(present)} present, which shifts their normalisation when the missing genes "
            "carry many counts. Pass cells with the training data's genes for the same scale.",
            UserWarning,
            stacklevel=4,
        )
    if np.array_equal(present, np.arange(x.shape[1])):
        return library_size(x, what)
    return library_size(x[:, present], what)
