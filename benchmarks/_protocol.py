"""The paper's evaluation protocol, shared by every benchmark script.

Section 6.3 of the paper: split each dataset into train / validation / test, train on train
only, run R times, keep the run with the best validation purity and report its test metrics.
The official 10x_73k code permutes the 73,233 cells with seed 0 and takes 60,000 for training,
the last 5,000 of which are the validation split, and 13,233 for test; :func:`paper_split`
scales those proportions to any n. We report both the paper's best-of-R and the mean +- sd
over the R runs, on the test split.

Every method is a function ``method(data, split, n_clusters, seed) -> MethodResult`` that
returns labels for the validation and test cells; the harness scores and aggregates.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scgan_cluster.metrics import cluster_metrics, nmi

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_DATA = Path(os.environ.get("SCGAN_DATA_DIR", HERE.parents[1] / "shared" / "data"))

# official 10x_73k split: 60,000 train of which the last 5,000 validate; 13,233 test
PAPER_N, PAPER_TRAIN, PAPER_VAL = 73_233, 55_000, 5_000
METRIC_KEYS = ("purity", "acc", "nmi", "ari")


def paper_split(
    n: int,
    *,
    seed: int = 0,
    train_fraction: float = PAPER_TRAIN / PAPER_N,
    val_fraction: float = PAPER_VAL / PAPER_N,
) -> dict[str, np.ndarray]:
    """Seeded train / validation / test indices in the paper's proportions.

    For n = 73,233 the sizes are exactly 55,000 / 5,000 / 13,233 (the official code's).
    """
    if n < 3:
        raise ValueError(f"need at least 3 samples to split, got {n}.")
    perm = np.random.RandomState(seed).permutation(n)
    n_train = max(1, int(round(n * train_fraction)))
    n_val = max(1, int(round(n * val_fraction)))
    if n_train + n_val >= n:
        raise ValueError(f"train + validation fractions leave no test samples for n={n}.")
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


def score(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Purity, Hungarian ACC, NMI (arithmetic mean), NMI (geometric mean, the 2018 code's) and ARI."""
    m = cluster_metrics(truth, labels)
    m["nmi_geometric"] = nmi(truth, labels, average_method="geometric")
    return {k: round(float(v), 4) for k, v in m.items()}


@dataclass
class MethodResult:
    """What a method returns for one run: labels of the validation and test samples.

    A method too costly to label every held-out sample (e.g. backprop decoding) may label a
    subset: ``val_index`` / ``test_index`` are then the positions, within ``split["val"]`` /
    ``split["test"]``, of the samples its labels belong to (``None``: all of them, in order).
    ``train_labels`` (optional): the labels it gives the training samples, all of them in order;
    scored as ``"train"``, a larger (and so less noisy) set than validation for comparing
    settings (labels are used only to score, as on validation).
    """

    val_labels: np.ndarray
    test_labels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    val_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    train_labels: np.ndarray | None = None


Method = Callable[[Any, dict[str, np.ndarray], int, int], MethodResult]


def run_method(
    name: str,
    method: Method,
    data: Any,
    truth: np.ndarray,
    split: dict[str, np.ndarray],
    n_clusters: int,
    seeds: Sequence[int],
    *,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run ``method`` once per seed, score each run on validation and test, aggregate."""
    runs = []
    for seed in seeds:
        start = time.perf_counter()
        result = method(data, split, n_clusters, seed)
        seconds = time.perf_counter() - start
        val_truth, test_truth = truth[split["val"]], truth[split["test"]]
        if result.val_index is not None:
            val_truth = val_truth[result.val_index]
        if result.test_index is not None:
            test_truth = test_truth[result.test_index]
        run = {
            "seed": int(seed),
            "seconds": round(seconds, 2),
            "val": score(val_truth, result.val_labels),
            "test": score(test_truth, result.test_labels),
            "n_scored": {"val": len(val_truth), "test": len(test_truth)},
            **result.info,
        }
        if result.train_labels is not None:
            run["train"] = score(truth[split["train"]], result.train_labels)
        runs.append(run)
        log(
            f"  {name:<28} seed {seed}: test "
            + " ".join(f"{k} {run['test'][k]:.3f}" for k in METRIC_KEYS)
            + f"  ({seconds:.1f} s)"
        )
    return {"method": name, **aggregate(runs)}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's best-of-R (by validation purity) and the mean +- sd over runs, on test."""
    best = max(runs, key=lambda r: r["val"]["purity"])
    keys = list(runs[0]["test"])
    test = np.array([[r["test"][k] for k in keys] for r in runs])
    return {
        "n_runs": len(runs),
        "best_by_val_purity": {"seed": best["seed"], **best["test"]},
        "mean": dict(zip(keys, np.round(test.mean(0), 4).tolist(), strict=True)),
        "sd": dict(
            zip(
                keys, np.round(test.std(0, ddof=1 if len(runs) > 1 else 0), 4).tolist(), strict=True
            )
        ),
        "seconds_per_run": round(float(np.mean([r["seconds"] for r in runs])), 2),
        "runs": runs,
    }


def machine() -> dict[str, Any]:
    """The machine and software a result was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_version": torch.version.cuda if torch.cuda.is_available() else None,
    }
    return info


def hardware(info: dict[str, Any], device: str = "cpu") -> str:
    """The processor of a :func:`machine` record, led by the card and its CUDA version where the
    run's ``device`` was a GPU."""
    if device != "cpu" and info.get("cuda"):
        return f"{info['cuda']} (CUDA {info['cuda_version']}), {info['cpu']}"
    return info["cpu"]


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    print(f"wrote {path}")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def markdown_table(
    results: list[dict[str, Any]], *, keys: Sequence[str] = ("acc", "nmi", "ari", "purity")
) -> str:
    """One row per method: best-of-R by validation purity, and mean +- sd, on test."""
    head = "| method | runs | " + " | ".join(f"{k.upper()} best" for k in keys)
    head += " | " + " | ".join(f"{k.upper()} mean +- sd" for k in keys) + " | s/run |"
    lines = [head, "|" + "---|" * (3 + 2 * len(keys))]
    for r in results:
        best = " | ".join(f"{r['best_by_val_purity'][k]:.2f}" for k in keys)
        mean = " | ".join(f"{r['mean'][k]:.2f} +- {r['sd'][k]:.2f}" for k in keys)
        lines.append(
            f"| {r['method']} | {r['n_runs']} | {best} | {mean} | {r['seconds_per_run']:.0f} |"
        )
    return "\n".join(lines)
