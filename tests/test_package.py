"""Package structure and scanpy's API conventions, checked on every public function.

A port of the idea of scanpy's ``tests/test_package_structure.py`` (written anew here): public
functions take at most three positional parameters, document every parameter, and the AnnData
tools follow the ``adata`` / ``copy`` / ``key_added`` conventions.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import scgan_cluster as scg

SUBPACKAGES = [
    "pp",
    "tl",
    "pl",
    "metrics",
    "datasets",
    "nn",
    "train",
    "adapters",
    "model",
    "recipes",
]


def _public_functions():
    for name in scg.__all__:
        obj = getattr(scg, name)
        if inspect.isfunction(obj):
            yield name, obj
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"scgan_cluster.{sub}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                yield f"{sub}.{name}", obj


FUNCTIONS = dict(_public_functions())
ANNDATA_FUNCTIONS = {k: v for k, v in FUNCTIONS.items() if k.startswith(("pp.", "tl."))}


def _documented_params(doc: str) -> set[str]:
    """Names listed in the numpydoc ``Parameters`` section (``a, b`` lines count for both)."""
    doc = inspect.cleandoc(doc)
    section = re.split(r"\nParameters\n-+\n", doc, maxsplit=1)
    if len(section) < 2:
        return set()
    body = re.split(r"\n(?:Returns|Yields|Raises|Notes|Examples|See Also)\n-+\n", section[1])[0]
    names = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            names.update(n.strip().lstrip("*") for n in line.split(":")[0].split(","))
    return names


def test_every_subpackage_has_all_and_they_resolve():
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"scgan_cluster.{sub}")
        assert hasattr(mod, "__all__"), sub
        for name in mod.__all__:
            assert hasattr(mod, name), f"{sub}.{name}"
    for name in scg.__all__:
        assert hasattr(scg, name)


def test_version_and_typing():
    from importlib.metadata import version

    assert scg.__version__ == version("scgan-cluster")
    assert (Path(scg.__file__).parent / "py.typed").is_file()


# functions of tensors that take the modules and the data (train.*, nn.*) are exempt: they are
# internals exposed for advanced use, called with all inputs positional by design
USER_FUNCTIONS = sorted(n for n in FUNCTIONS if not n.startswith(("train.", "nn.")))


def test_the_user_functions_are_the_ones_checked():
    assert {"tl.clustergan", "pp.preprocess", "recipes.resolve"} <= set(USER_FUNCTIONS)
    assert len(USER_FUNCTIONS) > 10


@pytest.mark.parametrize("name", USER_FUNCTIONS)
def test_at_most_three_positional_parameters(name):
    sig = inspect.signature(FUNCTIONS[name])
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert len(positional) <= 3, f"{name} takes {len(positional)} positional parameters"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_parameter_is_documented(name):
    func = FUNCTIONS[name]
    assert func.__doc__, f"{name} has no docstring"
    params = set(inspect.signature(func).parameters) - {"self", "args", "kwargs", "options"}
    missing = params - _documented_params(func.__doc__)
    assert not missing, f"{name}: undocumented parameters {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(ANNDATA_FUNCTIONS))
def test_anndata_tools_follow_scanpy_conventions(name):
    sig = inspect.signature(ANNDATA_FUNCTIONS[name])
    params = list(sig.parameters.values())
    assert params[0].name == "adata"
    assert "copy" in sig.parameters
    assert sig.parameters["copy"].default is False
    assert sig.parameters["copy"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["layer"].default is None
    if name.startswith("tl."):
        assert sig.parameters["key_added"].kind is inspect.Parameter.KEYWORD_ONLY
        assert sig.parameters["random_state"].default == 0
    assert "Returns" in ANNDATA_FUNCTIONS[name].__doc__


@pytest.mark.parametrize(
    ("cls", "methods"),
    [
        (
            scg.ClusterGAN,
            (
                "fit",
                "predict",
                "predict_proba",
                "get_latent_representation",
                "generate",
                "annotate",
                "save",
                "load",
            ),
        ),
        (
            scg.model.GANEnsemble,
            ("fit", "get_latent_representation", "predict", "generate", "decode", "save", "load"),
        ),
    ],
)
def test_model_methods_are_documented(cls, methods):
    for name in methods:
        meth = getattr(cls, name)
        params = set(inspect.signature(meth).parameters) - {"self", "cls"}
        doc = meth.__doc__ or ""
        assert doc, name
        assert params <= _documented_params(doc), name
    cls_params = set(inspect.signature(cls).parameters)
    assert cls_params <= _documented_params(cls.__doc__)


def test_the_model_takes_the_names_of_tl():
    tl_sig = inspect.signature(scg.tl.clustergan).parameters
    model_sig = inspect.signature(scg.ClusterGAN).parameters
    shared = {"n_clusters", "flavor", "max_iter", "random_state", "device", "model_args"}
    assert shared <= set(tl_sig)
    assert shared <= set(model_sig)
    for name in shared:
        assert tl_sig[name].default == model_sig[name].default, name
    # layer and preprocess belong to the data: ClusterGAN.fit takes them
    fit_sig = inspect.signature(scg.ClusterGAN.fit).parameters
    for name in ("layer", "preprocess"):
        assert fit_sig[name].default == tl_sig[name].default, name
    # about 15 named parameters at most; everything else in **model_args
    assert len(tl_sig) <= 15


def test_nothing_touches_global_rng():
    import numpy as np
    import torch

    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what is checked
    t_before, n_before = torch.rand(1), np.random.rand()  # noqa: NPY002
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what is checked
    a = scg.datasets.synthetic(20)
    scg.tl.clustergan(a, 4, preprocess=False, max_iter=5, batch_size=16, n_latent=3)
    assert torch.rand(1) == t_before
    assert np.random.rand() == n_before  # noqa: NPY002


def test_no_dot_cuda_and_no_basicconfig_in_the_source():
    root = Path(scg.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert ".cuda()" not in text, path
        assert "basicConfig" not in text, path


def test_settings():
    with pytest.raises(ValueError, match="verbosity"):
        scg.settings.verbosity = "loud"
    scg.settings.verbosity = 2
    assert scg.settings.verbosity == "info"
    assert "verbosity='info'" in repr(scg.settings)


def test_closing_log_line(counts, capsys):
    scg.settings.verbosity = "info"
    scg.tl.clustergan(counts, 3, max_iter=5, batch_size=32, n_top_genes=20, n_latent=3)
    err = capsys.readouterr().err
    assert "finished: found" in err
    assert "'X_clustergan'" in err
    scg.settings.verbosity = "warning"
    scg.tl.clustergan(counts, 3, max_iter=5, batch_size=32, n_top_genes=20, n_latent=3)
    assert "finished" not in capsys.readouterr().err


def test_progress_bar_follows_settings(counts, capsys):
    scg.settings.progress_bar = True
    scg.tl.clustergan(counts, 3, max_iter=5, batch_size=32, n_top_genes=20, n_latent=3)
    assert "ClusterGAN" in capsys.readouterr().err
    scg.settings.progress_bar = False
    scg.tl.clustergan(counts, 3, max_iter=5, batch_size=32, n_top_genes=20, n_latent=3)
    assert "ClusterGAN" not in capsys.readouterr().err
