"""Recipes: typed, frozen, torch-free settings shared by tl, the model and the benchmarks."""

import dataclasses
import subprocess
import sys

import pytest

from scgan_cluster.recipes import ENSEMBLES, MODEL_ARGS, RECIPES, Ensemble, Recipe, resolve


def test_the_default_and_the_paper_recipe():
    default, paper = RECIPES["lognorm"], RECIPES["paper"]
    assert (default.preprocessing, default.n_top_genes, default.prior) == (
        "lognorm",
        2000,
        "learned",
    )
    assert (default.n_runs, default.beta_r, default.pool) == (5, 1.0, "linkage")
    assert [e.name for e in default.ensembles] == ["genes", "pcs"]
    assert (paper.preprocessing, paper.n_top_genes, paper.prior) == ("paper", 720, "uniform")
    assert (paper.n_runs, paper.beta_r, paper.n_replicas) == (1, 0.0, 1)
    # network settings at None: the architecture's paper values
    assert paper.lr is None
    assert paper.n_latent is None


def test_the_default_spends_the_fast_budget_on_replicas_of_the_components():
    default = RECIPES["lognorm"]
    genes, pcs = default.ensembles
    assert [default.replicas_of(e) for e in default.ensembles] == [3, 15]
    assert default.n_replicas == 18
    for k in (3, 16):
        g, p = (default.ensemble_settings(e, k) for e in default.ensembles)
        assert (g["lr"], g["max_iter"], g["n_critic"], g["n_pcs"], g["n_runs"]) == (
            5e-4,
            1000,
            2,
            None,
            3,
        )
        assert (p["lr"], p["max_iter"], p["n_critic"], p["n_pcs"], p["n_runs"]) == (
            2e-3,
            1000,
            2,
            50,
            15,
        )
    # the rest of the previous default ("lognorm_long", kept reachable) is unchanged
    same = ("preprocessing", "n_top_genes", "prior", "prior_floor", "beta_r", "pool", "assign")
    assert all(getattr(default, f) == getattr(RECIPES["lognorm_long"], f) for f in same)


def test_the_fast_recipe_is_the_previous_default_trained_shorter():
    fast, default = RECIPES["lognorm_fast"], RECIPES["lognorm_long"]
    assert (fast.lr, fast.n_critic, fast.max_iter, fast.max_iter_per_cluster) == (2e-3, 2, 1000, 0)
    assert [e.name for e in fast.ensembles] == ["genes", "pcs"]
    same = ("preprocessing", "n_top_genes", "n_runs", "prior", "beta_r", "pool", "assign")
    assert all(getattr(fast, f) == getattr(default, f) for f in same)
    for k in (3, 16):
        for e in fast.ensembles:
            settings = fast.ensemble_settings(e, k)
            assert (settings["lr"], settings["max_iter"], settings["n_critic"]) == (2e-3, 1000, 2)
    assert fast.ensemble_settings(fast.ensembles[1], 3)["n_pcs"] == 50
    assert resolve("lognorm_fast") == fast


@pytest.mark.parametrize(
    ("flavor", "k", "ensemble", "expected"),
    [
        ("lognorm_long", 3, "genes", 4000),
        ("lognorm_long", 8, "genes", 4000),
        ("lognorm_long", 10, "genes", 5000),
        ("lognorm_long", 16, "genes", 8000),
        ("lognorm_long", 16, "pcs", 2000),
        ("lognorm", 16, "genes", 1000),
        ("lognorm_fast", 16, "genes", 1000),
        ("paper", 16, "genes", 8000),
    ],
)
def test_budget_grows_with_k_except_where_an_ensemble_fixes_it(flavor, k, ensemble, expected):
    assert RECIPES[flavor].budget(k, ENSEMBLES[ensemble]) == expected


def test_a_passed_max_iter_lr_or_n_critic_applies_to_every_ensemble():
    recipe = resolve("lognorm", max_iter=300, lr=1e-3, n_critic=3)
    for e in recipe.ensembles:
        assert recipe.budget(16, e) == 300
        settings = recipe.ensemble_settings(e, 16)
        assert (settings["lr"], settings["n_critic"]) == (1e-3, 3)
    # unchanged otherwise: the components keep their own lr and budget
    default = RECIPES["lognorm_long"]
    pcs = default.ensemble_settings(ENSEMBLES["pcs"], 3)
    assert (pcs["lr"], pcs["max_iter"], pcs["n_pcs"], pcs["n_critic"]) == (2e-3, 2000, 50, None)
    genes = default.ensemble_settings(ENSEMBLES["genes"], 3)
    assert (genes["lr"], genes["max_iter"], genes["n_pcs"]) == (None, 4000, None)
    # an ensemble's own critic steps win over the recipe's
    own = Ensemble("few", n_critic=1)
    assert RECIPES["lognorm_fast"].ensemble_settings(own, 4)["n_critic"] == 1
    with pytest.raises(ValueError, match="n_critic must be an integer >= 1"):
        Ensemble("x", n_critic=0)


def test_an_ensemble_can_set_its_own_replicas_and_a_passed_n_runs_sets_every_ensembles():
    recipe = dataclasses.replace(
        RECIPES["lognorm_fast"],
        ensembles=(Ensemble("genes", n_runs=3), Ensemble("pcs", n_pcs=50)),
    )
    assert [recipe.replicas_of(e) for e in recipe.ensembles] == [3, 5]  # the recipe's 5
    assert recipe.n_replicas == 8
    assert [recipe.ensemble_settings(e, 8)["n_runs"] for e in recipe.ensembles] == [3, 5]
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    # a recipe written before ensembles had n_runs reads back with the recipe's
    old = recipe.to_dict()
    for e in old["ensembles"]:
        del e["n_runs"]
    assert Recipe.from_dict(old).n_replicas == 10
    # passed to a fit, n_runs applies to every ensemble
    passed = resolve("lognorm_fast", n_runs=2, ensembles=list(recipe.ensembles))
    assert [passed.replicas_of(e) for e in passed.ensembles] == [2, 2]
    with pytest.raises(ValueError, match="n_runs must be an integer >= 1"):
        Ensemble("x", n_runs=0)


def test_a_final_learning_rate_applies_to_every_ensemble_from_its_own_rate():
    recipe = resolve("lognorm", lr_final=5e-5)
    rates = [
        (s["lr"], s["lr_final"]) for s in (recipe.ensemble_settings(e, 8) for e in recipe.ensembles)
    ]
    assert rates == [(5e-4, 5e-5), (2e-3, 5e-5)]  # each ensemble from its own rate
    assert RECIPES["lognorm"].ensemble_settings(ENSEMBLES["genes"], 8)["lr_final"] is None
    with pytest.raises(ValueError, match="lr_final must be a finite number > 0"):
        resolve("lognorm", lr_final=0.0)


def test_prior_update_every_reaches_every_ensemble():
    assert RECIPES["lognorm"].ensemble_settings(ENSEMBLES["pcs"], 8)["prior_update_every"] == 500
    recipe = resolve("lognorm", prior_update_every=125)
    assert {recipe.ensemble_settings(e, 8)["prior_update_every"] for e in recipe.ensembles} == {125}
    with pytest.raises(ValueError, match="prior_update_every must be an integer >= 1"):
        resolve("lognorm", prior_update_every=0)


def test_resolve_overrides_and_errors():
    assert resolve("lognorm") == RECIPES["lognorm"]
    assert resolve("lognorm", lr=None) == RECIPES["lognorm"]  # None: not passed
    third = resolve("lognorm", ensembles=["genes", "pcs", "genes_fast"])
    assert [e.name for e in third.ensembles] == ["genes", "pcs", "genes_fast"]
    assert third.n_replicas == 15
    own = resolve("paper", ensembles=[Ensemble("pc20", n_pcs=20)])
    assert own.ensembles[0].n_pcs == 20
    with pytest.raises(ValueError, match="flavor must be one of"):
        resolve("seurat")
    with pytest.raises(TypeError, match="Unknown settings"):
        resolve("lognorm", n_clusters=3)
    with pytest.raises(ValueError, match="Unknown ensemble"):
        resolve("lognorm", ensembles=["genes", "tsne"])
    with pytest.raises(ValueError, match="names must differ"):
        resolve("lognorm", ensembles=["genes", "genes"])
    with pytest.raises(ValueError, match="betas must be two numbers"):
        resolve("lognorm", betas=(0.5, 1.5))
    with pytest.raises(ValueError, match="n_pcs must be an integer >= 1"):
        Ensemble("x", n_pcs=0)
    assert "lr" in MODEL_ARGS
    assert "name" not in MODEL_ARGS


def test_recipes_are_frozen_and_a_variant_is_a_replaced_field():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["lognorm"].n_runs = 10
    variant = dataclasses.replace(RECIPES["lognorm"], n_runs=10)
    assert variant.n_runs == 10
    assert RECIPES["lognorm"].n_runs == 5
    with pytest.raises(ValueError, match="pool must be one of"):
        dataclasses.replace(RECIPES["lognorm"], pool="mean")


@pytest.mark.parametrize("name", ["lognorm", "lognorm_long", "lognorm_fast", "paper"])
def test_to_dict_from_dict_roundtrip(name):
    recipe = resolve(name, betas=(0.4, 0.8), architecture_options={"hidden": (64, 64)})
    back = Recipe.from_dict(recipe.to_dict())
    assert back == recipe
    with pytest.raises(ValueError, match="Unknown recipe fields"):
        Recipe.from_dict({**recipe.to_dict(), "colour": "red"})


def test_recipes_import_without_torch():
    import scgan_cluster.recipes as recipes

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('recipes', {recipes.__file__!r}); "
            "m = importlib.util.module_from_spec(spec); sys.modules['recipes'] = m; "
            "spec.loader.exec_module(m); print('torch' in sys.modules, m.RECIPES['paper'].n_runs)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "1"]
