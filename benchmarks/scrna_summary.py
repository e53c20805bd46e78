"""Summary of the single-cell benchmark: the default recipe against the best baseline per dataset.

The default is ``scgan_cluster.recipes.RECIPES["lognorm"]``, measured as the ``fast_g3_p15``
variant of ``scrna.py`` (decision 0054; its ``clustergan_fast_g3_p15_linkage`` entry): its table
sets it beside the best baseline and the previous default. Then the previous default
(``RECIPES["lognorm_long"]``) against the best baseline, and each other candidate for a faster
default (``CANDIDATES``: ``"lognorm_fast"``, the ``clustergan_fast_linkage`` entry of
``scrna.py --clustergan fast``, and the others measured) against the best baseline and the
previous default.

Reads ``benchmarks/results/scrna_<dataset>.json`` (written by ``scrna.py``) and prints, per
dataset, NMI and ARI (test split, mean +- sd over runs) of every baseline, of the paper's recipe,
of each change alone and of the previous default, then one line per dataset saying whether the
recipe is at or above the best baseline on both NMI and ARI.

The previous default (the labels and budgets below are read from it): its ensembles' replicas
pooled by the recipe's ``pool``, the ``clustergan_auto_linkage`` entry of a direct run
(``scrna.py --clustergan auto``), or recorded from a dumped fit (``scrna_readout.py --record
linkage``). The weighted vote of the same replicas (``clustergan_auto_pooled``) and the
consensus of the ensemble whose replicas agree more (``clustergan_auto_consensus``) are also
listed; where a dataset lacks a direct run for some seeds, the consensus row is assembled here
from the entries of the two ensembles run alone, fit by fit (the same seeds, so the same networks
that the previous default trains), with the agreements each fit recorded
(``selection.agreement``): no labels enter the choice. The genes entry is ``..._genes2000_perk``
(the recipe's budget for K), or ``..._genes2000`` (4,000 iterations) where that is the recipe's
budget for K. The pooled rows cannot be assembled (they need every replica's labels), so they
hold the direct runs only.

    python benchmarks/scrna_summary.py                  # all staged datasets with results
    python benchmarks/scrna_summary.py --out benchmarks/results/scrna_summary.md
    python benchmarks/scrna_summary.py --tables   # also rewrite scrna_<dataset>.md from the JSONs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
from _protocol import RESULTS, aggregate
from scrna import CLUSTERGAN_VARIANTS, write_table

from scgan_cluster.recipes import RECIPES, Ensemble, Recipe

PREVIOUS_RECIPE = RECIPES["lognorm_long"]
_PREVIOUS_GENES = next(e for e in PREVIOUS_RECIPE.ensembles if e.n_pcs is None)


def describe(recipe: Recipe, ensemble: Ensemble) -> str:
    """An ensemble of a recipe as the tables name it: its input, learning rate and budget."""
    parts = [f"{recipe.n_top_genes:,} genes"]
    if ensemble.n_pcs is not None:
        parts = [f"{ensemble.n_pcs} PCs of {recipe.n_top_genes:,} genes"]
    lr = recipe.lr if ensemble.lr is None else ensemble.lr
    if lr is not None:
        parts.append(f"lr {lr:g}")
    if ensemble.n_runs is not None:
        parts.append(f"{ensemble.n_runs} replicas")
    if ensemble.max_iter is not None:
        parts.append(f"{ensemble.max_iter:,} iterations")
    elif recipe.max_iter_per_cluster:
        parts.append(f"max({recipe.max_iter:,}, {recipe.max_iter_per_cluster} K) iterations")
    else:
        parts.append(f"{recipe.max_iter:,} iterations")
    return ", ".join(parts)


def _ensembles(recipe: Recipe, sep: str) -> str:
    return sep.join(describe(recipe, e) for e in recipe.ensembles)


DATASETS = {
    "zheng2017_sorted8": "sorted PBMC, 8 populations",
    "zheng2017_sorted10": "sorted PBMC, 10 populations",
    "pbmc4k": "10x PBMC 4k",
    "mouse_bladder": "mouse bladder",
    "worm_neuron": "worm neurons",
}
BASELINES = {
    "paper_kmeans": "paper's preprocessing + KMeans",
    "pca_kmeans": "50 PCs + KMeans",
    "pca_gmm": "50 PCs + GMM",
    "scanpy_leiden": "leiden (K clusters)",
    "scvi_kmeans": "scVI + KMeans",
}


def _pooled_labels(variant: str) -> dict[str, str]:
    """The rows of a recipe of several ensembles (``scrna.py --clustergan <variant>``), named
    from the recipe: the kept ensemble's consensus and every replica pooled both ways; the
    previous default recipe's own pool is the row marked **previous default**."""
    recipe, d = CLUSTERGAN_VARIANTS[variant], PREVIOUS_RECIPE
    # a variant of "lognorm_fast" is named by its changes of that recipe
    base = RECIPES["lognorm_fast"] if recipe.name == "lognorm_fast" else d
    each = [f"({describe(recipe, e)})" for e in recipe.ensembles]
    changed = [
        f"{f.name}={_value(getattr(recipe, f.name))}"
        for f in dataclasses.fields(Recipe)
        if getattr(recipe, f.name) != getattr(base, f.name)
    ]
    start = '"lognorm_fast"' if base is not d else "the previous default"
    what = f"{start} with {', '.join(changed)}" if changed else start
    replicas = f"all {recipe.n_replicas} replicas of {' and '.join(each)}"
    labels = {
        "_consensus": f"{what}: the ensemble whose replicas agree more, {' or '.join(each)}, "
        f"consensus of its {' or '.join(sorted({str(recipe.replicas_of(e)) for e in recipe.ensembles}))}",
        "_pooled": f"{what}: {replicas} in one vote, each weighted by its agreement with the "
        'others (pool="vote")',
        "_linkage": f"{what}: {replicas} pooled by average linkage of their agreement-weighted "
        'co-association (pool="linkage")',
    }
    if recipe == d:
        own = "_linkage" if d.pool == "linkage" else "_pooled"
        labels[own] = labels[own].replace(what, "**previous default**", 1)
    if recipe == RECIPES["lognorm_fast"]:
        labels = {k: v.replace(what, '"lognorm_fast"', 1) for k, v in labels.items()}
    return {f"clustergan_{variant}{suffix}": label for suffix, label in labels.items()}


def _value(value: object) -> str:
    if isinstance(value, tuple) and all(isinstance(e, Ensemble) for e in value):
        return repr(tuple(e.name for e in value))
    return repr(value)


CLUSTERGAN = {
    "clustergan": "ClusterGAN, paper's recipe (one model, {it} iterations)",
    "clustergan_paper": "ClusterGAN, paper's recipe, replicas of {it} iterations",
    "clustergan_lognorm": "+ lognorm preprocessing alone (replicas)",
    "clustergan_paper_learned": "+ learned prior alone (replicas)",
    "clustergan_lognorm_learned": "+ both (single replicas)",
    "clustergan_lognorm_learned_medoid": "+ both, medoid replica (label-free pick)",
    "clustergan_lognorm_learned_consensus": "+ both, consensus of 5 replicas",
    "clustergan_lognorm_learned_leiden": "+ both, leiden readout (single replicas)",
    "clustergan_lognorm_learned_leiden_medoid": "+ both, leiden readout, medoid replica",
    "clustergan_lognorm_learned_leiden_consensus": "+ both, leiden readout, consensus of 5",
    "clustergan_lognorm_learned_recon10": "+ both + reconstruction, beta_r = 10 (single replicas)",
    "clustergan_lognorm_learned_recon10_consensus": "+ both + reconstruction, beta_r = 10, consensus of 5",
    "clustergan_lognorm_learned_recon1": "+ both + reconstruction, beta_r = 1 (single replicas)",
    "clustergan_lognorm_learned_recon1_medoid": "+ both + reconstruction, beta_r = 1, medoid replica",
    "clustergan_lognorm_learned_recon1_consensus": "+ both + reconstruction (beta_r = 1), consensus of 5 (720 genes)",
    "clustergan_lognorm_learned_recon1_leiden_consensus": "+ both + reconstruction, leiden readout, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes5000": "+ both + reconstruction + 5,000 genes (single replicas)",
    "clustergan_lognorm_learned_recon1_genes5000_medoid": "+ both + reconstruction + 5,000 genes, medoid replica",
    "clustergan_lognorm_learned_recon1_genes5000_consensus": "+ both + reconstruction + 5,000 genes, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes2000_floor05": "+ both + reconstruction + 2,000 genes, prior floor 0.5 / K (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_floor05_consensus": "+ both + reconstruction + 2,000 genes, prior floor 0.5 / K, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes2000_bf16_8000": "+ both + reconstruction + 2,000 genes, 8,000 iterations in bf16 (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_bf16_8000_consensus": "+ both + reconstruction + 2,000 genes, 8,000 iterations in bf16, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes2000": "+ both + reconstruction + 2,000 genes (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_medoid": "+ both + reconstruction + 2,000 genes, medoid replica",
    "clustergan_lognorm_learned_recon1_genes2000_lr2e3_2000": "+ both + reconstruction + 2,000 genes, lr 2e-3, 2,000 iterations (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_lr2e3_2000_consensus": "+ both + reconstruction + 2,000 genes, lr 2e-3, 2,000 iterations, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes2000_pcs50_lr1e3": "+ both + reconstruction, 50 PCs of 2,000 genes, lr 1e-3 (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_pcs50_lr1e3_consensus": "+ both + reconstruction, 50 PCs of 2,000 genes, lr 1e-3, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes2000_pcs50_lr2e3_2000": "+ both + reconstruction, 50 PCs of 2,000 genes, lr 2e-3, 2,000 iterations (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_pcs50_lr2e3_2000_consensus": "+ both + reconstruction, 50 PCs of 2,000 genes, lr 2e-3, 2,000 iterations, consensus of 5 (the previous default's PC ensemble)",
    "clustergan_lognorm_learned_recon1_genes2000_consensus": "+ both + reconstruction + 2,000 genes, consensus of 5 (4,000 iterations: the previous default's genes ensemble up to "
    f"K = {PREVIOUS_RECIPE.max_iter // PREVIOUS_RECIPE.max_iter_per_cluster})",
    "clustergan_lognorm_learned_recon1_genes2000_lr5e4": "+ both + reconstruction + 2,000 genes, lr 5e-4 (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_lr5e4_consensus": "+ both + reconstruction + 2,000 genes, lr 5e-4, consensus of 5",
    "clustergan_lognorm_learned_recon1_genes2000_lr1e3": "+ both + reconstruction + 2,000 genes, lr 1e-3 (single replicas)",
    "clustergan_lognorm_learned_recon1_genes2000_lr1e3_consensus": "+ both + reconstruction + 2,000 genes, lr 1e-3, consensus of 5",
    **{
        f"clustergan_{variant}{suffix}": _pooled_labels(variant)[f"clustergan_{variant}{suffix}"]
        for variant, suffix in (
            ("auto_4000", "_consensus"),
            ("auto", "_consensus"),
            ("auto", "_pooled"),
            ("auto", "_linkage"),
            ("auto_r10", "_linkage"),
            ("auto_lr", "_linkage"),
            ("auto_r10", "_consensus"),
            ("auto_r10", "_pooled"),
            ("fast", "_consensus"),
            ("fast", "_linkage"),
            ("fast_genes_lr5e4", "_consensus"),
            ("fast_genes_lr5e4", "_linkage"),
        )
    },
    "clustergan_fast_g3_p15_linkage": '**default** (`flavor="lognorm"`; measured as '
    "`fast_g3_p15`): 3 replicas of 2,000 genes at lr 5e-4 and 15 of their 50 PCs at lr 2e-3, "
    "1,000 iterations with 2 critic steps, all 18 pooled by co-association linkage",
}
GENES = "clustergan_lognorm_learned_recon1_genes2000"
GENES_PERK = "clustergan_lognorm_learned_recon1_genes2000_perk"
PCS = "clustergan_lognorm_learned_recon1_genes2000_pcs50_lr2e3_2000"
KEPT = "clustergan_auto_consensus"
POOLED = "clustergan_auto_pooled"
POOLED_R10 = "clustergan_auto_r10_pooled"
LINKAGE = "clustergan_auto_linkage"
LINKAGE_R10 = "clustergan_auto_r10_linkage"
# the previous default's labels (its replicas pooled by its own pool)
PREVIOUS = LINKAGE if PREVIOUS_RECIPE.pool == "linkage" else POOLED
# the verdict's row: the default's labels, measured as the "fast_g3_p15" variant (0054)
DEFAULT = "clustergan_fast_g3_p15_linkage"
# "lognorm_fast"'s labels, and the entries of a variant that trains the same networks under
# another name (the candidate "fast_c2", written as changes of the default), whose fits count
FAST = "clustergan_fast_linkage"
SAME_AS_FAST = ("clustergan_fast_c2_linkage",)
# candidates for a faster default, each in a table of its own against the best baseline and
# the previous default: (its name in the table, what it is)
CANDIDATES = {
    FAST: (
        '"lognorm_fast"',
        '**`flavor="lognorm_fast"`** (both ensembles 1,000 iterations at lr 2e-3, 2 critic steps)',
    ),
    "clustergan_fast_genes_lr5e4_linkage": (
        "`fast_genes_lr5e4`",
        '**`fast_genes_lr5e4`** (`"lognorm_fast"` with the genes ensemble at lr 5e-4; decision '
        "0046)",
    ),
    "clustergan_fast_mixed_r3_linkage": (
        "`fast_mixed_r3`",
        '**`fast_mixed_r3`** (`"lognorm_fast"` with three ensembles of 3 replicas: the genes at lr '
        "5e-4 and at 2e-3, the components; decision 0047)",
    ),
}
# the default's ensembles with the genes at 4,000 iterations for every K
AUTO_4000 = "clustergan_auto_4000_consensus"
_R5, _R10 = PREVIOUS_RECIPE.n_runs, CLUSTERGAN_VARIANTS["auto_r10"].n_runs


def genes_budget(n_clusters: int) -> int:
    """The previous default's iterations of its genes ensemble for K clusters."""
    return PREVIOUS_RECIPE.budget(int(n_clusters), _PREVIOUS_GENES)


def auto_entry(methods: dict[str, dict], n_clusters: int) -> dict | None:
    """The default's consensus row: per fit, the consensus of the ensemble whose replicas agree
    more, from the entries of the genes and the PC ensembles run alone.

    Fits are matched by ``random_state`` (the same seeds); ``None`` when either entry is
    missing. Each run records ``chosen`` and both agreements (mean ARI between replicas). The
    genes entry is the ``..._perk`` one, or the 4,000-iteration one where its recorded budget
    (``params.max_iter``) is the recipe's for ``n_clusters``.
    """
    genes = GENES_PERK if GENES_PERK in methods else GENES
    recorded = methods.get(genes, {}).get("params", {}).get("max_iter")
    if genes == GENES and recorded != genes_budget(n_clusters):
        return None
    return _assemble(methods, genes, KEPT)


def _assemble(methods: dict[str, dict], genes: str, name: str) -> dict | None:
    """Per fit, the consensus of ``genes`` or of the PC ensemble, whichever agrees more."""
    if not all(k in methods and k + "_consensus" in methods for k in (genes, PCS)):
        return None
    fits = {k: {f["random_state"]: f for f in _fits(methods[k])} for k in (genes, PCS)}
    cons = {k: {r["seed"]: r for r in methods[k + "_consensus"]["runs"]} for k in (genes, PCS)}
    runs = []
    for seed in sorted(set(fits[genes]) & set(fits[PCS])):
        agree = {k: float(np.mean(fits[k][seed]["agreement"])) for k in (genes, PCS)}
        chosen = genes if agree[genes] >= agree[PCS] else PCS
        runs.append(
            {
                **cons[chosen][seed],
                "chosen": "genes" if chosen == genes else "pcs",
                "agreement_genes": round(agree[genes], 4),
                "agreement_pcs": round(agree[PCS], 4),
            }
        )
    if not runs:
        return None
    return {"method": name, **aggregate(runs)}


def _union(direct: dict | None, assembled: dict | None) -> dict | None:
    """The fits of a direct entry, and those of an assembled one whose seeds it lacks."""
    if direct is None or assembled is None:
        return direct or assembled
    seeds = {r["seed"] for r in direct["runs"]}
    extra = [r for r in assembled["runs"] if r["seed"] not in seeds]
    if not extra:
        return direct
    runs = sorted([*direct["runs"], *extra], key=lambda r: r["seed"])
    return {**direct, **aggregate(runs)}


def _cell(m: dict, key: str) -> str:
    if m["n_runs"] < 2:
        return f"{m['mean'][key]:.2f}"
    return f"{m['mean'][key]:.2f} ± {m['sd'][key]:.2f}"


def _spread(m: dict, key: str) -> str:
    """Mean (3 decimals) and, over two or more runs, its sd."""
    if m["n_runs"] < 2 or "sd" not in m:
        return f"{m['mean'][key]:.3f}"
    return f"{m['mean'][key]:.3f} ± {m['sd'][key]:.3f}"


def _load(results: Path) -> list[tuple[str, dict, dict]]:
    """``(title, result, methods by name)`` of every staged dataset with a result file."""
    loaded = []
    for name, title in DATASETS.items():
        path = results / f"scrna_{name}.json"
        if path.exists():
            result = json.loads(path.read_text())
            methods = {m["method"]: m for m in result["methods"]}
            # the kept ensemble's consensus: direct runs of the default, and fits assembled from
            # the entries of its ensembles run alone for seeds not run directly
            auto = _union(methods.get(KEPT), auto_entry(methods, result["n_clusters"]))
            if auto is not None:
                methods[KEPT] = auto
            auto_4000 = None if AUTO_4000 in methods else _assemble(methods, GENES, AUTO_4000)
            if auto_4000 is not None:  # the default's ensembles, genes at 4,000 for every K
                methods[AUTO_4000] = auto_4000
            for same in SAME_AS_FAST:
                fast = _union(methods.get(FAST), methods.get(same))
                if fast is not None:
                    methods[FAST] = {**fast, "method": FAST}
            loaded.append((title, result, methods))
    return loaded


def _fits(entry: dict | None) -> list[dict]:
    """The per-fit ``selection`` records of a variant's entry (a single dict is one fit)."""
    fits = (entry or {}).get("selection", [])
    return [fits] if isinstance(fits, dict) else fits


def _verdict_row(
    title: str, methods: dict[str, dict], present: list[dict], name: str, beside: str | None
) -> str:
    """Entry ``name`` against the best baseline (test split) and, with ``beside``, that entry."""
    best_nmi = max(present, key=lambda m: m["mean"]["nmi"])
    best_ari = max(present, key=lambda m: m["mean"]["ari"])
    entry = methods[name]
    d = entry["mean"]
    ok = d["nmi"] >= best_nmi["mean"]["nmi"] and d["ari"] >= best_ari["mean"]["ari"]
    cells = [title, str(entry["n_runs"]), f"{_spread(entry, 'nmi')} / {_spread(entry, 'ari')}"]
    other = None if beside is None else methods.get(beside)
    if beside is not None:
        cells.append(
            "not run" if other is None else f"{_spread(other, 'nmi')} / {_spread(other, 'ari')}"
        )
    cells += [
        f"{best_nmi['mean']['nmi']:.3f} ({BASELINES[best_nmi['method']]}) / "
        f"{best_ari['mean']['ari']:.3f} ({BASELINES[best_ari['method']]})",
        f"{d['nmi'] - best_nmi['mean']['nmi']:+.3f} / {d['ari'] - best_ari['mean']['ari']:+.3f}",
        "yes" if ok else "no",
    ]
    if beside is not None:
        if other is None:
            cells.append("-")
        else:
            sd = other.get("sd", {"nmi": 0.0, "ari": 0.0})
            near = all(d[k] >= other["mean"][k] - sd[k] for k in ("nmi", "ari"))
            cells.append("yes" if near else "no")
    return "| " + " | ".join(cells) + " |"


def summarise(results: Path) -> str:
    lines: list[str] = []
    verdicts: list[str] = []
    previous: list[str] = []
    candidate_rows: dict[str, list[str]] = {name: [] for name in CANDIDATES}
    loaded = _load(results)
    for title, result, methods in loaded:
        lines += [
            f"**{title}** ({result['n_obs']:,} cells, K = {result['n_clusters']}, test split "
            f"{result['split']['test']} cells)",
            "",
            "| method | runs | NMI | ARI |",
            "|---|---|---|---|",
        ]
        for key, label in BASELINES.items():
            if key in methods:
                m = methods[key]
                lines.append(f"| {label} | {m['n_runs']} | {_cell(m, 'nmi')} | {_cell(m, 'ari')} |")
        for key, label in CLUSTERGAN.items():
            if key in methods:
                m = methods[key]
                it = m.get("iterations")
                label = label.format(it=f"{it:,}" if isinstance(it, int) else "?")
                lines.append(f"| {label} | {m['n_runs']} | {_cell(m, 'nmi')} | {_cell(m, 'ari')} |")
        lines.append("")
        present = [methods[k] for k in BASELINES if k in methods]
        if not present:
            continue
        if DEFAULT in methods:
            verdicts.append(_verdict_row(title, methods, present, DEFAULT, PREVIOUS))
        if PREVIOUS in methods:
            previous.append(_verdict_row(title, methods, present, PREVIOUS, None))
        for name, rows in candidate_rows.items():
            if name in methods:
                rows.append(_verdict_row(title, methods, present, name, PREVIOUS))
    head = [
        "| dataset | fits | default NMI / ARI (mean ± sd over fits) | previous default NMI / ARI "
        "| best baseline NMI / ARI | default - best | at or above on both | within one sd of the "
        "previous default |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous_head = [
        "",
        '**The previous default** (`flavor="lognorm_long"`) against the best baseline',
        "",
        "| dataset | fits | previous default NMI / ARI | best baseline NMI / ARI | "
        "previous default - best | at or above on both |",
        "|---|---|---|---|---|---|",
    ]
    candidates: list[str] = []
    for name, rows in candidate_rows.items():
        short, what = CANDIDATES[name]
        if rows:
            candidates += [
                "",
                f"{what} against the best baseline and the previous default",
                "",
                f"| dataset | fits | {short} NMI / ARI | previous default NMI / ARI | best "
                f"baseline NMI / ARI | {short} - best | at or above on both | within one sd of "
                "the previous default |",
                "|---|---|---|---|---|---|---|---|",
                *rows,
            ]
    return "\n".join(
        [
            *head,
            *verdicts,
            *(previous_head + previous if previous else []),
            *candidates,
            "",
            *lines,
            *paired_tables(loaded),
            *prior_table(loaded),
            *pick_table(loaded),
        ]
    )


def paired_table(
    loaded: list[tuple[str, dict, dict]],
    base_key: str,
    new_key: str,
    heading: str,
    names: tuple[str, str],
) -> list[str]:
    """Per fit in both entries (matched by first seed): ``new_key`` against ``base_key`` on the
    training and validation cells (the splits that may choose a setting), NMI / ARI, and the
    mean difference (new - base) over all those fits, also on the test split (reported, not
    used for the choice). ``names``: how the rows call base and new."""
    rows, diffs = [], []
    splits = ("train", "val", "test")
    base_name, new_name = names
    for title, _result, methods in loaded:
        if new_key not in methods or base_key not in methods:
            continue
        base_runs = {r["seed"]: r for r in methods[base_key]["runs"]}
        for run in methods[new_key]["runs"]:
            base = base_runs.get(run["seed"])
            if base is None or not all(s in r for s in splits for r in (run, base)):
                continue
            cells = [
                f"{r[s]['nmi']:.3f} / {r[s]['ari']:.3f}"
                for s in ("train", "val")
                for r in (base, run)
            ]
            diffs.append([run[s][k] - base[s][k] for s in splits for k in ("nmi", "ari")])
            rows.append(f"| {title} | {run['seed']} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    mean = np.mean(diffs, axis=0)
    higher = (np.asarray(diffs) > 0).sum(axis=0)
    return [
        heading,
        "",
        f"| dataset | seed | train, {base_name} | train, {new_name} | validation, {base_name} "
        f"| validation, {new_name} |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"{new_name.capitalize()} minus {base_name} over {len(rows)} fits, mean (fits where "
        f"{new_name} is higher): train NMI {mean[0]:+.3f} ({higher[0]}), ARI {mean[1]:+.3f} "
        f"({higher[1]}); validation NMI {mean[2]:+.3f} ({higher[2]}), ARI {mean[3]:+.3f} "
        f"({higher[3]}). On the test split of the same fits (not used for the choice): NMI "
        f"{mean[4]:+.3f} ({higher[4]}), ARI {mean[5]:+.3f} ({higher[5]}).",
        "",
    ]


# the paired comparisons of the summary: (base entry, new entry, heading, names in the rows)
PAIRED: dict[str, tuple[str, str, str, tuple[str, str]]] = {
    # every replica in one weighted vote against the kept ensemble's consensus
    "pool": (
        KEPT,
        POOLED,
        "**Pooling the two ensembles against the kept one, on the splits that choose settings** "
        "(NMI / ARI of the consensus, per fit by its first seed; pooled = the weighted vote of "
        'both ensembles\' replicas, `pool="vote"`, from the same fit)',
        ("kept", "pooled"),
    ),
    # the same replicas pooled by co-association linkage against the weighted vote
    "linkage": (
        POOLED,
        LINKAGE,
        "**Co-association linkage against the weighted vote, on the splits that choose "
        f"settings** (NMI / ARI, per fit by its first seed: the same {PREVIOUS_RECIPE.n_replicas} "
        'replicas pooled two ways, `pool="vote"` and `pool="linkage"`)',
        ("vote", "linkage"),
    ),
    # the default with more replicas per ensemble against the default's
    "replicas": (
        POOLED,
        POOLED_R10,
        f"**{_R10} replicas per ensemble against the default's {_R5}, on the splits that choose "
        f"settings** (NMI / ARI of the pooled vote, per fit by its first seed: the fit of {_R10} "
        f"holds the {_R5} replicas of the default's fit with the same first seed and "
        f"{_R10 - _R5} more; `tl.clustergan(n_runs={_R10})`)",
        (f"{_R5} replicas", f"{_R10} replicas"),
    ),
    # the same for the default's pool: more replicas per ensemble pooled by linkage
    "replicas_linkage": (
        LINKAGE,
        LINKAGE_R10,
        f"**{_R10} replicas per ensemble against the default's {_R5}, pooled by co-association "
        "linkage (the default's pool), on the splits that choose settings** (NMI / ARI, per fit "
        f"by its first seed: the fit of {_R10} holds the {_R5} replicas of the default's fit with "
        f"the same first seed and {_R10 - _R5} more; `tl.clustergan(n_runs={_R10})`)",
        (f"{_R5} replicas", f"{_R10} replicas"),
    ),
}


def paired_tables(loaded: list[tuple[str, dict, dict]]) -> list[str]:
    """Every paired comparison of ``PAIRED`` that the results hold, in its order."""
    return [line for key in PAIRED for line in paired_table(loaded, *PAIRED[key])]


def prior_table(loaded: list[tuple[str, dict, dict]]) -> list[str]:
    """Per dataset: the default's zc modes in use at the end of training (``prior_modes`` records)."""
    rows = []
    for title, result, methods in loaded:
        fits = _fits(methods.get(GENES))
        records = [r for fit in fits for r in fit.get("prior_modes", [])]
        if not records:
            continue
        eff = sorted(r["effective"] for r in records)
        occ = sorted(r["occupied"] for r in records)
        top = sorted(round(max(r["weights"]), 2) for r in records)
        rows.append(
            f"| {title} | {result['n_clusters']} | {len(records)} | {eff[0]:.1f}-{eff[-1]:.1f} | "
            f"{occ[0]}-{occ[-1]} | {top[0]:.2f}-{top[-1]:.2f} |"
        )
    if not rows:
        return []
    return [
        "**The learned prior of the 2,000-gene ensembles of 4,000 iterations at the end of training** (every replica; effective number "
        "of modes 1 / sum(w^2); occupied: modes that are the encoder's most likely zc for at "
        "least 1% of the training cells)",
        "",
        "| dataset | K | replicas | effective modes | occupied modes | largest weight |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def pick_table(loaded: list[tuple[str, dict, dict]]) -> list[str]:
    """Per fit of the default: the label-free picks against the paper's pick by validation purity.

    For every fit (5 replicas): whether the medoid replica is the one with the best validation
    purity, and the test ARI of the medoid, of the replicas' mean, of the best replica, of the
    purity pick and of the consensus.
    """
    rows = []
    for title, _result, methods in loaded:
        base, cons_key = GENES, GENES + "_consensus"
        if base not in methods or cons_key not in methods:
            continue
        fits = _fits(methods[base])
        runs, per = methods[base].get("runs", []), methods[base].get("replicas_per_fit", 5)
        for f, (fit, cons) in enumerate(zip(fits, methods[cons_key].get("runs", []), strict=False)):
            reps = [r["test"]["ari"] for r in runs[f * per : (f + 1) * per]]
            if len(reps) != len(fit["agreement"]):
                continue
            med, pur = fit["medoid"], fit["best_by_val_purity"]
            rows.append(
                f"| {title} | {f} | {'yes' if med == pur else 'no'} | {reps[med]:.2f} | "
                f"{sum(reps) / len(reps):.2f} | {max(reps):.2f} | {reps[pur]:.2f} | "
                f"{cons['test']['ari']:.2f} |"
            )
    if not rows:
        return []
    return [
        "**Label-free picks against the paper's label-based one** (test ARI, per fit of the "
        "genes ensemble's 5 replicas)",
        "",
        "| dataset | fit | medoid = purity pick | medoid | replica mean | best replica | "
        "purity pick | consensus |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument(
        "--tables",
        action="store_true",
        help="also rewrite each dataset's scrna_<dataset>.md (all methods) from its JSON",
    )
    args = parser.parse_args(argv)
    text = summarise(args.results)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.tables:
        for name in DATASETS:
            path = args.results / f"scrna_{name}.json"
            if path.exists():
                write_table(json.loads(path.read_text()), path.with_suffix(".md"))
                print(f"wrote {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
