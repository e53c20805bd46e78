"""Pool result files of ``scrna.py`` written elsewhere into the repo's results.

Fits run on another machine (a GPU machine, a second worktree) write their own
``scrna_<dataset>.json``; this adds their runs to the entries of the same name in
``--into`` (``scrna.py --append`` semantics: the seeds must be new, the settings the same),
keeps every other entry, lists the commands of both and rewrites the markdown table.

    python benchmarks/scrna_merge.py OUT/scrna_worm_neuron.json --into benchmarks/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _protocol import write_json
from scrna import RESULTS, data_mismatch, update_result, write_table


def merge_file(path: Path, into: Path) -> dict:
    """Add the runs of the result file ``path`` to its namesake in ``into``; returns the merge."""
    new = json.loads(path.read_text())
    target = into / path.name
    if not target.exists():
        raise FileNotFoundError(f"{target} does not exist: copy {path} there instead of merging")
    old = json.loads(target.read_text())
    differs = data_mismatch(old, new["split"], new["n_obs"], new["n_clusters"])
    if differs:
        raise ValueError(f"{path} and {target} differ in {differs}: not merged")
    merged = update_result(old, new, append=True)
    merged["machine"] = old["machine"]  # the file's own; each entry keeps its machines
    write_json(target, merged)
    write_table(merged, target.with_suffix(".md"))
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="scrna_<dataset>.json files to add")
    parser.add_argument("--into", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for path in args.files:
        merged = merge_file(path, args.into)
        counts = ", ".join(f"{m['method']} {m['n_runs']}" for m in merged["methods"])
        print(f"{path} -> {args.into / path.name}: {counts}")


if __name__ == "__main__":
    main()
