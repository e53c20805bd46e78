"""The ``scgan-cluster`` command: ``cluster`` and ``predict`` in-process, ``--help`` as a program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pytest
from _helpers import make_counts

import scgan_cluster as scg
from scgan_cluster.__main__ import main
from scgan_cluster._cli import parse_settings

# a tiny fit: 2 small networks (the lognorm recipe's two ensembles, one replica each)
SETTINGS = {
    "batch_size": 16,
    "n_top_genes": 30,
    "n_latent": 4,
    "n_runs": 1,
    "n_critic": 2,
    "architecture_options": {"hidden": (32,)},
}
TINY = ["--max-iter", "20", "-q"] + [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]
SEED = 2


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A folder with ``cells.h5ad``, its clustering ``out.h5ad`` and the saved ``model``."""
    d = tmp_path_factory.mktemp("cli")
    make_counts(n_per_cluster=30).write_h5ad(d / "cells.h5ad")
    argv = ["cluster", str(d / "cells.h5ad"), "-o", str(d / "out.h5ad"), "-k", "3"]
    argv += ["--seed", str(SEED), "--save-model", str(d / "model"), *TINY]
    assert main(argv) == 0
    return d


def labels(path: Path, key: str = "clustergan") -> np.ndarray:
    return anndata.read_h5ad(path).obs[key].astype(int).to_numpy()


def hidden(folder: Path) -> list[str]:
    """Temporary files or folders left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_help_as_a_program():
    run = subprocess.run(
        [sys.executable, "-m", "scgan_cluster", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: scgan-cluster")
    for command in ("cluster", "predict", "demo"):
        assert command in run.stdout


def test_command_help_lists_the_options(capsys):
    assert main(["cluster", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: scgan-cluster cluster")
    for option in ("--flavor", "--layer", "--max-iter", "--seed", "--device", "--key-added"):
        assert option in text
    for option in ("--save-model", "--set KEY=VALUE", "--overwrite", "-k K"):
        assert option in text
    assert main(["predict", "--help"]) == 0
    assert "--model DIR" in capsys.readouterr().out


def test_cluster_writes_what_the_fitted_model_gives(fitted):
    out = anndata.read_h5ad(fitted / "out.h5ad")
    model = scg.ClusterGAN(3, max_iter=20, random_state=SEED, **SETTINGS)
    model.fit(anndata.read_h5ad(fitted / "cells.h5ad"))
    np.testing.assert_array_equal(out.obs["clustergan"].astype(int).to_numpy(), model.labels_)
    np.testing.assert_array_equal(out.obsm["X_clustergan"], model.latent_)
    np.testing.assert_array_equal(out.obsm["clustergan_runs"], model.labels_runs_)
    assert out.uns["clustergan"]["params"]["random_state"] == SEED
    assert list(out.obs["truth"]) == list(make_counts(n_per_cluster=30).obs["truth"])
    assert hidden(fitted) == []


def test_saved_model_predicts_the_same_labels(fitted, tmp_path):
    expected = labels(fitted / "out.h5ad")
    model = scg.ClusterGAN.load(fitted / "model")
    np.testing.assert_array_equal(model.predict(anndata.read_h5ad(fitted / "cells.h5ad")), expected)
    argv = ["predict", str(fitted / "cells.h5ad"), "--model", str(fitted / "model")]
    assert main([*argv, "-o", str(tmp_path / "again.h5ad"), "--key-added", "gan", "-q"]) == 0
    np.testing.assert_array_equal(labels(tmp_path / "again.h5ad", "gan"), expected)
    # new cells: the same ones with their genes shuffled and their order reversed
    a = anndata.read_h5ad(fitted / "cells.h5ad")
    perm = np.random.default_rng(0).permutation(a.n_vars)
    a[::-1, perm].copy().write_h5ad(tmp_path / "new.h5ad")
    argv = ["predict", str(tmp_path / "new.h5ad"), "--model", str(fitted / "model")]
    assert main([*argv, "-o", str(tmp_path / "new_out.h5ad"), "-q"]) == 0
    new = anndata.read_h5ad(tmp_path / "new_out.h5ad")
    assert list(new.obs_names) == list(a.obs_names[::-1])
    np.testing.assert_array_equal(new.obs["clustergan"].astype(int).to_numpy(), expected[::-1])
    assert hidden(tmp_path) == []


def test_predict_replaces_an_output_only_with_overwrite(fitted, tmp_path, capsys):
    out = tmp_path / "out.h5ad"
    out.write_text("keep me")
    argv = ["predict", str(fitted / "cells.h5ad"), "--model", str(fitted / "model"), "-o", str(out)]
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main([*argv, "--overwrite"]) == 0
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(labels(out), labels(fitted / "out.h5ad"))
    assert hidden(tmp_path) == []


def test_set_reads_python_literals_else_text():
    got = parse_settings(["n_runs=2", "lr=1e-3", "betas=(0.5, 0.9)", "prior=learned", "n_runs=3"])
    assert got == {"n_runs": 3, "lr": 1e-3, "betas": (0.5, 0.9), "prior": "learned"}
    assert parse_settings(["ensembles=['genes']", "sigma = 0.2"]) == {
        "ensembles": ["genes"],
        "sigma": 0.2,
    }


# ------------------------------------------------------------------ errors
def _write(path: Path, adata: anndata.AnnData) -> Path:
    adata.write_h5ad(path)
    return path


def _not_counts(tmp: Path) -> Path:
    a = make_counts(n_per_cluster=10)
    a.X = np.log1p(a.X)
    return _write(tmp / "lognorm.h5ad", a)


def _corrupt(tmp: Path) -> Path:
    good = _write(tmp / "good.h5ad", make_counts(n_per_cluster=10))
    bad = tmp / "corrupt.h5ad"
    bad.write_bytes(good.read_bytes()[:2000])
    good.unlink()
    return bad


def _text(tmp: Path) -> Path:
    path = tmp / "cells.h5ad"
    path.write_text("gene,cell\n1,2\n")
    return path


def _counts(tmp: Path) -> Path:
    return _write(tmp / "cells.h5ad", make_counts(n_per_cluster=10))


def _other_genes(tmp: Path) -> Path:
    a = make_counts(n_per_cluster=10)
    a.var_names = [f"other{j}" for j in range(a.n_vars)]
    return _write(tmp / "other.h5ad", a)


CLUSTER_ERRORS = {
    "missing input": (lambda t: t / "nope.h5ad", [], 2, "does not exist"),
    "text file": (_text, [], 1, "cannot read"),
    "corrupt h5ad": (_corrupt, [], 1, "cannot read"),
    "no raw counts": (_not_counts, [], 1, "raw counts. Pass --layer with a layer"),
    "no raw counts, hint": (_not_counts, [], 1, "Or pass --no-preprocess"),
    "missing layer": (_counts, ["--layer", "counts"], 1, "counts"),
    "too few clusters": (_counts, ["-k", "1"], 2, "n_clusters"),
    "--set without =": (_counts, ["--set", "batch_size"], 2, "KEY=VALUE"),
    "--set of an option": (_counts, ["--set", "max_iter=5"], 2, "--max-iter"),
    "--set unknown": (_counts, ["--set", "bogus=1"], 2, "bogus"),
    "--set bad value": (_counts, ["--set", "lr=-1"], 2, "lr must be a finite number > 0"),
    "--set preprocess": (_counts, ["--set", "preprocess=False"], 2, "use --no-preprocess"),
    "bad key": (_counts, ["--key-added", ""], 2, "--key-added must be a non-empty str"),
    "bad device": (_counts, ["--device", "tpu"], 2, "device"),
}


def _fails(argv: list[str], capsys, status: int, text: str) -> str:
    assert main(argv) == status
    err = capsys.readouterr().err
    assert err.startswith("scgan-cluster: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert text in err
    return err


@pytest.mark.parametrize("case", list(CLUSTER_ERRORS))
def test_cluster_errors_leave_nothing(case, tmp_path, capsys):
    make, extra, status, text = CLUSTER_ERRORS[case]
    source = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out, model = tmp_path / "out.h5ad", tmp_path / "model"
    argv = ["cluster", str(source), "-o", str(out), "--save-model", str(model), *TINY]
    argv += extra if "-k" in extra else ["-k", "3", *extra]
    _fails(argv, capsys, status, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cluster_refuses_to_replace_its_input_or_outputs(tmp_path, capsys):
    source = _counts(tmp_path)
    argv = ["cluster", str(source), "-k", "3", *TINY]
    _fails([*argv, "-o", str(source), "--overwrite"], capsys, 2, "is the input")
    (tmp_path / "out.h5ad").write_text("keep me")
    _fails([*argv, "-o", str(tmp_path / "out.h5ad")], capsys, 2, "--overwrite")
    model = tmp_path / "model"
    model.mkdir()
    (model / "notes.txt").write_text("mine")
    argv += ["-o", str(tmp_path / "new.h5ad"), "--save-model", str(model)]
    _fails(argv, capsys, 2, "--overwrite")
    # a folder that holds no model is not replaced, --overwrite or not
    _fails([*argv, "--overwrite"], capsys, 2, "holds no saved model")
    _fails([*argv[:-2], "--save-model", str(tmp_path / "no" / "dir")], capsys, 2, "does not exist")
    assert (tmp_path / "out.h5ad").read_text() == "keep me"
    assert [p.name for p in model.iterdir()] == ["notes.txt"]
    assert not (tmp_path / "new.h5ad").exists()
    assert hidden(tmp_path) == []


def test_cluster_missing_option_is_a_usage_error(tmp_path, capsys):
    assert main(["cluster", str(_counts(tmp_path)), "-o", str(tmp_path / "o.h5ad")]) == 2
    assert "-k/--n-clusters" in capsys.readouterr().err


def test_a_failure_after_the_fit_leaves_the_old_outputs(fitted, tmp_path, capsys, monkeypatch):
    """Fit and annotate succeed, saving the model fails: nothing new replaces anything."""
    source = _counts(tmp_path)
    out, model = tmp_path / "out.h5ad", tmp_path / "model"
    out.write_text("old result")
    model.mkdir()
    for f in (fitted / "model").iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    saved = sorted((p.name, p.read_bytes()) for p in model.iterdir())

    def full_disk(self, path, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scg.ClusterGAN, "save", full_disk)
    argv = ["cluster", str(source), "-k", "3", "-o", str(out), "--save-model", str(model)]
    argv += ["--overwrite", "--flavor", "paper", *TINY]
    _fails(argv, capsys, 1, "No space left on device")
    assert out.read_text() == "old result"
    assert sorted((p.name, p.read_bytes()) for p in model.iterdir()) == saved
    assert hidden(tmp_path) == []


def _empty_dir(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _damaged_model(tmp: Path) -> Path:
    d = tmp / "damaged"
    d.mkdir()
    for name in ("model.pt", "config.json", "var_names.json"):
        (d / name).write_text("not a model")
    return d


PREDICT_ERRORS = {
    "missing model": (None, lambda t: t / "nope", 2, "does not exist"),
    "empty folder": (None, _empty_dir, 1, "not a saved ClusterGAN"),
    "damaged model": (None, _damaged_model, 1, "damaged"),
    "a file as model": (None, _text, 1, "cannot load"),
    "other genes": (_other_genes, None, 1, "genes"),
    "missing input": (lambda t: t / "nope.h5ad", None, 2, "does not exist"),
    "text input": (_text, None, 1, "cannot read"),
    "no raw counts": (_not_counts, None, 1, "raw counts"),
}


@pytest.mark.parametrize("case", list(PREDICT_ERRORS))
def test_predict_errors_leave_nothing(case, fitted, tmp_path, capsys):
    make_input, make_model, status, text = PREDICT_ERRORS[case]
    source = make_input(tmp_path) if make_input else fitted / "cells.h5ad"
    model = make_model(tmp_path) if make_model else fitted / "model"
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out.h5ad"
    _fails(["predict", str(source), "--model", str(model), "-o", str(out)], capsys, status, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_output_that_appears_meanwhile_is_not_replaced(fitted, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out.h5ad"
    annotate = scg.ClusterGAN.annotate

    def someone_else_writes(self, adata, **kwargs):
        out.write_text("theirs")
        return annotate(self, adata, **kwargs)

    monkeypatch.setattr(scg.ClusterGAN, "annotate", someone_else_writes)
    argv = ["predict", str(fitted / "cells.h5ad"), "--model", str(fitted / "model")]
    _fails([*argv, "-o", str(out)], capsys, 1, "appeared while this ran")
    assert out.read_text() == "theirs"
    assert hidden(tmp_path) == []
