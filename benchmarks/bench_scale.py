"""Cost in the number of cells: preprocess, a fixed number of training iterations, embedding.

Generated count matrices of n cells x 720 genes (negative-binomial-like counts, about 40% zeros as
in 10x_73k after gene selection), built in chunks directly as CSR so that no dense n x 720 matrix
ever exists. Each size runs in a fresh subprocess so that its peak RSS is its own. Per size:

* ``preprocess``: :func:`scgan_cluster.pp.preprocess` (the paper's transform; stays sparse);
* ``train``: ``GANEnsemble(max_iter=--iters, assign="argmax").fit`` training time
  (``train_seconds_``), minibatches densified from the CSR matrix batch by batch;
* ``embed``: ``get_latent_representation`` of all cells (streamed in chunks of 4,096).

Training cost should be flat in n, embedding linear.

    python benchmarks/bench_scale.py --sizes 10000 100000 1000000 --iters 200

writes ``benchmarks/results/bench_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _protocol import RESULTS, machine, write_json

N_GENES = 720


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def generate_counts(n: int, seed: int = 0, chunk: int = 50_000) -> sp.csr_matrix:
    """Counts of ``n`` cells in 8 groups, about 40% zeros, assembled chunk by chunk as CSR."""
    rng = np.random.default_rng(seed)
    means = rng.gamma(1.1, 1.5, size=(8, N_GENES)).astype(np.float32)
    parts = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        groups = rng.integers(0, 8, size=m)
        depth = rng.lognormal(0.0, 0.3, size=(m, 1)).astype(np.float32)
        counts = rng.poisson(means[groups] * depth).astype(np.float32)
        parts.append(sp.csr_matrix(counts))
        del counts
    return sp.vstack(parts, format="csr")


def one_size(n: int, iters: int) -> dict:
    import torch
    from anndata import AnnData

    import scgan_cluster as scg
    from scgan_cluster.model import GANEnsemble

    scg.settings.progress_bar = False
    start = time.perf_counter()
    x = generate_counts(n)
    gen_s = time.perf_counter() - start
    zeros = 1.0 - x.nnz / (x.shape[0] * x.shape[1])
    adata = AnnData(x)
    adata.var_names = [f"g{j}" for j in range(N_GENES)]
    start = time.perf_counter()
    scg.pp.preprocess(adata, N_GENES)
    pre_s = time.perf_counter() - start
    model = GANEnsemble(8, max_iter=iters, assign="argmax", random_state=0, device="cpu")
    start = time.perf_counter()
    model.fit(adata)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    latent = model.get_latent_representation(adata)
    embed_s = time.perf_counter() - start
    assert latent.shape == (n, 30)
    return {
        "n_cells": n,
        "n_genes": N_GENES,
        "nnz": int(x.nnz),
        "zero_fraction": round(zeros, 3),
        "generate_seconds": round(gen_s, 2),
        "preprocess_seconds": round(pre_s, 2),
        "train_seconds": round(model.train_seconds_, 2),
        "train_ms_per_it": round(model.train_seconds_ / iters * 1e3, 2),
        "fit_seconds_incl_final_encoding": round(fit_s, 2),
        "embed_seconds": round(embed_s, 2),
        "embed_us_per_cell": round(embed_s / n * 1e6, 3),
        "peak_rss_mb": _peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_scale.json")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.iters)))
        return
    rows = []
    for n in args.sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--iters", str(args.iters)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            rows.append({"n_cells": n, "failed": proc.stderr.strip().splitlines()[-1:]})
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
    write_json(
        args.out,
        {
            "script": "benchmarks/bench_scale.py",
            "machine": machine(),
            "iters": args.iters,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
