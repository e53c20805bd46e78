"""Atlas scale: both recipes on simulated counts that stay on disk, read through dask.

Simulated counts of n cells x 20,000 genes in K = 10 groups: negative binomial (dispersion 2)
around per-gene means (log-normal, about 5% non-zero in all), each group with 200 marker genes
at 8x, cells with log-normal library sizes. The matrix is written chunk by chunk into a sparse
``.h5ad`` (never dense, never whole in memory). Each size and recipe then runs in a fresh
subprocess, so that its peak RSS is its own:

* ``scgan_cluster.read_dask(path, chunk_size=--chunk)``: the matrix stays on disk;
* ``ClusterGAN(K, flavor=recipe, max_iter=--iters).fit(adata)``: wall seconds per phase
  (``fit_seconds_``: each ensemble's preprocessing, training and assignment, then pooling);
* ARI and NMI of the labels against the simulated groups; peak RSS of the process
  (``VmHWM``) next to the matrix's size as CSR in memory and on disk.

Training costs the same at every n (the budget is ``--iters`` generator iterations per
ensemble, reduced from the recipes' own and stated in the results); every pass over the cells
grows with n.

    python benchmarks/bench_scale.py --sizes 10000 100000 1000000 --iters 200

writes ``benchmarks/results/bench_scale.json`` and ``bench_scale.md``. The simulated files go to
``--workdir`` (a temporary folder by default, removed at the end); with ``--keep-files`` they
stay there and a later run with the same sizes, genes and seed reads them instead of simulating
again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _protocol import RESULTS, machine, write_json

N_GENES = 20_000
N_GROUPS = 10
N_MARKERS = 200
FOLD = 8.0
DISPERSION = 2.0
RECIPES = ("lognorm", "paper")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


RSS_EVERY = 0.2
"""Seconds between two samples of :class:`RssTrace` (a test of short fits samples faster)."""


class RssTrace:
    """Resident memory of this process sampled every ``every`` seconds in a thread."""

    def __init__(self, every: float | None = None):
        every = RSS_EVERY if every is None else every
        import threading

        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), _status_mb("VmRSS")))
            self._stop.wait(self.every)

    def __enter__(self) -> RssTrace:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def phase_peaks(self, start: float, phases: dict[str, float]) -> dict[str, float]:
        """Peak sampled RSS (MB) within each phase, the phases laid end to end from ``start``.

        ``None`` for a phase too short to hold a sample.
        """
        peaks, t0 = {}, start
        for name, seconds in phases.items():
            inside = [mb for t, mb in self.samples if t0 <= t < t0 + seconds]
            peaks[name] = max(inside) if inside else None
            t0 += seconds
        return peaks


def negative_binomial_csr(
    rng: np.random.Generator, mean: np.ndarray, theta: float
) -> sp.csr_matrix:
    """Negative binomial counts (``mean``, dispersion ``theta``) as CSR, by inverting the CDF.

    One uniform per entry decides zero or not (``P(0) = (theta / (theta + mean))^theta``); only
    the non-zero entries (a few percent) walk the CDF further, so a mostly-zero matrix costs
    little more than its uniforms.
    """
    mean = np.asarray(mean, dtype=np.float32)
    u = rng.random(mean.shape, dtype=np.float32)
    r = theta / (theta + mean)
    p0 = r * r if theta == 2 else r**theta
    rows, cols = np.nonzero(u >= p0)
    m = mean[rows, cols].astype(np.float64)  # the walk along the CDF in float64
    u, ratio = u[rows, cols].astype(np.float64), m / (theta + m)
    pk = (theta / (theta + m)) ** theta
    cdf = pk.copy()
    k = np.zeros(len(rows))
    active = np.arange(len(rows))
    while active.size:
        pk[active] *= (k[active] + theta) / (k[active] + 1) * ratio[active]
        k[active] += 1
        cdf[active] += pk[active]
        # stop where the CDF reached u (or stopped growing in floating point)
        active = active[(cdf[active] < u[active]) & (pk[active] > 1e-300)]
    return sp.csr_matrix((k.astype(np.float32), (rows, cols)), shape=mean.shape)


def simulate(path: Path, n: int, n_genes: int = N_GENES, seed: int = 0, chunk: int = 1_000) -> dict:
    """Write ``n`` simulated cells to a sparse ``.h5ad`` at ``path``; returns its description."""
    import h5py
    from anndata.io import sparse_dataset, write_elem

    rng = np.random.default_rng(seed)
    means = np.exp(rng.normal(-3.9, 1.6, size=n_genes)).astype(np.float32)
    group_means = np.tile(means, (N_GROUPS, 1))
    for k in range(N_GROUPS):
        markers = rng.choice(n_genes, N_MARKERS, replace=False)
        group_means[k, markers] *= FOLD
    groups = rng.integers(0, N_GROUPS, size=n)
    obs = pd.DataFrame(
        {"group": pd.Categorical(groups.astype(str))}, index=[f"cell{i}" for i in range(n)]
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    nnz = 0
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        for name in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, name, {})
        for start in range(0, n, chunk):
            g = groups[start : start + chunk]
            depth = rng.lognormal(0.0, 0.4, size=(len(g), 1)).astype(np.float32)
            mean = group_means[g] * depth
            block = negative_binomial_csr(rng, mean, DISPERSION)
            nnz += block.nnz
            if start == 0:
                write_elem(f, "X", block)  # written resizable, so later chunks append
            else:
                sparse_dataset(f["X"]).append(block)
    return {
        "n_cells": n,
        "n_genes": n_genes,
        "nnz": int(nnz),
        "nonzero_fraction": round(nnz / (n * n_genes), 4),
        "csr_bytes": int(nnz * 8 + (n + 1) * 8),
        "file_bytes": path.stat().st_size,
    }


def one_run(path: Path, recipe: str, iters: int, chunk: int, seed: int) -> dict:
    """Fit one recipe on the file at ``path``, read through dask (in this process)."""
    import torch

    import scgan_cluster as scg
    from scgan_cluster.metrics import cluster_metrics

    scg.settings.progress_bar = False
    start = time.perf_counter()
    adata = scg.read_dask(path, chunk_size=chunk)
    open_s = time.perf_counter() - start
    model = scg.ClusterGAN(N_GROUPS, flavor=recipe, max_iter=iters, random_state=seed)
    with RssTrace() as trace:
        start = time.perf_counter()
        model.fit(adata)
        fit_s = time.perf_counter() - start
    truth = adata.obs["group"].cat.codes.to_numpy()
    m = cluster_metrics(truth, model.labels_)
    return {
        "recipe": recipe,
        "open_seconds": round(open_s, 2),
        "fit_seconds": round(fit_s, 2),
        "phase_seconds": {k: round(v, 2) for k, v in model.fit_seconds_.items()},
        "ari": round(float(m["ari"]), 4),
        "nmi": round(float(m["nmi"]), 4),
        "peak_rss_mb": _peak_rss_mb(),
        # phases laid end to end from the fit's start (their sum is a little under fit_seconds)
        "phase_peak_rss_mb": trace.phase_peaks(start, model.fit_seconds_),
        "torch_threads": torch.get_num_threads(),
    }


def markdown(result: dict) -> str:
    lines = [
        "# Atlas scale (`benchmarks/bench_scale.py`)",
        "",
        f"Simulated counts, {N_GENES:,} genes, {N_GROUPS} groups, read from a sparse .h5ad "
        f"through dask in chunks of {result['chunk']:,} cells; every ensemble trained "
        f"{result['iters']} generator iterations (reduced from the recipes' budgets: training "
        "costs the same at every n). Peak RSS is the whole process's. Machine: "
        f"{result['machine']['cpu']} ({result['machine']['cpu_count']} cores), torch threads: {result['machine']['torch_threads']}, "
        f"torch {result['machine']['torch']}. Command: `{result['command']}`.",
        "",
        "Phases: wall seconds (and, where sampled, the peak RSS in GB within the phase).",
        "",
        "| cells | non-zero | CSR in memory (GB) | recipe | fit (s) | phases (s) | peak RSS (GB) "
        "| ARI | NMI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        data = row["data"]
        for run in row["runs"]:
            if "failed" in run:
                lines.append(
                    f"| {data['n_cells']:,} | | | {run['recipe']} | failed: {run['failed']} "
                    "| | | | |"
                )
                continue
            peaks = run.get("phase_peak_rss_mb", {})
            phases = "; ".join(
                f"{k} {v:.0f}" + (f" ({peaks[k] / 1024:.1f})" if peaks.get(k) else "")
                for k, v in run["phase_seconds"].items()
            )
            lines.append(
                f"| {data['n_cells']:,} | {data['nonzero_fraction']:.1%} "
                f"| {data['csr_bytes'] / 1e9:.2f} | {run['recipe']} | {run['fit_seconds']:.0f} "
                f"| {phases} | {run['peak_rss_mb'] / 1024:.2f} | {run['ari']:.3f} "
                f"| {run['nmi']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=10_000, help="cells per dask chunk")
    parser.add_argument("--genes", type=int, default=N_GENES, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the files are written")
    parser.add_argument(
        "--keep-files",
        action="store_true",
        help="keep the simulated files in --workdir and reuse them on a later run",
    )
    parser.add_argument("--one", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.one is not None:
        path, recipe = args.one
        print(json.dumps(one_run(Path(path), recipe, args.iters, args.chunk, args.seed)))
        return None
    given = list(argv if argv is not None else sys.argv[1:])
    if args.keep_files and args.workdir is None:
        parser.error("--keep-files needs --workdir.")
    for flag in ("--workdir", "--out"):  # local paths stay out of the result files
        while flag in given:
            del given[given.index(flag) : given.index(flag) + 2]
    given = [g for g in given if g != "--keep-files"]
    command = "python benchmarks/bench_scale.py " + " ".join(given)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for n in args.sizes:
            folder = args.workdir if args.keep_files else Path(work)
            path = folder / f"cells_{n}_genes_{args.genes}_seed_{args.seed}.h5ad"
            described = path.with_suffix(".json")
            if args.keep_files and path.exists() and described.exists():
                data = json.loads(described.read_text())  # simulated by an earlier run
            else:
                start = time.perf_counter()
                data = simulate(path, n, args.genes, seed=args.seed)
                data["simulate_seconds"] = round(time.perf_counter() - start, 1)
                if args.keep_files:
                    described.write_text(json.dumps(data))
            print(data, flush=True)
            runs = []
            for recipe in args.recipes.split(","):
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", str(path), recipe]
                    + ["--iters", str(args.iters), "--chunk", str(args.chunk)]
                    + ["--seed", str(args.seed)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    print(proc.stderr[-3000:])
                    last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
                    runs.append({"recipe": recipe, "failed": last[0]})
                    continue
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                print(run, flush=True)
                runs.append(run)
            rows.append({"data": data, "runs": runs})
            if not args.keep_files:
                path.unlink()
            result = {
                "script": "benchmarks/bench_scale.py",
                "command": command,
                "machine": machine(),
                "iters": args.iters,
                "chunk": args.chunk,
                "rows": rows,
            }
            # written after every size, so that the sizes done survive a stop
            args.out.mkdir(parents=True, exist_ok=True)
            write_json(args.out / "bench_scale.json", result)
            (args.out / "bench_scale.md").write_text(markdown(result))
    return result


if __name__ == "__main__":
    main()
