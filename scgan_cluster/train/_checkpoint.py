"""Checkpoints of a training run: everything the loop needs to continue exactly where it stopped.

A checkpoint is written between two blocks of random draws (see
:class:`~scgan_cluster.train._loop.DrawStream`), where no draw is pending. It holds the
networks' weights, the optimisers' state (:meth:`~scgan_cluster.train._steps.TrainStep.state_dict`),
the random generators' states and each minibatch sampler's permutation, the prior's cluster
proportions, the loss accumulators since the last history record, the history, the iteration and
the elapsed seconds. Continuing from it on the same device draws the same numbers and takes the
same steps as the run that wrote it, so the resumed run ends with the same weights.

A checkpoint also records what it belongs to (:func:`run_signature`: the settings, the data's
size and a checksum of some of its rows, the device, the step implementation). A run refuses a
checkpoint of another run instead of continuing someone else's training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FORMAT", "run_signature", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint's layout; a checkpoint of another version is refused."""


@torch.no_grad()
def run_signature(
    config: dict[str, Any],
    source: Any,
    n_runs: int,
    block: int,
    step: str,
    precision: str,
) -> dict[str, Any]:
    """What identifies a run: a checkpoint continues only a run with the same signature.

    ``data`` is the float64 sum of the first 1,024 rows of the source (cheap, and different for
    other data of the same shape), rounded to 10 significant digits.
    """
    rows = source.take(torch.arange(min(1024, source.n_obs)))
    return {
        "format": CHECKPOINT_FORMAT,
        "config": config,
        "n_obs": int(source.n_obs),
        "sample_shape": list(rows.shape[1:]),
        "data": float(f"{rows.double().sum().item():.10g}"),
        "n_runs": int(n_runs),
        "block": int(block),
        "device": str(source.device),
        "step": step,
        "precision": precision,
    }


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a run stopped while writing keeps the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, signature: dict[str, Any]) -> dict[str, Any]:
    """Read the checkpoint at ``path`` (tensors only, ``weights_only=True``) for the run of ``signature``.

    Raises
    ------
    ValueError
        The file is not a checkpoint, or it belongs to another run (the message names what
        differs and what to do).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(
            f"{path} is not a readable ClusterGAN checkpoint ({type(err).__name__}: {err}). "
            "Delete it to train from the start."
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("signature"), dict):
        raise ValueError(
            f"{path} is not a ClusterGAN checkpoint. Delete it to train from the start."
        )
    theirs = state["signature"]
    differs = sorted(k for k in set(signature) | set(theirs) if signature.get(k) != theirs.get(k))
    if differs:
        detail = "; ".join(
            f"{k}: {theirs.get(k)!r} there, {signature.get(k)!r} here" for k in differs
        )
        raise ValueError(
            f"{path} is the checkpoint of another run ({detail}). Pass another checkpoint path, "
            "or delete the file to train from the start."
        )
    return state
