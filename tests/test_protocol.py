"""The lab's benchmark scripts: the shared protocol (benchmarks/_protocol.py), the single-cell
harness (benchmarks/scrna.py), its result files and their readouts and summaries."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import make_counts
from _protocol import aggregate, markdown_table, paper_split, score
from sklearn.metrics import adjusted_rand_score

from scgan_cluster.recipes import ENSEMBLES, RECIPES, Ensemble

pytestmark = pytest.mark.lab

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _small(recipe, **fields):
    """``recipe`` at a test's budget: 4 iterations for every ensemble, 2 replicas of each, 20
    genes, principal components of 5 (``fields`` override)."""
    ensembles = tuple(
        replace(e, max_iter=None, n_runs=None, n_pcs=None if e.n_pcs is None else 5)
        for e in recipe.ensembles
    )
    settings = {"max_iter": 4, "max_iter_per_cluster": 0, "n_runs": 2, "n_top_genes": 20}
    return replace(recipe, **{**settings, "ensembles": ensembles, **fields})


def _mean_agreement(labels: np.ndarray) -> np.ndarray:
    """Each replica's mean ARI with the others (sklearn, from its labels)."""
    r = labels.shape[1]
    ari = [
        [adjusted_rand_score(labels[:, i], labels[:, j]) for j in range(r) if j != i]
        for i in range(r)
    ]
    return np.mean(ari, axis=1)


def test_paper_split_matches_the_official_sizes():
    split = paper_split(73_233, seed=0)
    assert {k: len(v) for k, v in split.items()} == {"train": 55_000, "val": 5_000, "test": 13_233}
    allidx = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(allidx), np.arange(73_233))


def test_paper_split_is_seeded_and_scales():
    a, b, c = paper_split(1000, seed=0), paper_split(1000, seed=0), paper_split(1000, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    assert [len(a[k]) for k in ("train", "val", "test")] == [751, 68, 181]
    with pytest.raises(ValueError, match="at least 3"):
        paper_split(2)


def test_score_known_answer():
    truth = np.array([0, 0, 1, 1, 2, 2])
    m = score(truth, np.array([1, 1, 0, 0, 2, 2]))
    assert m == {"acc": 1.0, "purity": 1.0, "nmi": 1.0, "ari": 1.0, "nmi_geometric": 1.0}
    m = score(truth, np.array([0, 0, 0, 0, 1, 1]))
    assert m["purity"] == pytest.approx(4 / 6, abs=1e-4)
    assert m["acc"] == pytest.approx(4 / 6, abs=1e-4)


def _run(seed, val_purity, test_acc):
    return {
        "seed": seed,
        "seconds": 1.0,
        "val": {"purity": val_purity},
        "test": {"acc": test_acc, "nmi": test_acc, "ari": test_acc, "purity": test_acc},
    }


def test_aggregate_picks_best_validation_purity_not_best_test():
    runs = [_run(0, 0.5, 0.9), _run(1, 0.8, 0.6), _run(2, 0.7, 0.3)]
    agg = aggregate(runs)
    assert agg["best_by_val_purity"]["seed"] == 1
    assert agg["best_by_val_purity"]["acc"] == 0.6
    assert agg["mean"]["acc"] == pytest.approx(0.6)
    assert agg["sd"]["acc"] == pytest.approx(0.3)
    table = markdown_table([{"method": "m", **agg}])
    assert "| m | 3 | 0.60 |" in table


def test_scrna_harness_end_to_end(tmp_path):
    import scrna

    adata = make_counts(n_per_cluster=80, n_clusters=3)
    adata.obs["label"] = adata.obs["truth"].astype(str)
    adata.X = sp.csr_matrix(adata.X)
    path = tmp_path / "toy.h5ad"
    adata.write_h5ad(path)
    argv = ["--h5ad", str(path), "--runs", "2", "--max-iter", "20", "--curve-every", "10"]
    argv += ["--methods", "clustergan", "paper_kmeans", "pca_kmeans", "--out", str(tmp_path)]
    scrna.main(argv)
    result = json.loads((tmp_path / "scrna_toy.json").read_text())
    assert result["split"]["train"] + result["split"]["val"] + result["split"]["test"] == 240
    methods = {m["method"]: m for m in result["methods"]}
    assert set(methods) == {"clustergan", "paper_kmeans", "pca_kmeans"}
    for m in methods.values():
        assert m["n_runs"] == 2
        assert all(0 <= v <= 1 for k, v in m["mean"].items())
    # the toy groups are far apart: KMeans on the paper's preprocessing separates them
    assert methods["paper_kmeans"]["mean"]["ari"] > 0.9
    # the fit-on-train baselines are scored on the training cells too (the toy's 3 groups)
    assert all(r["train"]["ari"] > 0.9 for r in methods["paper_kmeans"]["runs"])
    assert [c["iteration"] for c in methods["clustergan"]["checkpoints"]] == [10, 20]
    # a second call with another method updates the file and keeps the others
    scrna.main([*argv[:6], "--methods", "pca_gmm", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "scrna_toy.json").read_text())
    assert [m["method"] for m in result["methods"]] == [
        "clustergan",
        "paper_kmeans",
        "pca_kmeans",
        "pca_gmm",
    ]
    # the table scrna_summary.py --tables rewrites from the JSON is the one the run wrote
    written = (tmp_path / "scrna_toy.md").read_text()
    assert "| pca_gmm | 2 |" in written
    scrna.write_table(result, tmp_path / "again.md")
    assert (tmp_path / "again.md").read_text() == written


def test_scrna_clustergan_variants_score_replicas_medoid_and_consensus(monkeypatch, tmp_path):
    import scrna

    for name in ("paper", "lognorm_learned"):
        small = _small(scrna.CLUSTERGAN_VARIANTS[name], n_runs=3)
        monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, name, small)
    adata = make_counts(n_per_cluster=80, n_clusters=3)
    adata.obs["label"] = adata.obs["truth"].astype(str)
    path = tmp_path / "toy.h5ad"
    adata.write_h5ad(path)
    argv = ["--h5ad", str(path), "--methods", "--clustergan", "paper", "lognorm_learned"]
    argv += ["--out", str(tmp_path), "--dump", str(tmp_path / "dumps")]
    scrna.main(argv)
    result = json.loads((tmp_path / "scrna_toy.json").read_text())
    methods = {m["method"]: m for m in result["methods"]}
    assert list(methods) == [
        "clustergan_paper",
        "clustergan_paper_medoid",
        "clustergan_paper_consensus",
        "clustergan_lognorm_learned",
        "clustergan_lognorm_learned_medoid",
        "clustergan_lognorm_learned_consensus",
    ]
    for variant, flavor, prior in (
        ("paper", "paper", "uniform"),
        ("lognorm_learned", "lognorm", "learned"),
    ):
        m = methods[f"clustergan_{variant}"]
        assert m["n_runs"] == 3
        assert [r["seed"] for r in m["runs"]] == [0, 1, 2]
        assert (m["params"]["flavor"], m["params"]["prior"]) == (flavor, prior)
        assert (m["params"]["n_top_genes"], m["params"]["max_iter"]) == (20, 4)
        (sel,) = m["selection"]
        # the medoid is the replica with the highest mean ARI with the others, computed here
        # from the replicas' labels of the training cells (the dump)
        z = np.load(tmp_path / "dumps" / f"{variant}_0.npz")
        assert sel["medoid"] == int(np.argmax(_mean_agreement(z["labels_0_train"])))
        # one record of the zc modes per replica
        assert len(sel["prior_modes"]) == 3
        for rec in sel["prior_modes"]:
            assert np.isclose(sum(rec["weights"]), 1.0, atol=1e-3)
            assert 1 <= rec["occupied"] <= 3
            assert 1.0 <= rec["effective"] <= 3.0 + 1e-6
            if prior == "uniform":
                assert rec["weights"] == [round(1 / 3, 4)] * 3
                assert rec["effective"] == 3.0
        # the medoid entry is that replica's run, scored the same way
        medoid = methods[f"clustergan_{variant}_medoid"]
        assert medoid["n_runs"] == 1
        assert medoid["runs"][0] == m["runs"][sel["medoid"]]
        consensus = methods[f"clustergan_{variant}_consensus"]
        assert consensus["n_runs"] == 1
        # every replica and the consensus are scored on the training cells by their own labels
        truth = z["truth_train"]
        for r, run in enumerate(m["runs"]):
            assert run["train"] == score(truth, z["labels_0_train"][:, r])
        assert set(consensus["runs"][0]["train"]) == set(consensus["runs"][0]["test"])
    # rerunning one variant keeps the other and the order; two fits use seeds 0-2 and 3-5
    scrna.main([*argv[:4], "--clustergan", "paper", "--fits", "2", "--out", str(tmp_path)])
    again = {
        m["method"]: m for m in json.loads((tmp_path / "scrna_toy.json").read_text())["methods"]
    }
    assert list(again) == list(methods)
    assert [r["seed"] for r in again["clustergan_paper"]["runs"]] == [0, 1, 2, 3, 4, 5]
    assert [r["seed"] for r in again["clustergan_paper_consensus"]["runs"]] == [0, 3]
    assert again["clustergan_paper_medoid"]["n_runs"] == 2


def test_scrna_summary_verdict(tmp_path):
    import scrna_summary

    genes, pcs = scrna_summary.GENES, scrna_summary.PCS

    def entry(method, nmi, ari, n_runs=5):
        return {
            "method": method,
            "n_runs": n_runs,
            "mean": {"nmi": nmi, "ari": ari},
            "sd": {"nmi": 0.01, "ari": 0.02},
        }

    def run(seed, nmi, ari):
        return {
            "seed": seed,
            "seconds": 1.0,
            "val": {"purity": 0.5, "nmi": nmi, "ari": ari},
            "test": {"nmi": nmi, "ari": ari},
        }

    def consensus(method, seed, nmi, ari):
        return entry(method + "_consensus", nmi, ari, n_runs=1) | {"runs": [run(seed, nmi, ari)]}

    def fit(seed, agreement, **extra):
        return {"random_state": seed, "agreement": agreement, **extra}

    def write(name, methods):
        result = {"n_obs": 100, "n_clusters": 3, "split": {"test": 20}, "methods": methods}
        (tmp_path / f"scrna_{name}.json").write_text(json.dumps(result))

    modes = [
        {"weights": [0.9, 0.05, 0.05], "effective": 1.22, "occupied": 1},
        {"weights": [0.5, 0.4, 0.1], "effective": 2.38, "occupied": 3},
    ]
    write(
        "pbmc4k",
        [
            entry("pca_kmeans", 0.70, 0.60),
            entry("scanpy_leiden", 0.75, 0.55),
            entry(genes, 0.7, 0.6)
            | {
                "params": {"max_iter": 4000},
                "replicas_per_fit": 2,
                "runs": [{"test": {"ari": 0.5}}, {"test": {"ari": 0.7}}],
                "selection": [
                    fit(0, [0.5, 0.6], medoid=1, best_by_val_purity=0, prior_modes=modes)
                ],
            },
            consensus(genes, 0, 0.76, 0.61),
            # the PC ensemble's replicas agree less: the genes ensemble is the kept one
            entry(pcs, 0.9, 0.9) | {"selection": [fit(0, [0.3, 0.3])]},
            consensus(pcs, 0, 0.95, 0.95),
            # the previous default: both ensembles' replicas pooled (direct runs only)
            entry(scrna_summary.PREVIOUS, 0.77, 0.62, n_runs=1) | {"runs": [run(0, 0.77, 0.62)]},
            # the default (measured under its variant's name)
            entry(scrna_summary.DEFAULT, 0.80, 0.61, n_runs=1) | {"runs": [run(0, 0.80, 0.61)]},
            # "lognorm_fast"
            entry(scrna_summary.FAST, 0.78, 0.61, n_runs=1) | {"runs": [run(0, 0.78, 0.61)]},
        ],
    )
    write(
        "worm_neuron",
        [
            entry("pca_kmeans", 0.70, 0.60),
            entry(genes, 0.7, 0.6)
            | {
                "params": {"max_iter": 4000},
                "selection": [fit(0, [0.2, 0.2]), fit(5, [0.6, 0.6])],
            },
            consensus(genes, 0, 0.80, 0.59) | {"runs": [run(0, 0.8, 0.59), run(5, 0.9, 0.9)]},
            # fit 0: the PCs agree more; fit 5 exists for the genes only and is left out
            entry(pcs, 0.6, 0.5) | {"selection": [fit(0, [0.4, 0.4])]},
            consensus(pcs, 0, 0.72, 0.58),
            # the recipe at 720 genes: listed, not the verdict's
            entry("clustergan_lognorm_learned_recon1_consensus", 0.90, 0.90, n_runs=1),
            # two fits: the verdict shows their sd
            entry(scrna_summary.PREVIOUS, 0.72, 0.58, n_runs=2)
            | {"runs": [run(0, 0.71, 0.56), run(5, 0.73, 0.60)]},
            # "lognorm_fast": one direct fit, one under the candidate's name (same networks)
            entry(scrna_summary.FAST, 0.70, 0.50, n_runs=1) | {"runs": [run(0, 0.70, 0.50)]},
            entry(scrna_summary.SAME_AS_FAST[0], 0.74, 0.64, n_runs=1)
            | {"runs": [run(5, 0.74, 0.64)]},
        ],
    )
    # a dataset without a pooled run gets no verdict, whatever its kept row says
    write(
        "mouse_bladder",
        [entry("pca_kmeans", 0.1, 0.1), entry(genes, 0.7, 0.6), consensus(genes, 0, 0.9, 0.9)],
    )
    text = scrna_summary.summarise(tmp_path)
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| 10x PBMC 4k") or line.startswith("| worm")
    ]
    # the verdict is the default's row, beside the previous default: 0.80 >= 0.75 (leiden) and
    # 0.61 >= 0.60 (PCs + KMeans); ARI 0.61 >= 0.62 - 0.02: within one sd of the previous default
    assert rows[0].startswith("| 10x PBMC 4k | 1 | 0.800 / 0.610 | 0.770 / 0.620 |")
    assert rows[0].endswith("| +0.050 / +0.010 | yes | yes |")
    rows = rows[1:]
    # then the previous default's row (with its number of fits): 0.77 >= 0.75 (leiden) and
    # 0.62 >= 0.60 (PCs + KMeans)
    assert rows[0].startswith("| 10x PBMC 4k | 1 | 0.770 / 0.620 |")
    assert rows[0].endswith("| +0.020 / +0.020 | yes |")
    assert "0.750 (leiden (K clusters)) / 0.600 (50 PCs + KMeans)" in rows[0]
    assert rows[1].startswith("| worm neurons | 2 | 0.720 ± 0.010 / 0.580 ± 0.020 |")
    assert rows[1].endswith("| +0.020 / -0.020 | no |")  # ARI 0.58 < 0.60
    # "lognorm_fast" beside the default (one fit of the default: no sd)
    assert rows[2].startswith("| 10x PBMC 4k | 1 | 0.780 / 0.610 | 0.770 / 0.620 |")
    assert rows[2].endswith("| +0.030 / +0.010 | yes | yes |")
    # worm: two fits (seeds 0 and 5, one under the candidate's name), 0.72 / 0.57
    assert rows[3].startswith(
        "| worm neurons | 2 | 0.720 ± 0.028 / 0.570 ± 0.099 | 0.720 ± 0.010 / 0.580 ± 0.020 |"
    )
    # ARI 0.57 < 0.60; 0.57 >= 0.58 - 0.02: within one sd of the default
    assert rows[3].endswith("| +0.020 / -0.030 | no | yes |")
    assert not any(line.startswith("| mouse bladder |") for line in text.splitlines())
    # the previous default pools by linkage: its row is the linkage entry
    assert scrna_summary.PREVIOUS == "clustergan_auto_linkage"
    pooled_label = scrna_summary.CLUSTERGAN[scrna_summary.PREVIOUS]
    assert pooled_label.startswith("**previous default**")
    assert scrna_summary.CLUSTERGAN[scrna_summary.DEFAULT].startswith("**default**")
    assert f"| {pooled_label} | 1 | 0.77 | 0.62 |" in text
    assert scrna_summary.CLUSTERGAN[scrna_summary.FAST].startswith('"lognorm_fast"')
    # the kept ensemble's consensus is listed beside it
    label = scrna_summary.CLUSTERGAN[scrna_summary.KEPT]
    assert f"| {label} | 1 | 0.76 | 0.61 |" in text
    assert f"| {label} | 1 | 0.72 | 0.58 |" in text
    before = "+ both + reconstruction (beta_r = 1), consensus of 5 (720 genes)"
    assert f"| {before} | 1 | 0.90 | 0.90 |" in text
    worm = {
        m["method"]: m
        for m in json.loads((tmp_path / "scrna_worm_neuron.json").read_text())["methods"]
    }
    auto = scrna_summary.auto_entry(worm, 3)
    assert [(r["seed"], r["chosen"]) for r in auto["runs"]] == [(0, "pcs")]
    assert auto["runs"][0]["agreement_genes"] == 0.2
    assert auto["runs"][0]["agreement_pcs"] == 0.4
    # above K = 8 the 4,000-iteration genes entry is not the default's genes ensemble ...
    assert scrna_summary.auto_entry(worm, 10) is None
    # ... the entry at the recipe's budget is, and it wins over the 4,000-iteration one
    perk = scrna_summary.GENES_PERK
    worm[perk] = {**worm[genes], "method": perk, "selection": [fit(0, [0.5, 0.5])]}
    worm[perk + "_consensus"] = consensus(perk, 0, 0.81, 0.66)
    for k in (3, 10):
        auto = scrna_summary.auto_entry(worm, k)
        assert [(r["seed"], r["chosen"]) for r in auto["runs"]] == [(0, "genes")]
        assert auto["mean"] == {"nmi": 0.81, "ari": 0.66}
    # a direct run of the default adds its fits to those assembled from its ensembles' entries
    assembled = scrna_summary.auto_entry(worm, 3)  # seed 0: 0.81 / 0.66
    direct = {"method": scrna_summary.KEPT, "runs": [run(10, 0.7, 0.5)]}
    union = scrna_summary._union(direct, assembled)
    assert [r["seed"] for r in union["runs"]] == [0, 10]
    assert union["n_runs"] == 2
    assert union["mean"]["nmi"] == pytest.approx(0.755)
    # a seed run directly wins over the assembled fit of that seed
    direct["runs"].append(run(0, 0.1, 0.1))
    assert scrna_summary._union(direct, assembled) is direct
    assert scrna_summary._union(None, direct) is direct
    # the genes ensemble's learned prior: only pbmc4k has records; ranges over its replicas
    assert "| 10x PBMC 4k | 3 | 2 | 1.2-2.4 | 1-3 | 0.50-0.90 |" in text
    assert not any(line.startswith("| worm neurons | 3 |") for line in text.splitlines())
    # label-free picks per fit: medoid (replica 1) vs purity pick (replica 0), test ARI
    assert "| 10x PBMC 4k | 0 | no | 0.70 | 0.60 | 0.70 | 0.50 | 0.61 |" in text


def test_scrna_summary_genes_budget_is_the_recipes():
    import scrna_summary

    # the default trains its genes 4,000 iterations up to K = 8 and 500 per cluster above
    assert [scrna_summary.genes_budget(k) for k in (2, 8, 9, 10, 16)] == [
        4000,
        4000,
        4500,
        5000,
        8000,
    ]


def test_scrna_variants_are_the_shipped_recipes():
    import scrna
    import scrna_summary

    variants = scrna.CLUSTERGAN_VARIANTS
    # the stored "default" / "auto" fits are the previous default's, kept as "lognorm_long"
    default = RECIPES["lognorm_long"]
    assert variants["default"] == variants["auto"] == default
    assert variants["fast"] == RECIPES["lognorm_fast"]
    assert variants["auto_r10"] == replace(default, n_runs=10)
    genes, pcs = ENSEMBLES["genes"], ENSEMBLES["pcs"]
    assert variants["auto_lr"].ensembles == (genes, pcs, ENSEMBLES["genes_fast"])
    # the summary assembles the default's consensus from its two ensembles run alone
    for name, ensemble in ((scrna_summary.GENES_PERK, genes), (scrna_summary.PCS, pcs)):
        assert variants[name.removeprefix("clustergan_")] == replace(default, ensembles=(ensemble,))
    # and the default's own fits ran as "fast_g3_p15"
    assert replace(variants["fast_g3_p15"], name="lognorm") == RECIPES["lognorm"]
    assert variants["paper"] == replace(RECIPES["paper"], max_iter=4000, n_runs=5)


def test_scrna_variants_reproduce_the_settings_of_the_stored_results():
    """Every stored ``clustergan_<variant>`` entry recorded the settings of the network it kept:
    its variant's recipe trains those (one of its ensembles' settings for a recipe of several)."""
    import scrna

    from scgan_cluster.model import GANEnsemble

    checked = 0
    for path in sorted(RESULTS.glob("scrna_*.json")):
        result = json.loads(path.read_text())
        for entry in result.get("methods", []):
            name = entry["method"]
            if not name.startswith("clustergan_") or "params" not in entry:
                continue
            base = name.removeprefix("clustergan_")
            for suffix in scrna.ENTRY_SUFFIXES:
                base = base.removesuffix(suffix)
            recipe = scrna.CLUSTERGAN_VARIANTS[base]
            k, recorded = result["n_clusters"], dict(entry["params"])
            recorded.pop("random_state")
            options = []
            for ensemble in recipe.ensembles:
                settings = recipe.ensemble_settings(ensemble, k) | {"architecture": "mlp"}
                params = GANEnsemble(k, **settings).params | {
                    "flavor": recipe.preprocessing,
                    "n_top_genes": min(recipe.n_top_genes, result["n_vars"]),
                }
                options.append(json.loads(json.dumps(params)))
            # entries recorded before a setting existed lack it
            assert any(_recorded_in(recorded, p) for p in options), (path.name, name)
            checked += 1
    assert checked > 100


def _recorded_in(recorded: dict, params: dict) -> bool:
    """Every setting of ``recorded`` has its value in ``params``; a setting (or a key of a dict
    setting, such as an architecture option) that ``recorded`` lacks was added after it."""
    for key, value in recorded.items():
        new = params.get(key, value)
        if isinstance(value, dict) and isinstance(new, dict):
            if not _recorded_in(value, new):
                return False
        elif new != value:
            return False
    return True


def test_build_model_refuses_a_recipe_settings_cannot_express():
    import scrna

    recipe = _small(RECIPES["lognorm"])
    assert scrna.build_model(recipe, 3, 0, "cpu", 60).recipe == recipe
    # genes capped at the data's
    assert scrna.build_model(recipe, 3, 0, "cpu", 10).recipe.n_top_genes == 10
    # a recipe-wide lr passed as a setting replaces the ensembles' own (resolve)
    with pytest.raises(ValueError, match="not Recipe"):
        scrna.build_model(replace(recipe, lr=1e-3), 3, 0, "cpu", 60)
    # so does a recipe-wide n_runs the ensembles' own replicas
    own = replace(
        recipe,
        n_runs=RECIPES["lognorm"].n_runs,
        ensembles=tuple(replace(e, n_runs=2) for e in recipe.ensembles),
    )
    assert scrna.build_model(own, 3, 0, "cpu", 60).recipe == own
    with pytest.raises(ValueError, match="not Recipe"):
        scrna.build_model(replace(own, n_runs=3), 3, 0, "cpu", 60)


def test_scrna_variant_fixes_its_own_budget(monkeypatch):
    import scrna

    adata = make_counts(n_per_cluster=40, n_clusters=3)
    truth = adata.obs["truth"].astype(str).to_numpy()
    split = paper_split(adata.n_obs, seed=0)
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy12", _small(RECIPES["paper"], max_iter=12))
    entries = scrna.clustergan_replicas("toy12", adata, truth, split, 3, 0)
    assert entries[0]["iterations"] == 12
    assert entries[0]["params"]["max_iter"] == 12  # what the kept network trained
    assert [r["device"] for r in entries[0]["runs"]] == ["cpu", "cpu"]  # where each trained
    coherence = entries[0]["selection"][0]["coherence"]
    assert set(coherence) == {"before", "after"}
    assert coherence["after"]["proba_argmax"] == 1.0  # one network: proba argmax is its label


def test_knn_agreement_known_answer():
    import scrna

    # two tight groups on a line; the last cell sits inside group 0 but is labelled 1
    latent = np.array([[0.0], [0.1], [0.2], [0.3], [10.0], [10.1], [10.2], [0.15]])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # k = 3: cells 0-3 vote 0 (right), 4-6 have neighbours {4,5,6,+one of group 0}: two 1s -> 1
    # (right); cell 7's neighbours are all group 0 -> 0 (wrong): 7 of 8
    assert scrna.knn_agreement(latent, labels, k=3) == 7 / 8


def _toy_h5ad(tmp_path):
    adata = make_counts(n_per_cluster=40, n_clusters=3)
    adata.obs["label"] = adata.obs["truth"].astype(str)
    adata.write_h5ad(tmp_path / "toy.h5ad")
    return ["--h5ad", str(tmp_path / "toy.h5ad"), "--methods", "--n-top-genes", "20"]


def test_scrna_n_clusters_other_than_the_classes(monkeypatch, tmp_path):
    import scrna

    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy3", _small(RECIPES["paper"], max_iter=3))
    argv = [*_toy_h5ad(tmp_path), "--clustergan", "toy3", "--out", str(tmp_path)]
    with pytest.raises(SystemExit):  # another K than the 3 classes, into the same file
        scrna.main([*argv, "--n-clusters", "5"])
    assert not (tmp_path / "scrna_toy.json").exists()
    scrna.main([*argv, "--n-clusters", "5", "--tag", "_k5", "--dump", str(tmp_path / "d")])
    result = json.loads((tmp_path / "scrna_toy_k5.json").read_text())
    assert (result["n_clusters"], result["n_classes"]) == (5, 3)
    z = np.load(tmp_path / "d" / "toy3_0.npz")
    assert z["latent_0_train"].shape[2] == 30 + 5  # zn + softmax over the 5 modes
    assert z["labels_0_train"].max() < 5


def test_scrna_device_flag_reaches_the_models(monkeypatch, tmp_path):
    import scrna

    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy3", _small(RECIPES["paper"], max_iter=3))
    argv = [*_toy_h5ad(tmp_path), "--clustergan", "toy3", "--out", str(tmp_path)]
    with pytest.raises(ValueError, match="Unknown device 'no-such-device'"):
        scrna.main([*argv, "--device", "no-such-device"])
    scrna.main([*argv, "--device", "cpu"])
    result = json.loads((tmp_path / "scrna_toy.json").read_text())
    assert [r["device"] for r in result["methods"][0]["runs"]] == ["cpu", "cpu"]


def test_scrna_append_pools_runs_of_new_seeds_and_refuses_repeated_ones(monkeypatch, tmp_path):
    import scrna

    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy3", _small(RECIPES["paper"], max_iter=3))
    argv = [*_toy_h5ad(tmp_path), "--clustergan", "toy3", "--out", str(tmp_path)]
    path = tmp_path / "scrna_toy.json"
    scrna.main([*argv, "--seed0", "0"])
    first = {m["method"]: m for m in json.loads(path.read_text())["methods"]}
    scrna.main([*argv, "--seed0", "10", "--append"])
    result = json.loads(path.read_text())
    both = {m["method"]: m for m in result["methods"]}
    assert [r["seed"] for r in both["clustergan_toy3"]["runs"]] == [0, 1, 10, 11]
    assert [r["seed"] for r in both["clustergan_toy3_consensus"]["runs"]] == [0, 10]
    assert len(both["clustergan_toy3"]["selection"]) == 2  # one record per fit
    runs = both["clustergan_toy3"]["runs"]
    assert both["clustergan_toy3"]["mean"]["ari"] == pytest.approx(
        np.mean([r["test"]["ari"] for r in runs]), abs=1e-4
    )
    assert runs[:2] == first["clustergan_toy3"]["runs"]  # the earlier runs untouched
    assert len(result["command"]) == 2
    with pytest.raises(ValueError, match=r"seeds \[10, 11\] are already in the result file"):
        scrna.main([*argv, "--seed0", "10", "--append"])
    before = path.read_text()

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before refusing")

    with monkeypatch.context() as m:
        m.setattr(scrna, "clustergan_replicas", no_fit)  # another split: refused before any fit
        with pytest.raises(SystemExit):
            scrna.main([*argv, "--seed0", "20", "--append", "--split-seed", "1"])
    assert path.read_text() == before
    scrna.main([*argv, "--seed0", "10"])  # without --append the entry is replaced
    again = {m["method"]: m for m in json.loads(path.read_text())["methods"]}
    assert [r["seed"] for r in again["clustergan_toy3"]["runs"]] == [10, 11]


def test_append_runs_refuses_other_settings_and_lists_machines():
    import scrna

    def entry(seeds, lr=1e-4, cpu="A"):
        runs = [
            {"seed": s, "seconds": 1.0, "val": {"purity": 0.5}, "test": {"nmi": s / 10, "ari": 0.1}}
            for s in seeds
        ]
        params = {"lr": lr, "random_state": seeds[0]}
        return {
            "method": "clustergan_x",
            "params": params,
            "replicas_per_fit": 2,
            "machine": {"cpu": cpu},
            **aggregate(runs),
        }

    merged = scrna.append_runs(entry([0, 1]), entry([5, 6], cpu="B"))
    assert merged["n_runs"] == 4
    assert merged["mean"]["nmi"] == pytest.approx(0.3)
    assert merged["machines"] == [{"cpu": "A"}, {"cpu": "B"}]
    assert "machines" not in scrna.append_runs(entry([0, 1]), entry([5, 6]))
    with pytest.raises(ValueError, match="settings differ"):
        scrna.append_runs(entry([0, 1]), entry([5, 6], lr=1e-3))
    # a recipe of several ensembles records the kept ensemble's params, which may differ in
    # the settings an ensemble sets (lr, max_iter, n_pcs)
    auto = [
        {**entry(seeds, lr), "method": "clustergan_auto_pooled"}
        for seeds, lr in (([0, 1], 1e-4), ([5, 6], 2e-3))
    ]
    assert scrna.append_runs(*auto)["n_runs"] == 4


def test_scrna_merge_adds_runs_from_a_result_written_elsewhere(monkeypatch, tmp_path):
    import scrna
    import scrna_merge

    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy3", _small(RECIPES["paper"], max_iter=3))
    (tmp_path / "repo").mkdir()
    (tmp_path / "gpu").mkdir()
    argv = [*_toy_h5ad(tmp_path), "--clustergan", "toy3"]
    scrna.main([*argv, "--out", str(tmp_path / "repo")])
    scrna.main([*argv, "--out", str(tmp_path / "gpu"), "--seed0", "4"])
    scrna_merge.main([str(tmp_path / "gpu" / "scrna_toy.json"), "--into", str(tmp_path / "repo")])
    merged = json.loads((tmp_path / "repo" / "scrna_toy.json").read_text())
    cons = {m["method"]: m for m in merged["methods"]}["clustergan_toy3_consensus"]
    assert [r["seed"] for r in cons["runs"]] == [0, 4]
    assert "| clustergan_toy3_consensus | 2 |" in (tmp_path / "repo" / "scrna_toy.md").read_text()
    with pytest.raises(ValueError, match="already in the result file"):  # merged once only
        scrna_merge.main(
            [str(tmp_path / "gpu" / "scrna_toy.json"), "--into", str(tmp_path / "repo")]
        )


def test_scrna_variant_fixes_its_replicas_per_fit(monkeypatch):
    import scrna

    adata = make_counts(n_per_cluster=40, n_clusters=3)
    truth = adata.obs["truth"].astype(str).to_numpy()
    split = paper_split(adata.n_obs, seed=0)
    toy = _small(RECIPES["paper"], max_iter=3, n_runs=3)
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toyr3", toy)
    entries = scrna.clustergan_replicas("toyr3", adata, truth, split, 3, 7)
    assert [r["seed"] for r in entries[0]["runs"]] == [7, 8, 9]
    assert entries[0]["replicas_per_fit"] == 3


def test_scrna_variant_may_take_the_recipes_budget_for_k(monkeypatch):
    import scrna

    adata = make_counts(n_per_cluster=40, n_clusters=3)
    truth = adata.obs["truth"].astype(str).to_numpy()
    split = paper_split(adata.n_obs, seed=0)
    # max(4, 3 per cluster * K = 3) = 9
    toy = _small(RECIPES["lognorm"], ensembles=(ENSEMBLES["genes"],), max_iter_per_cluster=3)
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toyk", toy)
    entries = scrna.clustergan_replicas("toyk", adata, truth, split, 3, 0)
    assert entries[0]["iterations"] == 9
    assert entries[0]["params"]["max_iter"] == 9


def test_scrna_recipe_of_two_ensembles_keeps_the_one_whose_replicas_agree_more(monkeypatch):
    import scrna

    adata = make_counts(n_per_cluster=40, n_clusters=3)
    truth = adata.obs["truth"].astype(str).to_numpy()
    split = paper_split(adata.n_obs, seed=0)
    genes, pcs = Ensemble("genes"), Ensemble("pcs", n_pcs=3, lr=2e-3)
    both = _small(RECIPES["lognorm"], max_iter=12, ensembles=(genes, pcs))
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toyAB", both)
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toyA", replace(both, ensembles=(genes,)))
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toyB", replace(both, ensembles=(pcs,)))
    fitted = scrna.clustergan_replicas("toyAB", adata, truth, split, 3, 0)
    fit = fitted[0]["selection"][0]
    assert fit["candidates"] == ["genes", "pcs"]
    # each ensemble fitted alone with the same seed: the kept one is the one whose replicas
    # agree more there
    alone = {
        name: scrna.clustergan_replicas(f"toy{key}", adata, truth, split, 3, 0)
        for name, key in (("genes", "A"), ("pcs", "B"))
    }
    agree = {name: np.mean(a[0]["selection"][0]["agreement"]) for name, a in alone.items()}
    assert fit["chosen"] == max(agree, key=agree.get)
    assert fit["candidate_agreement"] == [round(agree["genes"], 4), round(agree["pcs"], 4)]
    kept = alone[fit["chosen"]]
    assert fitted[2]["runs"][0]["test"] == kept[2]["runs"][0]["test"]
    assert fitted[2]["runs"][0]["train"] == kept[2]["runs"][0]["train"]
    assert fitted[0]["params"]["n_pcs"] == (3 if fit["chosen"] == "pcs" else None)
    # the vote of both ensembles' replicas is a fourth entry of the same fit, their
    # co-association linkage (the recipe's own pool) a fifth
    assert [e["method"] for e in fitted] == [
        "clustergan_toyAB" + s for s in ("", "_medoid", "_consensus", "_pooled", "_linkage")
    ]
    assert [e["method"] for e in kept][
        -1
    ] == f"clustergan_toy{'A' if fit['chosen'] == 'genes' else 'B'}_consensus"
    assert len(fit["pooled_weights"]) == 4
    assert all(0 <= w <= 1 for w in fit["pooled_weights"])
    assert set(fitted[3]["runs"][0]) >= {"val", "test", "train"}
    assert set(fitted[4]["runs"][0]) >= {"val", "test", "train"}
    assert fitted[4]["runs"][0]["seed"] == fitted[3]["runs"][0]["seed"]  # the same fit


def test_scrna_summary_paired_tables():
    import scrna_summary

    def run(seed, train, val):
        return {
            "seed": seed,
            "train": {"nmi": train[0], "ari": train[1]},
            "val": {"nmi": val[0], "ari": val[1]},
            "test": {"nmi": 0.5, "ari": 0.5},
        }

    def table(key, methods):
        return scrna_summary.paired_table([("toy", {}, methods)], *scrna_summary.PAIRED[key])

    kept = {"runs": [run(0, (0.70, 0.60), (0.80, 0.70)), run(5, (0.60, 0.50), (0.70, 0.60))]}
    pooled = {
        # seed 9 has no kept fit and is left out: one fit compared
        "runs": [run(0, (0.72, 0.55), (0.81, 0.74)), run(9, (0.1, 0.1), (0.1, 0.1))]
    }
    methods = {scrna_summary.KEPT: kept, scrna_summary.POOLED: pooled}
    lines = table("pool", methods)
    assert "| toy | 0 | 0.700 / 0.600 | 0.720 / 0.550 | 0.800 / 0.700 | 0.810 / 0.740 |" in lines
    assert not any(line.startswith("| toy | 9") for line in lines)
    assert lines[-2] == (
        "Pooled minus kept over 1 fits, mean (fits where pooled is higher): train NMI +0.020 (1), "
        "ARI -0.050 (0); validation NMI +0.010 (1), ARI +0.040 (1). On the test split of the "
        "same fits (not used for the choice): NMI +0.000 (0), ARI +0.000 (0)."
    )
    # no pooled entry, no table
    assert table("pool", {scrna_summary.KEPT: kept}) == []
    # the same comparison for 10 replicas per ensemble against the default's 5
    r10 = {"runs": [run(0, (0.75, 0.60), (0.85, 0.75))]}
    methods = {scrna_summary.POOLED: pooled, scrna_summary.POOLED_R10: r10}
    lines = table("replicas", methods)
    assert "| toy | 0 | 0.720 / 0.550 | 0.750 / 0.600 | 0.810 / 0.740 | 0.850 / 0.750 |" in lines
    assert lines[-2].startswith("10 replicas minus 5 replicas over 1 fits, mean (fits where 10 ")
    assert "train NMI +0.030 (1), ARI +0.050 (1)" in lines[-2]
    # and for the same replicas pooled by co-association linkage against the weighted vote
    link = {"runs": [run(0, (0.70, 0.65), (0.80, 0.75))]}
    methods = {scrna_summary.POOLED: pooled, scrna_summary.LINKAGE: link}
    lines = table("linkage", methods)
    assert "| toy | 0 | 0.720 / 0.550 | 0.700 / 0.650 | 0.810 / 0.740 | 0.800 / 0.750 |" in lines
    assert lines[-2].startswith("Linkage minus vote over 1 fits, mean (fits where linkage is ")
    assert "train NMI -0.020 (0), ARI +0.100 (1)" in lines[-2]
    # and 10 replicas against 5 for the default's readout (linkage)
    link10 = {"runs": [run(0, (0.69, 0.70), (0.82, 0.70))]}
    methods = {scrna_summary.LINKAGE: link, scrna_summary.LINKAGE_R10: link10}
    lines = table("replicas_linkage", methods)
    assert "| toy | 0 | 0.700 / 0.650 | 0.690 / 0.700 | 0.800 / 0.750 | 0.820 / 0.700 |" in lines
    assert (
        "train NMI -0.010 (0), ARI +0.050 (1); validation NMI +0.020 (1), ARI -0.050 (0)"
        in (lines[-2])
    )
    # all of them in PAIRED's order, each table once
    methods = {
        scrna_summary.KEPT: kept,
        scrna_summary.POOLED: pooled,
        scrna_summary.LINKAGE: link,
        scrna_summary.POOLED_R10: r10,
        scrna_summary.LINKAGE_R10: link10,
    }
    lines = scrna_summary.paired_tables([("toy", {}, methods)])
    headings = [line for line in lines if line.startswith("**")]
    assert headings == [scrna_summary.PAIRED[k][2] for k in scrna_summary.PAIRED]


def test_scrna_dump_replays_the_recorded_readouts(monkeypatch, tmp_path):
    import scrna
    import scrna_readout

    toy = _small(RECIPES["lognorm"], n_runs=3, beta_r=1.0)
    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy_auto", toy)
    adata = make_counts(n_per_cluster=40, n_clusters=4, seed=3)
    truth = adata.obs["truth"].astype(str).to_numpy()
    split = paper_split(adata.n_obs, seed=0)
    entries = scrna.clustergan_replicas("toy_auto", adata, truth, split, 6, 7, dump=tmp_path)
    recorded = {e["method"]: e["runs"][0] for e in entries}
    z = np.load(tmp_path / "toy_auto_7.npz")
    assert z["labels_0_train"].shape == (len(split["train"]), 3)
    assert z["latent_1_test"].shape == (len(split["test"]), 3, 30 + 6)  # zn + softmax zc
    assert z["truth_val"].tolist() == truth[split["val"]].tolist()
    assert int(z["random_state"]) == 7
    # the readouts of the dump label the cells as the fit's entries did
    scored = scrna_readout.score_dump(tmp_path / "toy_auto_7.npz", list(scrna_readout.READOUTS))
    for readout, method in (
        ("kept", "clustergan_toy_auto_consensus"),
        ("pooled", "clustergan_toy_auto_pooled"),
        ("linkage", "clustergan_toy_auto_linkage"),
    ):
        for s in ("train", "val", "test"):
            assert scored["readouts"][readout][s] == recorded[method][s]
    for r in scored["readouts"].values():
        assert -1.0 <= r["fit"] <= 1.0
        assert 0.0 <= r["test"]["nmi"] <= 1.0
    # the first ensemble alone: "both" and the kept ensemble are that ensemble's replicas
    kept, both, _, _ = scrna_readout.load_fit(tmp_path / "toy_auto_7.npz", n_candidates=1)
    for s in ("train", "val", "test"):
        assert both[s]["labels"].tolist() == z[f"labels_0_{s}"].tolist()
        assert kept[s]["labels"].tolist() == z[f"labels_0_{s}"].tolist()
        np.testing.assert_array_equal(both[s]["latent"], z[f"latent_0_{s}"])


def _write_dump(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A dump of two ensembles of three replicas over three groups of cells: every replica
    relabels the groups with its own ids, except replica 2 of each ensemble, which is noise."""
    arrays, truth = {}, {}
    for s, n in (("train", 30), ("val", 12), ("test", 12)):
        groups = np.repeat(np.arange(3), n // 3)
        truth[s] = np.array(["a", "b", "c"])[groups]
        for c, perms in enumerate((((0, 1, 2), (2, 0, 1)), ((1, 2, 0), (0, 2, 1)))):
            noise = rng.integers(0, 3, size=n)
            labels = np.stack([np.asarray(p)[groups] for p in perms] + [noise], axis=1)
            arrays[f"labels_{c}_{s}"] = labels.astype(np.int16)
            arrays[f"latent_{c}_{s}"] = rng.normal(size=(n, 3, 4)).astype(np.float32)
        arrays[f"truth_{s}"] = truth[s]
    arrays |= {"agreement": np.array([0.3, 0.4]), "chosen": np.asarray(1), "n_clusters": 3}
    np.savez_compressed(path, **arrays, random_state=np.asarray(0))
    return truth


def test_scrna_readouts_recover_groups_the_replicas_agree_on(tmp_path):
    import scrna_readout

    _write_dump(tmp_path / "toy_0.npz", np.random.default_rng(0))
    readouts = ["kept", "pooled", "linkage"]
    scored = scrna_readout.score_dump(tmp_path / "toy_0.npz", readouts)
    # four of the six replicas (two of the kept ensemble's three) put the cells in the groups
    for name in readouts:
        for s in ("train", "val", "test"):
            assert scored["readouts"][name][s]["ari"] == 1.0, (name, s)
    # the kept ensemble is the recorded choice (the second); with one ensemble, the first
    kept, _, truth, k = scrna_readout.load_fit(tmp_path / "toy_0.npz")
    z = np.load(tmp_path / "toy_0.npz")
    assert kept["val"]["labels"].tolist() == z["labels_1_val"].tolist()
    assert k == 3
    assert truth["test"].tolist() == z["truth_test"].tolist()
    kept, both, _, _ = scrna_readout.load_fit(tmp_path / "toy_0.npz", n_candidates=1)
    assert kept["train"]["labels"].tolist() == z["labels_0_train"].tolist()
    assert both["train"]["labels"].shape == (30, 3)


def test_readout_differences_known_answer():
    import scrna_readout

    def fit(kept, pooled):
        return {
            "readouts": {
                "kept": {s: {"nmi": kept, "ari": kept} for s in ("train", "val", "test")},
                "pooled": {s: {"nmi": pooled, "ari": pooled} for s in ("train", "val", "test")},
            }
        }

    table = scrna_readout.differences([fit(0.5, 0.4), fit(0.6, 0.8), fit(0.9, 0.6)])
    # kept - pooled: +0.1, -0.2, +0.3: mean +0.0667, higher in 2 of 3 fits
    assert table["kept"]["val_ari"] == (0.0667, 2)
    assert table["pooled"]["test_nmi"] == (0.0, 0)
    table = scrna_readout.differences([fit(0.5, 0.4), fit(0.6, 0.8)], against="kept")
    assert table["pooled"]["train_nmi"] == (0.05, 1)


def test_scrna_readout_records_a_readout_as_the_fits_entry(monkeypatch, tmp_path):
    import scrna
    import scrna_readout

    monkeypatch.setitem(scrna.CLUSTERGAN_VARIANTS, "toy_auto", _small(RECIPES["lognorm"]))
    argv = [*_toy_h5ad(tmp_path), "--clustergan", "toy_auto", "--out", str(tmp_path)]
    scrna.main([*argv, "--dump", str(tmp_path / "dumps" / "toy")])
    path = tmp_path / "scrna_toy.json"
    result = json.loads(path.read_text())
    recorded = {m["method"]: m for m in result["methods"]}["clustergan_toy_auto_linkage"]
    # a fit scored before the entry existed: its dump gives the entry back, the same scores
    result["methods"] = [m for m in result["methods"] if m["method"] != recorded["method"]]
    path.write_text(json.dumps(result))
    dump = str(tmp_path / "dumps" / "toy" / "toy_auto_0.npz")
    cli = [dump, "--record", "linkage", "--results", str(tmp_path)]
    scrna_readout.main(cli)
    back = {m["method"]: m for m in json.loads(path.read_text())["methods"]}
    entry = back["clustergan_toy_auto_linkage"]
    assert entry["runs"] == recorded["runs"]
    assert entry["mean"] == recorded["mean"]
    assert list(back).index(entry["method"]) == list(back).index("clustergan_toy_auto_pooled") + 1
    scrna_readout.main(cli)  # recorded already: skipped, not doubled
    again = {m["method"]: m for m in json.loads(path.read_text())["methods"]}
    assert again["clustergan_toy_auto_linkage"]["n_runs"] == 1
    with pytest.raises(ValueError, match="with seed 7 is not in the result file"):
        scrna_readout.record(json.loads(path.read_text()), {}, "toy_auto", 7, "linkage")
    # with a fit's later ensembles against without them: the table of the comparison
    out = tmp_path / "first1.json"
    scrna_readout.main(
        [dump, "--readouts", "linkage", "--against", "linkage", "--against-first", "1"]
        + ["--out", str(out)]
    )
    table = json.loads(out.read_text())["against_linkage_first1"]
    assert set(table) == {"linkage", "picked", "linkage_first1"}
    assert table["linkage_first1"]["val_nmi"] == [0.0, 0]
    with pytest.raises(SystemExit):
        scrna_readout.main([*cli, "--against-first", "1"])


def test_verdict_rerun_compares_the_same_seed(tmp_path):
    import verdict_rerun

    def result(test, train, seed, coherence=None):
        entry = {
            "method": "clustergan_auto_linkage",
            "runs": [{"seed": seed, "test": test, "train": train}],
        }
        methods = [entry]
        if coherence is not None:
            methods.append({"method": "clustergan_auto", "selection": [{"coherence": coherence}]})
        return {"methods": methods, "machine": {"cpu": "x"}}

    same = {"nmi": 0.8, "ari": 0.7}
    coherence = {
        "before": {"proba_argmax": 0.1, "knn15": 0.5},
        "after": {"proba_argmax": 1.0, "knn15": 0.95},
    }
    (tmp_path / "verdict_rerun").mkdir()
    (tmp_path / "scrna_a.json").write_text(json.dumps(result(same, same, 30)))
    (tmp_path / "verdict_rerun" / "scrna_a.json").write_text(
        json.dumps(result(same, {"nmi": 0.6, "ari": 0.5}, 30, coherence))
    )
    (tmp_path / "scrna_b.json").write_text(json.dumps(result(same, same, 31)))  # other seed
    (tmp_path / "verdict_rerun" / "scrna_b.json").write_text(
        json.dumps(result({"nmi": 0.1, "ari": 0.0}, same, 30, coherence))
    )
    (row_a, row_b) = verdict_rerun.rows(tmp_path)
    assert row_a["stored"]["test"] == row_a["rerun"]["test"]
    assert row_b["stored"] is None  # no stored fit of that seed
    text = verdict_rerun.markdown([row_a, row_b])
    assert "| a | 30 | 0.8000 / 0.7000 | 0.8000 / 0.7000 | yes |" in text
    assert "| b | 30 | not stored | 0.1000 / 0.0000 | no |" in text
    assert "0.100 / 1.000 | 0.500 / 0.950 |" in text


def test_scrna_crosstab_names_the_merged_populations(tmp_path):
    import scrna_crosstab

    truth = np.repeat(np.array(["a", "b", "c"]), 20)
    right = np.repeat([0, 1, 2], 20)
    merged = np.repeat([0, 0, 1], 20)  # b joins a; c is alone
    path = tmp_path / "fit.npz"
    np.savez(
        path,
        n_clusters=np.asarray(3),
        random_state=np.asarray(0),
        labels_0_train=np.stack([right, right], axis=1).astype(np.int16),
        labels_1_train=np.stack([right, merged], axis=1).astype(np.int16),
        truth_train=truth,
    )
    text = scrna_crosstab.crosstab(path)
    # three of four replicas separate the three populations: so does the pool
    assert "pooled NMI 1.000 / ARI 1.000" in text
    assert "(0, 0): 1.000 / 1.000" in text
    lines = text.splitlines()
    merged_line = next(line for line in lines if line.startswith("  (1, 1):"))
    nmi = float(merged_line.split(":")[1].split("/")[0])
    assert 0.5 < nmi < 1.0
    # every population's largest cluster holds all of it and nothing else
    assert sum(line.endswith("(1.00; 1.00)") for line in lines) == 3


def test_bench_default_table_known_answer(tmp_path):
    import bench_default

    def method(seconds, nmi, ari):
        return {"seconds": seconds, "nmi": nmi, "ari": ari}

    result = {
        "flavor": "lognorm_fast",
        "reference_flavor": "lognorm",
        "naive_ms_per_iter": {"start": 20.0, "end": 30.0, "mean": 25.0},
        "machine": {"cpu": "AMD EPYC", "torch_threads": 2, "torch": "2.13.0+cpu"},
        "datasets": [
            {
                "dataset": "toy",
                "n_obs": 3238,
                "n_clusters": 8,
                "methods": {
                    "clustergan": method(100.0, 0.8, 0.7),
                    "clustergan_reference": method(700.0, 0.79, 0.72),
                    "scanpy_leiden": method(10.0, 0.75, 0.6),
                    "pca_kmeans": method(5.0, 0.7, 0.5),
                },
            }
        ],
        "demo": {
            "command": "scgan-cluster demo",
            "seconds": 80.0,
            "clustergan_seconds": 60.0,
            "clustergan": {"nmi": 0.6, "ari": 0.5},
            "leiden": {"nmi": 0.55, "ari": 0.45},
        },
    }
    text = bench_default.write_table(result, tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text() == text
    assert "| lognorm_fast: s (naive its) | NMI / ARI | lognorm: s (naive its) |" in text
    # 100 s at 25 ms per naive iteration: 4,000 naive iterations; the reference 28,000, 7x
    row = (
        "| toy | 3,238 | 8 | 100 (4,000) | 0.800 / 0.700 | 700 (28,000) | 0.790 / 0.720 | 1 / 7.0 |"
    )
    assert row in text
    assert "| 10, 0.750 / 0.600 | 5, 0.700 / 0.500 |" in text
    assert "80 s in all, 60 s of it ClusterGAN" in text
    assert "20.0 ms/it at the start, 30.0 at the end" in text


def test_the_fast_candidate_trains_the_default():
    import scrna

    fast, c2 = scrna.CLUSTERGAN_VARIANTS["fast"], scrna.CLUSTERGAN_VARIANTS["fast_c2"]
    assert fast == RECIPES["lognorm_fast"]
    for k in (3, 8, 16):
        for a, b in zip(fast.ensembles, c2.ensembles, strict=True):
            assert fast.ensemble_settings(a, k) == c2.ensemble_settings(b, k)
    assert scrna.CLUSTERGAN_VARIANTS["auto"] == RECIPES["lognorm_long"]


def test_scrna_allocation_draws_replicas_across_fits_and_scores_no_test_cells(tmp_path, capsys):
    import scrna_allocation

    # two fits of one dataset (a folder), each two ensembles of three replicas, one of them noise
    rng = np.random.default_rng(0)
    (tmp_path / "toy").mkdir()
    for seed in (0, 1):
        _write_dump(tmp_path / "toy" / f"fit_{seed}.npz", rng)
    data = scrna_allocation.load_replicas(sorted((tmp_path / "toy").glob("*.npz")))["toy"]
    assert [e["train"].shape for e in data["ensembles"]] == [(30, 6), (30, 6)]  # 2 fits x 3
    assert data["k"] == 3
    assert data["fits"] == 2
    # replicas 0 and 1 of every fit find the groups: drawing only from them scores 1
    clean = {
        **data,
        "ensembles": [{s: e[s][:, [0, 1, 3, 4]] for s in e} for e in data["ensembles"]],
    }
    rows = scrna_allocation.draw_scores(clean, (2, 3), draws=3)
    assert rows.shape == (3, 4)
    np.testing.assert_allclose(rows, 1.0)
    # drawn from the noise replicas alone (replica 2 of every fit), the pool finds no groups
    noise = {**data, "ensembles": [{s: e[s][:, [2, 5]] for s in e} for e in data["ensembles"]]}
    assert scrna_allocation.draw_scores(noise, (1, 1), draws=2).max() < 0.5
    with pytest.raises(ValueError, match="more replicas than the dumps hold"):
        scrna_allocation.draw_scores(data, (7, 1), draws=1)
    # the command line: allocations parsed, test cells never scored or written
    out = tmp_path / "alloc.json"
    scrna_allocation.main(
        [
            *map(str, sorted((tmp_path / "toy").glob("*.npz"))),
            "--allocations",
            "2+2",
            "0+4",
            "--draws",
            "2",
            "--out",
            str(out),
        ]
    )
    written = json.loads(out.read_text())
    assert set(written["allocations"]) == {"2+2", "0+4"}
    assert set(written["allocations"]["0+4"]["toy"]) == {
        "train_nmi",
        "train_ari",
        "val_nmi",
        "val_ari",
        "mean",
        "sd_of_draws",
    }
    printed = [
        line for line in capsys.readouterr().out.splitlines() if not line.startswith("wrote")
    ]
    assert printed
    assert not any("test" in line for line in printed)
    for bad in ("3", "a+b", "1+0", "-1+4"):
        with pytest.raises(argparse.ArgumentTypeError):
            scrna_allocation.parse_allocation(bad)
