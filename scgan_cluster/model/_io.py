"""One directory per saved model: ``model.pt`` (tensors), ``config.json`` and ``var_names.json``.

Tensors are read back with ``torch.load(weights_only=True)``. The config names the model's
class (``kind``) and the file format; a directory of another class or format, a config that is
not the one written here, or missing files get a clear error. Files are written next to their
final name and moved into place, so an interrupted save never leaves a half-written file
under a final name.
"""

from __future__ import annotations

import json
import pickle
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FORMAT", "load_model", "read_model_dir", "write_model_dir"]

FORMAT = 1
"""Version of the directory layout; :func:`read_model_dir` reads this one only."""

FILES = {"weights": "model.pt", "config": "config.json", "var_names": "var_names.json"}


def package_version() -> str:
    """The installed version of the package (``"0+unknown"`` from a source tree)."""
    try:
        return version("scgan-cluster")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def write_model_dir(
    path: str | Path,
    kind: str,
    config: dict[str, Any],
    state: dict[str, Any],
    var_names: np.ndarray,
    *,
    overwrite: bool,
) -> None:
    """Write a model directory.

    Parameters
    ----------
    path
        The directory (created if needed).
    kind
        The class that reads it back.
    config
        JSON-friendly settings and metadata.
    state
        Tensors (and lists / dicts of them) for ``torch.save``.
    var_names
        The features the model takes, in order.
    overwrite
        Replace a model saved there; otherwise a non-empty directory is an error.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a directory.")
    if path.exists() and not overwrite and any(path.iterdir()):
        raise FileExistsError(
            f"{path} exists and is not empty; pass overwrite=True to replace the model there."
        )
    path.mkdir(parents=True, exist_ok=True)
    header = {"kind": kind, "format": FORMAT, "scgan_cluster_version": package_version()}
    texts = {
        FILES["config"]: json.dumps({**header, **config}, indent=1),
        FILES["var_names"]: json.dumps(np.asarray(var_names, dtype=str).tolist()),
    }
    for name, text in texts.items():
        tmp = path / (name + ".part")
        tmp.write_text(text)
        tmp.replace(path / name)
    tmp = path / (FILES["weights"] + ".part")
    torch.save(state, tmp)
    tmp.replace(path / FILES["weights"])


def read_model_dir(
    path: str | Path, kind: str, device: torch.device
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """Read a directory written by :func:`write_model_dir` for class ``kind``.

    Parameters
    ----------
    path
        The directory.
    kind
        The class expected.
    device
        Where tensors are loaded.

    Returns
    -------
    The config, the tensors and the var_names.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory of a saved model.")
    missing = [f for f in FILES.values() if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a saved {kind}: missing {missing}.")
    try:
        config = json.loads((path / FILES["config"]).read_text())
        var_names = json.loads((path / FILES["var_names"]).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} holds a damaged model: {err}. Save the model again.") from None
    if not isinstance(config, dict) or not isinstance(var_names, list):
        raise ValueError(f"{path} holds a damaged model: unexpected config. Save it again.")
    saved_kind = config.get("kind")
    if saved_kind != kind:
        raise ValueError(
            f"{path} holds a saved {saved_kind or 'object of unknown kind'}, not a {kind}; "
            f"load it with {saved_kind}.load()."
            if saved_kind
            else f"{path} holds a model without a 'kind' in config.json, not a {kind}."
        )
    if config.get("format") != FORMAT:
        raise ValueError(
            f"{path} was saved in model format {config.get('format')!r} by scgan_cluster "
            f"{config.get('scgan_cluster_version', '?')}; this version ({package_version()}) "
            f"reads format {FORMAT}. Load it with that version and refit, or refit here."
        )
    try:
        state = torch.load(path / FILES["weights"], map_location=device, weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}/model.pt cannot be read: {err}. Save the model again.") from None
    return config, state, np.asarray(var_names, dtype=str)


def load_model(cls: type, path: str | Path, device: torch.device):
    """``cls`` rebuilt from the directory ``path`` (``cls._from_state(config, state, ...)``)."""
    kind = cls.__name__
    config, state, var_names = read_model_dir(path, kind, device)
    try:
        return cls._from_state(config, state, var_names, device)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"{path} holds a damaged {kind} ({type(err).__name__}: {err}). Save it again."
        ) from None
