"""Did the one-model rework change the default's verdict? Reruns of stored fits, compared.

Each file ``results/verdict_rerun/scrna_<dataset>.json`` holds a fit of the default recipe
(``benchmarks/scrna.py --clustergan auto --seed0 S``) made with the current code on a seed whose
fit the verdict table's results (``results/scrna_<dataset>.json``) already hold. For each, this
script prints the pooled labels' held-out test NMI / ARI of the stored fit and of the rerun (the
verdict table scores the test split; its cells are labelled by the same rule before and after
the rework, so the two agree when the rework left the clustering alone), their training-cell
scores (the training cells' labels now follow that same rule too, so these may move), and the
rerun's coherence on its training cells (``scrna.coherence``: proba argmax and 15-nearest-
neighbour agreement with the labels, of one replica's outputs before and of the model's after).

    python benchmarks/verdict_rerun.py --out benchmarks/results/verdict_rerun/summary.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _protocol import RESULTS

ENTRY = "clustergan_auto_linkage"  # the default's labels: every replica pooled by linkage


def _run(path: Path, seed: int) -> dict | None:
    result = json.loads(path.read_text())
    for method in result["methods"]:
        if method["method"] == ENTRY:
            for run in method["runs"]:
                if run["seed"] == seed:
                    return run
    return None


def rows(results: Path = RESULTS) -> list[dict]:
    """One comparison per rerun file."""
    out = []
    for path in sorted((results / "verdict_rerun").glob("scrna_*.json")):
        rerun = json.loads(path.read_text())
        entries = {m["method"]: m for m in rerun["methods"]}
        new = entries[ENTRY]["runs"][0]
        seed = new["seed"]
        old = _run(results / path.name, seed)
        coherence = entries["clustergan_auto"]["selection"][0]["coherence"]
        out.append(
            {
                "dataset": path.stem.removeprefix("scrna_"),
                "seed": seed,
                "stored": None if old is None else {s: old[s] for s in ("test", "train")},
                "rerun": {s: new[s] for s in ("test", "train")},
                "coherence": coherence,
                "machine": rerun["machine"],
            }
        )
    return out


def markdown(table: list[dict]) -> str:
    def pair(run: dict | None, split: str) -> str:
        if run is None:
            return "not stored"
        return f"{run[split]['nmi']:.4f} / {run[split]['ari']:.4f}"

    lines = [
        "| dataset | seed | test NMI / ARI, stored | test NMI / ARI, rerun | every test score "
        "the same | train NMI / ARI, stored / rerun | proba argmax = label, before / after | "
        "15-NN = label, before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        c = r["coherence"]
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {pair(r['stored'], 'test')} | "
            f"{pair(r['rerun'], 'test')} | "
            f"{'yes' if r['stored'] and r['stored']['test'] == r['rerun']['test'] else 'no'} | "
            f"{pair(r['stored'], 'train')} / "
            f"{pair(r['rerun'], 'train')} | {c['before']['proba_argmax']:.3f} / "
            f"{c['after']['proba_argmax']:.3f} | {c['before']['knn15']:.3f} / "
            f"{c['after']['knn15']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    text = markdown(rows(args.results))
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
