"""Table 1 of the ClusterGAN paper: ClusterGAN and the baselines on every staged dataset.

The paper's protocol (Section 6.3, ``_protocol.py``): a seeded train / validation / test split,
R runs per method, the run with the best validation purity reported on test (the paper's number)
next to the mean +- sd over the R runs. ClusterGAN clusters with KMeans on its encoder latent
(fit on train, nearest centre for validation / test). The baselines (``_baselines.py``) run on
the same splits: KMeans, agglomerative (ward), NMF, spectral clustering, PCA+GMM, VAE+GMM,
InfoGAN, "GAN with bp" (Algorithm 1) and "GAN with Disc. phi".

    python benchmarks/paper_table1.py --datasets synthetic,pendigits,mnist,coil20   # CPU budget
    python benchmarks/paper_table1.py --paper                                      # the full protocol
    python benchmarks/paper_table1.py --time                                       # s / iteration only
    python benchmarks/paper_table1.py --report                                     # only the report

``--paper`` is the paper's protocol: 100,000 generator iterations, 5 runs, 5,000 Adam steps of
Algorithm 1 on every validation and test point. Without it, each dataset gets the CPU budget of
:data:`CPU_BUDGETS` (measured with ``--time`` on a 2-core CPU), and every output says which.
Writes ``results/paper_table1_<dataset>.json`` and (from every such file present)
``results/paper_table1.md``.

``--curve-every N`` scores ClusterGAN's runs on validation and test every N generator iterations
and adds a convergence table to the report.

``--ensemble`` trains the R runs of each GAN method (ClusterGAN, InfoGAN, the GAN of "GAN with
bp" / "Disc. phi") together as one vectorized ensemble (MLP or grouped convolutions; replica r
follows the random stream of the separate run with seed r), and
``--checkpoint-dir DIR`` keeps each GAN training's state there (ClusterGAN's, InfoGAN's and
the baseline GAN's), so that rerunning the same command after a stop continues where it stopped:

    python benchmarks/paper_table1.py --paper --datasets mnist --methods ClusterGAN \
        --ensemble --device cuda --checkpoint-dir checkpoints/
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _baselines import (
    METHOD_KIND,
    BenchData,
    Budget,
    architecture_options,
    fit_clustergan,
    make_methods,
    train_gan,
    train_vae,
)
from _data import DATASETS, load
from _protocol import (
    DEFAULT_DATA,
    RESULTS,
    hardware,
    machine,
    paper_split,
    run_method,
    write_json,
)

import scgan_cluster as scg
from scgan_cluster.nn._registry import check_options
from scgan_cluster.train import backprop_decode

# The paper's Table 1 (ACC = purity in the paper, NMI, ARI), best validation purity of 5 runs.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float, float]]] = {
    "synthetic": {
        "ClusterGAN": (0.99, 0.99, 0.99),
        "InfoGAN": (0.88, 0.75, 0.74),
        "GAN with bp": (0.95, 0.85, 0.88),
        "GAN with Disc. phi": (0.99, 0.98, 0.98),
        "AGGLO. (ward)": (0.99, 0.99, 0.99),
        "NMF": (0.98, 0.96, 0.97),
        "SC (rbf)": (0.99, 0.98, 0.98),
    },
    "mnist": {
        "ClusterGAN": (0.95, 0.89, 0.89),
        "InfoGAN": (0.89, 0.86, 0.82),
        "GAN with bp": (0.95, 0.90, 0.89),
        "GAN with Disc. phi": (0.70, 0.62, 0.52),
        "DCN": (0.83, 0.81, 0.75),
        "AGGLO. (ward)": (0.64, 0.65, 0.46),
        "NMF": (0.56, 0.45, 0.36),
    },
    "fashion10": {
        "ClusterGAN": (0.63, 0.64, 0.50),
        "InfoGAN": (0.61, 0.59, 0.44),
        "GAN with bp": (0.56, 0.53, 0.37),
        "GAN with Disc. phi": (0.43, 0.37, 0.23),
        "AGGLO. (ward)": (0.55, 0.57, 0.37),
        "NMF": (0.50, 0.51, 0.34),
    },
    "fashion5": {
        "ClusterGAN": (0.73, 0.59, 0.48),
        "InfoGAN": (0.71, 0.56, 0.45),
        "GAN with bp": (0.73, 0.54, 0.45),
        "GAN with Disc. phi": (0.67, 0.49, 0.40),
        "AGGLO. (ward)": (0.66, 0.52, 0.36),
        "NMF": (0.67, 0.48, 0.40),
    },
    "10x_73k": {
        "ClusterGAN": (0.81, 0.73, 0.67),
        "InfoGAN": (0.62, 0.58, 0.43),
        "GAN with bp": (0.65, 0.59, 0.45),
        "GAN with Disc. phi": (0.33, 0.17, 0.07),
        "AGGLO. (ward)": (0.63, 0.58, 0.40),
        "NMF": (0.71, 0.69, 0.53),
        "SC (rbf)": (0.40, 0.29, 0.18),
    },
    "pendigits": {
        "ClusterGAN": (0.77, 0.73, 0.65),
        "InfoGAN": (0.72, 0.73, 0.61),
        "GAN with bp": (0.76, 0.71, 0.63),
        "GAN with Disc. phi": (0.65, 0.57, 0.45),
        "DCN": (0.72, 0.69, 0.56),
        "AGGLO. (ward)": (0.70, 0.69, 0.52),
        "NMF": (0.67, 0.58, 0.45),
        "SC (rbf)": (0.70, 0.69, 0.52),
    },
}
# The course project's Table 1 (../shared/seeds/002_...): Hungarian-free "ACC" = purity, NMI, ARI.
COURSE_TABLE1 = {
    "mnist": {"PCA+GMM": (0.67, 0.66, 0.53), "VAE+GMM": (0.88, 0.79, 0.75)},
    "fashion10": {"PCA+GMM": (0.55, 0.55, 0.37), "VAE+GMM": (0.60, 0.58, 0.42)},
}

# The authors' code (github.com/sudiptodip15/ClusterGAN, README): mean of 10 runs of ClusterGAN,
# ACC (purity) / NMI / ARI.
OFFICIAL_MEAN: dict[str, tuple[float, float, float]] = {
    "mnist": (0.9097, 0.8544, 0.8290),
    "fashion10": (0.6119, 0.6157, 0.4617),
    "fashion5": (0.7218, 0.6163, 0.5035),
    "10x_73k": (0.8172, 0.7272, 0.6786),
    "pendigits": (0.7638, 0.7343, 0.6336),
}

PAPER_BUDGET = Budget(
    max_iter=100_000, bp_steps=5000, bp_max_points=None, vae_iter=20_000, vae_batch=1024
)
PAPER_RUNS = 5
# CPU budgets (2 shared cores): from the seconds per iteration measured with --time; see the
# README section of results/paper_table1.md for the numbers behind them
CPU_BUDGETS: dict[str, tuple[int, Budget]] = {
    "synthetic": (2, Budget(max_iter=1000, bp_steps=300, bp_max_points=300, vae_iter=1000)),
    "pendigits": (2, Budget(max_iter=1000, bp_steps=300, bp_max_points=300, vae_iter=1000)),
    "mnist": (
        1,
        Budget(max_iter=100, bp_steps=100, bp_max_points=100, vae_iter=200, vae_batch=256),
    ),
    "fashion": (
        1,
        Budget(max_iter=100, bp_steps=100, bp_max_points=100, vae_iter=200, vae_batch=256),
    ),
    "coil20": (
        1,
        Budget(max_iter=60, bp_steps=30, bp_max_points=50, vae_iter=100, vae_batch=256),
    ),
    "10x_73k": (1, Budget(max_iter=1000, bp_steps=200, bp_max_points=200, vae_iter=500)),
}


def measure(data: BenchData, n_iter: int = 40, device: str = "cpu") -> dict[str, float]:
    """Seconds per generator iteration of each trained model, and per step of Algorithm 1."""
    split = paper_split(len(data.x), seed=0)
    x_train = data.x[split["train"]]
    out: dict[str, float] = {}

    def per_iter(fn, n):
        # (seconds of n + 1 iterations - seconds of 1) / n: fixed costs cancel; ``fn`` returns
        # the seconds spent in its training loop (not the set-up or the final KMeans)
        return round((fn(n + 1) - fn(1)) / n, 4)

    def wall(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    out["ClusterGAN"] = per_iter(
        lambda n: fit_clustergan(data, x_train, max_iter=n, seed=0, device=device).train_seconds_,
        n_iter,
    )
    for kind, name in (("gan", "GAN"), ("infogan", "InfoGAN")):
        out[name] = per_iter(
            lambda n, kind=kind: (
                train_gan(data, x_train, kind, max_iter=n, seed=0, device=device).seconds
            ),
            n_iter,
        )
    out["VAE (batch 1024)"] = per_iter(
        lambda n: train_vae(
            data, x_train, latent_dim=10, n_iter=n, batch_size=1024, seed=0, device=device
        )[1],
        n_iter,
    )
    gan = train_gan(data, x_train, "gan", max_iter=1, seed=0, device=device)
    x = torch.from_numpy(data.x[split["test"]][:100])
    out["bp step (100 points x K restarts)"] = per_iter(
        lambda n: wall(
            lambda: backprop_decode(
                gan.generator, x, data.n_clusters, n_latent=data.n_latent, n_steps=n
            )
        ),
        n_iter,
    )
    return out


def _seconds_per_run(row: dict) -> float:
    """A method's seconds per run: the calls' wall time, or the training's (``train_seconds``)
    where that is larger: a run resumed from its checkpoint spends little wall time in this
    call, and its ``train_seconds`` count the training from its start."""
    runs = row["runs"]
    wall = float(row["seconds_per_run"])
    if all("train_seconds" in r for r in runs):
        return max(wall, float(np.mean([r["train_seconds"] for r in runs])))
    return wall


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _title(res: dict[str, Any]) -> str:
    """The dataset's name, with the run's ``--tag`` when it has one."""
    return f"{res['dataset']} ({res['tag']})" if res.get("tag") else res["dataset"]


def summary(results: list[dict[str, Any]]) -> str:
    """One compact table over all datasets (for the README): best-of-R purity / NMI / ARI vs the paper."""
    lines = [
        "| dataset | method | runs x iterations | device | ours: purity / NMI / ARI (best of R) | paper: ACC (purity) / NMI / ARI |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        paper = {
            **PAPER_TABLE1.get(res["paper_key"], {}),
            **COURSE_TABLE1.get(res["paper_key"], {}),
        }
        for r in res["methods"]:
            b = r["best_by_val_purity"]
            iters = r["runs"][0].get("iterations")
            budget = f"{r['n_runs']} x {iters}" if iters else f"{r['n_runs']}"
            ref = paper.get(r["method"])
            ref_txt = " / ".join(_fmt(v) for v in ref) if ref else "-"
            if r["method"] in COURSE_TABLE1.get(res["paper_key"], {}):
                ref_txt += " (course project)"
            kind = " (transductive)" if METHOD_KIND.get(r["method"]) == "transductive" else ""
            lines.append(
                f"| {_title(res)} | {r['method']}{kind} | {budget} | {res['budget'].get('device', 'cpu')} | "
                f"{b['purity']:.2f} / {b['nmi']:.2f} / {b['ari']:.2f} | {ref_txt} |"
            )
    return "\n".join(lines)


def clustergan_rows(results: list[dict[str, Any]]) -> str:
    """ClusterGAN, one row per result file: budget, device, best of R and mean +- sd of purity /
    NMI / ARI, next to the paper and the authors' code's mean of 10 runs (the README's table)."""
    lines = [
        "| dataset | runs x iterations | device | best of R: purity / NMI / ARI "
        "| mean +- sd: purity / NMI / ARI | paper | authors' code, mean of 10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in res["methods"]:
            if r["method"] != "ClusterGAN":
                continue
            b, m, s = r["best_by_val_purity"], r["mean"], r["sd"]
            iters = r["runs"][0].get("iterations")
            paper = PAPER_TABLE1.get(res["paper_key"], {}).get("ClusterGAN")
            official = OFFICIAL_MEAN.get(res["paper_key"])
            spread = (
                " / ".join(f"{m[k]:.2f} +- {s[k]:.2f}" for k in ("purity", "nmi", "ari"))
                if r["n_runs"] > 1
                else "-"
            )
            lines.append(
                f"| {_title(res)} | {r['n_runs']} x {iters:,} | {res['budget'].get('device', 'cpu')} "
                f"| {b['purity']:.2f} / {b['nmi']:.2f} / {b['ari']:.2f} | {spread} "
                f"| {' / '.join(_fmt(v) for v in paper) if paper else '-'} "
                f"| {' / '.join(_fmt(v) for v in official) if official else '-'} |"
            )
    return "\n".join(lines)


def curve_table(row: dict[str, Any]) -> list[str]:
    """A method's convergence curve: test scores along the training, over its runs."""
    runs = row["runs"]
    lines = [
        f"Convergence of {row['method']} (`--curve-every`): test purity / NMI / ARI along the "
        f"training, mean +- sd over the {len(runs)} runs, and the run with the best validation "
        "purity at that iteration (the paper's rule). s = training seconds so far.",
        "",
        "| iteration | s | purity mean +- sd | NMI mean +- sd | ARI mean +- sd "
        "| best by val purity: purity / NMI / ARI |",
        "|---|---|---|---|---|---|",
    ]
    iterations = sorted(set.intersection(*({p["iteration"] for p in r["curve"]} for r in runs)))
    for it in iterations:
        points = [next(p for p in r["curve"] if p["iteration"] == it) for r in runs]
        test = {k: np.array([p["test"][k] for p in points]) for k in ("purity", "nmi", "ari")}
        best = max(points, key=lambda p: p["val"]["purity"])["test"]
        sd = {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in test.items()}
        lines.append(
            f"| {it} | {max(p['seconds'] for p in points):.0f} | "
            + " | ".join(f"{test[k].mean():.3f} +- {sd[k]:.3f}" for k in test)
            + f" | {best['purity']:.3f} / {best['nmi']:.3f} / {best['ari']:.3f} |"
        )
    return lines


def markdown(results: list[dict[str, Any]]) -> str:
    """All datasets: ours (best-of-R by validation purity, and mean +- sd) next to the paper."""
    lines = [
        "# Table 1 of the ClusterGAN paper, reproduced by `benchmarks/paper_table1.py`",
        "",
        "Test-split metrics. *best* = the run with the best validation purity (the paper's rule);",
        '*mean +- sd* over the R runs. The paper\'s "ACC" is cluster **purity** (Section 4.2),',
        "so it sits next to our purity; our Hungarian ACC is given as well. *transductive*",
        "methods cluster validation + test (+ part of train) together. Budgets are what fits a",
        "2-core CPU, far below the paper's 100,000 generator iterations unless stated: compare",
        "with care. Reference numbers for PCA+GMM and VAE+GMM come from the course project",
        "(../shared/seeds/002), not from the paper. The authors' code's means of 10 runs are",
        "from its README (github.com/sudiptodip15/ClusterGAN).",
        "",
        "## ClusterGAN, one row per dataset",
        "",
        clustergan_rows(results),
        "",
        "## Summary",
        "",
        summary(results),
        "",
    ]
    for res in results:
        ds = _title(res)
        paper = {
            **PAPER_TABLE1.get(res["paper_key"], {}),
            **COURSE_TABLE1.get(res["paper_key"], {}),
        }
        sizes = res["split_sizes"]
        lines += [
            f"## {ds}",
            "",
            f"{res['description']}. Split train / val / test = {sizes['train']} / {sizes['val']} / "
            f"{sizes['test']} (seed {res['split_seed']}). Budget: {res['budget_label']}. "
            "Machine: "
            + "; ".join(
                f"{hardware(m, res['budget'].get('device', 'cpu'))} ({m['torch_threads']} torch "
                f"threads), torch {m['torch']}"
                for m in res.get("machines", [res["machine"]])
            )
            + f". Command: `{res['command']}`.",
            "",
            "| method | kind | runs | iters | purity best | ACC best | NMI best | ARI best "
            "| purity mean +- sd | NMI mean +- sd | ARI mean +- sd | paper ACC (purity) / NMI / ARI "
            "| s / run |",
            "|---" * 13 + "|",
        ]
        for r in res["methods"]:
            b, m, s = r["best_by_val_purity"], r["mean"], r["sd"]
            iters = r["runs"][0].get("iterations", "-")
            ref = paper.get(r["method"])
            ref_txt = " / ".join(_fmt(v) for v in ref) if ref else "not reported"
            if r["method"] in COURSE_TABLE1.get(res["paper_key"], {}):
                ref_txt += " (course)"
            note = ""
            n_scored = r["runs"][0].get("n_scored", {})
            if n_scored and n_scored.get("test") != sizes["test"]:
                note = f" ({n_scored['test']} test pts)"
            lines.append(
                f"| {r['method']}{note} | {METHOD_KIND.get(r['method'], '')} | {r['n_runs']} | {iters} "
                f"| {b['purity']:.2f} | {b['acc']:.2f} | {b['nmi']:.2f} | {b['ari']:.2f} "
                f"| {m['purity']:.2f} +- {s['purity']:.2f} | {m['nmi']:.2f} +- {s['nmi']:.2f} "
                f"| {m['ari']:.2f} +- {s['ari']:.2f} | {ref_txt} | {_seconds_per_run(r):.0f} |"
            )
        for r in res["methods"]:
            if "curve" in r["runs"][0]:
                lines += ["", *curve_table(r)]
        missing = [k for k in paper if k not in {r["method"] for r in res["methods"]}]
        if missing:
            lines.append("")
            lines.append(
                "Paper rows not run here: "
                + ", ".join(f"{k} ({' / '.join(_fmt(v) for v in paper[k])})" for k in missing)
                + "."
            )
        lines.append("")
    return "\n".join(lines)


PAPER_KEY = {"fashion": "fashion10"}


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the rows of ``old`` for methods that ``new`` did not run (same split only)."""
    if old["split_sizes"] != new["split_sizes"] or old["n_points"] != new["n_points"]:
        raise ValueError("cannot merge results computed on different splits.")
    if old["budget_label"] != new["budget_label"]:
        raise ValueError(
            f"cannot merge results of different budgets: {old['budget_label']!r} vs {new['budget_label']!r}."
        )
    ran = {r["method"] for r in new["methods"]}
    rows = [r for r in old["methods"] if r["method"] not in ran] + new["methods"]
    order = list(METHOD_KIND)
    rows.sort(key=lambda r: order.index(r["method"]) if r["method"] in order else len(order))
    commands = old.get("commands", [old["command"]]) + [new["command"]]
    # every merged run's machine (its torch threads included), each once, in the order they ran
    machines = [*old.get("machines", [old["machine"]])]
    machines += [new["machine"]] if new["machine"] not in machines else []
    return {
        **new,
        "methods": rows,
        "commands": commands,
        "machines": machines,
        "command": " ; ".join(commands),
        "total_seconds": round(old["total_seconds"] + new["total_seconds"], 1),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="synthetic,pendigits,mnist,coil20,fashion,10x_73k")
    parser.add_argument("--methods", default=",".join(METHOD_KIND), help="comma-separated")
    parser.add_argument("--paper", action="store_true", help="the paper's full protocol")
    parser.add_argument("--runs", type=int, default=None, help="runs per method (override)")
    parser.add_argument("--max-iter", type=int, default=None, help="GAN iterations (override)")
    parser.add_argument("--bp-steps", type=int, default=None)
    parser.add_argument("--bp-max-points", type=int, default=None)
    parser.add_argument("--vae-iter", type=int, default=None)
    parser.add_argument("--subsample", type=int, default=None, help="use n random points (tests)")
    parser.add_argument("--time", action="store_true", help="only measure s / iteration")
    parser.add_argument(
        "--report",
        action="store_true",
        help="run nothing: rewrite results/paper_table1.md from the result files in --out",
    )
    parser.add_argument("--time-iters", type=int, default=40, help="iterations timed by --time")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other methods' rows of an existing results file of the dataset",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=None,
        help="keep the GAN methods' training state here; rerunning the same command after a stop "
        "continues each run from its last checkpoint (the same result as an unstopped run)",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="train the runs of each GAN method (ClusterGAN, InfoGAN, the GAN of the bp / "
        "Disc. phi rows) together as one vectorized ensemble (replica r follows seed r's "
        "random stream; each run's train_seconds is the ensemble's over R)",
    )
    parser.add_argument(
        "--curve-every",
        type=int,
        default=0,
        help="score ClusterGAN's runs on validation and test every N generator iterations (a "
        "convergence curve in the result files; N a multiple of max_iter // 100)",
    )
    parser.add_argument(
        "--tag",
        default=None,
        help="write results/paper_table1_<dataset>_<tag>.json, a section of its own beside the "
        "dataset's other runs (e.g. a longer budget for some methods)",
    )
    parser.add_argument(
        "--architecture-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a network option of the GAN methods (ClusterGAN, InfoGAN, the GAN of 'GAN with "
        "bp' / 'Disc. phi') that replaces the dataset's (the paper's), e.g. "
        "critic_batch_norm=false; repeatable; pair it with --tag",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    scg.settings.progress_bar = False
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = [m for m in args.methods.split(",") if m]
    unknown = set(names) - set(METHOD_KIND)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {list(METHOD_KIND)}")
    command = "python benchmarks/paper_table1.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    results = []
    timing = {}
    for name in [d for d in args.datasets.split(",") if d and not args.report]:
        if name not in DATASETS:
            parser.error(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
        try:
            data = load(name, args.data_dir)
        except (FileNotFoundError, OSError) as e:
            print(f"{name}: skipped, not staged ({e})")
            continue
        if args.subsample is not None and args.subsample < len(data.x):
            keep = np.sort(
                np.random.RandomState(0).choice(len(data.x), args.subsample, replace=False)
            )
            data.x, data.y = data.x[keep], data.y[keep]
            data.description += f"; a random subset of {args.subsample} points"
        if args.time:
            timing[name] = measure(data, n_iter=args.time_iters, device=args.device)
            print(name, timing[name])
            continue
        runs, budget = (PAPER_RUNS, PAPER_BUDGET) if args.paper else CPU_BUDGETS[name]
        budget = Budget(
            **{**budget.to_dict(), "device": args.device, "checkpoint_dir": args.checkpoint_dir}
        )
        for field_name, value in (
            ("max_iter", args.max_iter),
            ("bp_steps", args.bp_steps),
            ("bp_max_points", args.bp_max_points),
            ("vae_iter", args.vae_iter),
        ):
            if value is not None:
                setattr(budget, field_name, value)
        runs = args.runs or runs
        budget.ensemble_runs = runs if args.ensemble else 0
        log_every = max(1, budget.max_iter // 100)
        if args.curve_every < 0 or args.curve_every % log_every:
            parser.error(
                f"--curve-every must be a multiple of max_iter // 100 = {log_every} (the fit's "
                f"callback interval), got {args.curve_every}"
            )
        budget.curve_every = args.curve_every
        try:
            budget.architecture_options = architecture_options(args.architecture_option)
            check_options(data.architecture, budget.architecture_options)
        except ValueError as e:
            parser.error(str(e))
        if args.tag is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", args.tag):
            parser.error(f"--tag takes letters, digits, '_', '.' and '-', got {args.tag!r}")
        full = args.paper and budget.max_iter == PAPER_BUDGET.max_iter and runs == PAPER_RUNS
        label = (
            "the paper's full protocol" if full else "CPU budget, NOT the paper's protocol"
        ) + (
            f": {runs} run(s), {budget.max_iter} generator iterations, Algorithm 1 with "
            f"{budget.bp_steps} Adam steps on "
            + ("all" if budget.bp_max_points is None else f"at most {budget.bp_max_points}")
            + f" val / test points, VAE {budget.vae_iter} steps of batch {budget.vae_batch}"
            + "".join(
                f"; the GAN methods' networks with {k}={v}"
                for k, v in sorted(budget.architecture_options.items())
            )
        )
        split = paper_split(len(data.x), seed=0)
        print(f"{name}: {len(data.x)} points, K={data.n_clusters}; {label}")
        methods = make_methods(budget)
        rows = []
        start = time.perf_counter()
        for method in names:
            rows.append(
                run_method(
                    method, methods[method], data, data.y, split, data.n_clusters, list(range(runs))
                )
            )
        res = {
            "dataset": name,
            "tag": args.tag,
            "paper_key": PAPER_KEY.get(name, name),
            "description": data.description,
            "n_points": len(data.x),
            "n_clusters": data.n_clusters,
            "split_seed": 0,
            "split_sizes": {k: len(v) for k, v in split.items()},
            "settings": {
                "architecture": data.architecture,
                "architecture_options": data.architecture_options,
                "n_latent": data.n_latent,
                "beta_n": data.beta_n,
                "beta_c": data.beta_c,
                "batch_size": data.batch_size,
            },
            "budget": {k: v for k, v in budget.to_dict().items() if k != "checkpoint_dir"},
            "budget_label": label,
            "paper_protocol": full,
            "runs": runs,
            "machine": machine(),
            "command": command,
            "total_seconds": round(time.perf_counter() - start, 1),
            "methods": rows,
            "paper": {
                k: list(v) for k, v in PAPER_TABLE1.get(PAPER_KEY.get(name, name), {}).items()
            },
        }
        path = args.out / f"paper_table1_{name}{'_' + args.tag if args.tag else ''}.json"
        if args.merge and path.exists():
            res = _merge(json.loads(path.read_text()), res)
        write_json(path, res)
        results.append(res)
    if args.time:
        write_json(
            args.out / "paper_table1_timing.json",
            {"machine": machine(), "seconds_per_iteration": timing},
        )
        return []
    if results or args.report:
        every = []
        for path in sorted(args.out.glob("paper_table1_*.json")):
            if path.name == "paper_table1_timing.json":
                continue
            every.append(json.loads(path.read_text()))
        order = list(DATASETS)
        every.sort(key=lambda r: order.index(r["dataset"]) if r["dataset"] in order else len(order))
        md = args.out / "paper_table1.md"
        md.write_text(markdown(every) + "\n")
        print(f"wrote {md}")
    return results


if __name__ == "__main__":
    main()
