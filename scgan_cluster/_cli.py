"""The ``scgan-cluster`` command: ``cluster``, ``predict`` and ``demo``.

Exit status: 0 on success, 2 when the command line is wrong (a missing input file, an output
that exists, a setting the model does not take), 1 when the run fails (an input that is not
AnnData, data without raw counts, a model directory that is not a model, genes that do not
match the model). Errors are one line on stderr, ``scgan-cluster: error: ...``.

Nothing is written under a final name until everything has succeeded: the AnnData is written
to a hidden temporary file and the model to a hidden temporary directory next to their final
names, and both are renamed into place at the end (an existing output replaced with
``--overwrite`` is kept until then).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

PROG = "scgan-cluster"

# options with a flag of their own, which --set may not give
_OWN_OPTIONS = {
    "n_clusters": "-k",
    "flavor": "--flavor",
    "max_iter": "--max-iter",
    "random_state": "--seed",
    "device": "--device",
    "layer": "--layer",
    "key_added": "--key-added",
    "preprocess": "--no-preprocess",
    "copy": None,
}

_USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, KeyError, MemoryError)


class CLIError(Exception):
    """A failure reported as one line on stderr, with exit status ``status``.

    Parameters
    ----------
    message
        What went wrong and what to do.
    status
        2: the command line is wrong; 1: the run failed.
    """

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------- the parser
def _add_output_options(parser: argparse.ArgumentParser, *, model_output: bool) -> None:
    """The options ``cluster`` and ``predict`` share: output, input layer, key, device, talk."""
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.h5ad",
        help="where to write the annotated AnnData (a new file, not the input)",
    )
    parser.add_argument(
        "--layer",
        default=None,
        metavar="LAYER",
        help="read the raw counts from adata.layers[LAYER] instead of adata.X",
    )
    parser.add_argument(
        "--key-added",
        default="clustergan",
        metavar="KEY",
        help="name of the results: obs[KEY] (labels), obs[KEY_confidence], obsm[X_KEY] "
        "(latent), obsm[KEY_proba], obsm[KEY_runs], uns[KEY] (default: clustergan)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps "
        "(default: auto)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing -o file"
        + (" and a model saved in --save-model" if model_output else ""),
    )
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument(
        "-q", "--quiet", action="store_true", help="print errors only: no progress bar, no summary"
    )
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="also print the package's progress messages"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``scgan-cluster`` argument parser with its subcommands.

    Returns
    -------
    The parser.
    """
    from scgan_cluster.recipes import RECIPES

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ClusterGAN for single-cell data: cluster the cells of an .h5ad file, keep "
        "the model, label new cells with it.",
        epilog="examples:\n"
        "  scgan-cluster cluster pbmc.h5ad -o pbmc_clustered.h5ad -k 8 --save-model pbmc_model\n"
        "  scgan-cluster predict new_cells.h5ad --model pbmc_model -o new_labelled.h5ad\n"
        "Run 'scgan-cluster COMMAND --help' for a command's options. Exit status: 0 done, "
        "1 the run failed, 2 a wrong command line.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = sub.add_parser(
        "cluster",
        help="fit ClusterGAN on the cells of an .h5ad file and write their clusters",
        description="Fit ClusterGAN on the raw counts of INPUT.h5ad, write the clustering "
        "into a new file (what scgan_cluster.tl.clustergan writes) and optionally save the "
        "fitted model for 'scgan-cluster predict'. Nothing is written if anything fails.",
    )
    cluster.add_argument(
        "input", metavar="INPUT.h5ad", help="AnnData of raw counts (cells x genes)"
    )
    cluster.add_argument(
        "-k",
        "--n-clusters",
        type=int,
        required=True,
        metavar="K",
        help="number of clusters (at least 2)",
    )
    _add_output_options(cluster, model_output=True)
    cluster.add_argument(
        "--flavor",
        choices=tuple(RECIPES),
        default="lognorm",
        help="the recipe: lognorm (two pooled ensembles; the default), lognorm_long (the previous "
        "default, six times slower), lognorm_fast (lognorm_long trained shorter) or paper (the "
        "paper's one network)",
    )
    cluster.add_argument(
        "--max-iter",
        type=int,
        default=None,
        metavar="N",
        help="generator iterations of every ensemble (default: the recipe's)",
    )
    cluster.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random_state of the fit (default: 0)"
    )
    cluster.add_argument(
        "--save-model",
        default=None,
        metavar="DIR",
        help="also save the fitted model to this directory (new or empty; a model saved "
        "there before is replaced only with --overwrite)",
    )
    cluster.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other model setting, a field of scgan_cluster.recipes.Recipe "
        "(e.g. --set n_runs=3 --set batch_size=32 --set prior=uniform); VALUE is read as a "
        "Python literal, else taken as text; repeatable (the last value of a key wins)",
    )
    cluster.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="train on the values as they are (already scaled to about [0, 1]) instead of "
        "preprocessing raw counts",
    )

    predict = sub.add_parser(
        "predict",
        help="label the cells of an .h5ad file with a saved model",
        description="Load a model saved by 'scgan-cluster cluster --save-model' (or "
        "ClusterGAN.save), label the cells of INPUT.h5ad with it (genes matched by name) and "
        "write them into a new file as 'cluster' writes its own cells. Nothing is written if "
        "anything fails.",
    )
    predict.add_argument(
        "input", metavar="INPUT.h5ad", help="AnnData of raw counts with the model's genes"
    )
    predict.add_argument(
        "--model", required=True, metavar="DIR", help="directory of the saved model"
    )
    _add_output_options(predict, model_output=False)

    demo = sub.add_parser(
        "demo",
        help="cluster scanpy's bundled pbmc68k_reduced, compare with leiden, write a UMAP PNG",
        description="Cluster scanpy's bundled pbmc68k_reduced with ClusterGAN, compare the "
        "result with leiden and write a UMAP PNG.",
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help="generator iterations per replica (default: the recipe's, 4,000)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random_state (default: 0)")
    return parser


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as model settings.

    Parameters
    ----------
    items
        ``KEY=VALUE`` strings; a VALUE is read with :func:`ast.literal_eval` (numbers, tuples,
        lists, ``True``, ``None`` ...) and kept as text when it is not a literal. A key given
        twice takes its last value.

    Returns
    -------
    The settings, by key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CLIError(f"--set takes KEY=VALUE, got {item!r}.", 2)
        if key in _OWN_OPTIONS:
            flag = _OWN_OPTIONS[key]
            raise CLIError(
                f"--set {key}=... is not taken here"
                + (f"; use {flag}." if flag else " by the command line."),
                2,
            )
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = text.strip()
        out[key] = value
    return out


# ---------------------------------------------------------------------- outputs
@dataclass
class _Staged:
    """An output written under a hidden temporary name, renamed to ``target`` at the end."""

    target: Path
    temp: Path
    is_dir: bool
    backup: Path | None = None
    placed: bool = False


def _remove(path: Path, is_dir: bool) -> None:
    with contextlib.suppress(FileNotFoundError):
        if is_dir:
            shutil.rmtree(path)
        else:
            path.unlink()


def _hidden_sibling(target: Path, suffix: str) -> Path:
    """A new hidden name in ``target``'s folder."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.{suffix}")


def _looks_like_model(path: Path) -> bool:
    from scgan_cluster.model._io import FILES

    return all((path / name).is_file() for name in FILES.values())


class _Outputs:
    """Temporary outputs next to their final names; :meth:`commit` renames them all into place.

    Whatever is not committed is removed when the ``with`` block ends, also on an error.
    """

    def __init__(self, overwrite: bool) -> None:
        self.items: list[_Staged] = []
        self.overwrite = overwrite

    def __enter__(self) -> _Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        for item in self.items:
            if not item.placed:
                _remove(item.temp, item.is_dir)

    def file(self, target: Path) -> Path:
        """A new empty file next to ``target`` (``.h5ad``, for :func:`anndata.write_h5ad`)."""
        temp = _hidden_sibling(target, "part.h5ad")
        os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
        self.items.append(_Staged(target, temp, is_dir=False))
        return temp

    def directory(self, target: Path) -> Path:
        """A new empty directory next to ``target``."""
        temp = _hidden_sibling(target, "part")
        temp.mkdir()
        self.items.append(_Staged(target, temp, is_dir=True))
        return temp

    def commit(self) -> None:
        """Rename every output into place: all of them, or (on an error) none."""
        for item in self.items:  # checked at the start; something may have appeared since
            target = item.target
            empty_dir = item.is_dir and target.is_dir() and not any(target.iterdir())
            if os.path.lexists(target) and not (self.overwrite or empty_dir):
                raise CLIError(f"{target} appeared while this ran; nothing was written.")
        try:
            for item in self.items:
                if os.path.lexists(item.target):
                    backup = _hidden_sibling(item.target, "old")
                    item.target.rename(backup)
                    item.backup = backup
                item.temp.rename(item.target)
                item.placed = True
        except OSError:
            for item in reversed(self.items):
                if item.placed:
                    item.target.rename(item.temp)
                    item.placed = False
                if item.backup is not None:
                    item.backup.rename(item.target)
                    item.backup = None
            raise
        for item in self.items:
            if item.backup is not None:
                _remove(item.backup, item.is_dir)


def _check_input(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"input file {path} does not exist.", 2)
    if not p.is_file():
        raise CLIError(f"input {path} is not a file.", 2)
    return p


def _check_output(path: str, inputs: Sequence[Path], overwrite: bool) -> Path:
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise CLIError(f"-o {path} is not a file name.", 2)
    for other in inputs:
        if p.resolve() == other.resolve() or (p.exists() and p.samefile(other)):
            raise CLIError(f"-o {path} is the input file; write the result to another file.", 2)
    if not p.parent.is_dir():
        raise CLIError(f"the folder of -o {path} does not exist; create it first.", 2)
    if p.is_dir():
        raise CLIError(f"-o {path} is a directory; give a file name.", 2)
    if os.path.lexists(p) and not overwrite:
        raise CLIError(f"{path} exists; pass --overwrite to replace it.", 2)
    return p


def _check_model_dir(path: str, others: Sequence[Path], overwrite: bool) -> Path:
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise CLIError(f"--save-model {path} is not a directory name.", 2)
    for other in others:
        if p.resolve() == other.resolve():
            raise CLIError(f"--save-model {path} is also an input or output file.", 2)
    if not p.parent.is_dir():
        raise CLIError(f"the folder of --save-model {path} does not exist; create it first.", 2)
    if os.path.lexists(p) and not p.is_dir():
        raise CLIError(f"--save-model {path} exists and is not a directory.", 2)
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise CLIError(
                f"--save-model {path} is not empty; pass --overwrite to replace the model there.",
                2,
            )
        if not _looks_like_model(p):
            raise CLIError(
                f"--save-model {path} is not empty and holds no saved model; it is not replaced, "
                "even with --overwrite. Choose another directory.",
                2,
            )
    return p


# ---------------------------------------------------------------------- the commands
def _read(path: Path):
    import anndata

    try:
        adata = anndata.read_h5ad(path)
    # h5py and anndata raise many kinds of error for a file that is not AnnData
    except Exception as err:  # noqa: BLE001
        raise CLIError(f"cannot read {path} as an AnnData .h5ad file ({_one_line(err)}).") from None
    if not isinstance(adata, anndata.AnnData):  # pragma: no cover - read_h5ad returns AnnData
        raise CLIError(f"{path} does not hold an AnnData.")
    return adata


def _check_key(key: str) -> None:
    from scgan_cluster.model._clustergan import _check_key as check

    try:
        check(key)
    except TypeError as err:
        raise CLIError(_one_line(err), 2) from None


def _run_cluster(args: argparse.Namespace) -> str:
    from scgan_cluster.model import ClusterGAN

    source = _check_input(args.input)
    out = _check_output(args.output, [source], args.overwrite)
    model_dir = (
        _check_model_dir(args.save_model, [source, out], args.overwrite)
        if args.save_model is not None
        else None
    )
    _check_key(args.key_added)
    settings = parse_settings(args.settings)
    try:
        model = ClusterGAN(
            args.n_clusters,
            flavor=args.flavor,
            max_iter=args.max_iter,
            random_state=args.seed,
            device=args.device,
            **settings,
        )
    except (ValueError, TypeError) as err:
        raise CLIError(_one_line(err), 2) from None
    with _Outputs(args.overwrite) as outputs:
        # the temporaries first: an unwritable folder fails before the fit, not after it
        out_temp = outputs.file(out)
        model_temp = outputs.directory(model_dir) if model_dir is not None else None
        adata = _read(source)
        model.fit(adata, layer=args.layer, preprocess=args.preprocess)
        model._write(
            adata, args.key_added, model.labels_, model.proba_, model.latent_, model.labels_runs_
        )
        adata.write_h5ad(out_temp)
        if model_temp is not None:
            model.save(model_temp)
        outputs.commit()
    n_found = len(adata.obs[args.key_added].cat.categories)
    lines = [
        f"{PROG}: clustered {adata.n_obs} cells into {n_found} clusters "
        f"(obs[{args.key_added!r}]) in {model.train_seconds_:.1f}s of training; wrote {out}"
    ]
    if model_dir is not None:
        lines.append(f"{PROG}: saved the model to {model_dir}")
    return "\n".join(lines)


def _run_predict(args: argparse.Namespace) -> str:
    from scgan_cluster._validation import resolve_device
    from scgan_cluster.model import ClusterGAN

    source = _check_input(args.input)
    out = _check_output(args.output, [source], args.overwrite)
    _check_key(args.key_added)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        raise CLIError(_one_line(err), 2) from None
    model_dir = Path(args.model)
    if not model_dir.exists():
        raise CLIError(f"model directory {model_dir} does not exist.", 2)
    with _Outputs(args.overwrite) as outputs:
        out_temp = outputs.file(out)
        try:
            model = ClusterGAN.load(model_dir, device=device)
        except _USER_ERRORS as err:
            raise CLIError(f"cannot load a model from {model_dir}: {_one_line(err)}") from None
        adata = _read(source)
        model.annotate(adata, layer=args.layer, key_added=args.key_added)
        adata.write_h5ad(out_temp)
        outputs.commit()
    n_found = len(adata.obs[args.key_added].cat.categories)
    return (
        f"{PROG}: labelled {adata.n_obs} cells with the model in {model_dir}: {n_found} "
        f"clusters (obs[{args.key_added!r}]); wrote {out}"
    )


def _run_demo(args: argparse.Namespace) -> str:
    from scgan_cluster._demo import run_demo

    run_demo(args.out, max_iter=args.max_iter, random_state=args.seed)
    return ""


_COMMANDS = {"cluster": _run_cluster, "predict": _run_predict, "demo": _run_demo}


@contextlib.contextmanager
def _talk(args: argparse.Namespace) -> Iterator[None]:
    """Apply ``--quiet`` / ``--verbose`` to the package settings for the run, then restore them."""
    from scgan_cluster._settings import settings

    old = (settings.progress_bar, settings.verbosity)
    if getattr(args, "quiet", False):
        settings.progress_bar, settings.verbosity = False, "error"
    elif getattr(args, "verbose", False):
        settings.verbosity = "info"
    try:
        yield
    finally:
        settings.progress_bar, settings.verbosity = old


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = f"missing {err.args[0]!r}"
    return text or type(err).__name__


# the package's messages name Python arguments; on the command line they are options
_OPTION_WORDS = (
    ("layer= ", "--layer "),
    ("layer=", "--layer"),
    ("preprocess=False", "--no-preprocess"),
    ("key_added", "--key-added"),
    ("overwrite=True", "--overwrite"),
    ("device='auto'", "--device auto"),
)


def _error(message: str) -> None:
    for word, option in _OPTION_WORDS:
        message = message.replace(word, option)
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``scgan-cluster`` command.

    Parameters
    ----------
    argv
        The arguments after the program name (``None``: ``sys.argv[1:]``).

    Returns
    -------
    The exit status: 0 on success, 2 for a wrong command line, 1 for a failed run.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage error
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        with _talk(args):
            summary = _COMMANDS[args.command](args)
    except CLIError as err:
        _error(str(err))
        return err.status
    except _USER_ERRORS as err:
        _error(_one_line(err))
        return 1
    except KeyboardInterrupt:
        _error("interrupted; nothing was written.")
        return 130
    if summary and not getattr(args, "quiet", False):
        print(summary)
    return 0
