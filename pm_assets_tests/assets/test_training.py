"""Training, the champion/challenger gate, scoring and the worklist, through Dagster on a small simulation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetRecordsFilter

from pm_assets.core.model import PROBA_COLUMNS
from pm_assets.core.registry import LocalRegistry
from pm_assets_tests.conftest import (
    PIPELINE_DAYS,
    check_evaluations,
    materialization_metadata,
    run_assets,
    step_failures,
    stored_partitions,
)

FIRST, LAST = PIPELINE_DAYS
#: A model that barely learns: one boosting iteration at a tiny learning rate.
WEAK = {"max_iter": 1, "learning_rate": 0.001}
#: Another weak model (not the same training as WEAK, which would reuse its version).
WORSE = {"max_iter": 2, "learning_rate": 0.001}


def train(instance, root: Path, **config):
    """``failure_model`` trained on ``root``'s warehouse into ``root/models`` with ``config``; a failure does not
    raise."""
    return run_assets(
        instance,
        root,
        selection=["failure_model"],
        run_config={"ops": {"failure_model": {"config": config}}},
        raise_on_error=False,
    )


def score(instance, root: Path, first: str = FIRST, last: str = LAST):
    """``scores`` and ``maintenance_worklist`` for the days ``first`` to ``last`` by ``root/models``' champion."""
    return run_assets(instance, root, selection=["scores", "maintenance_worklist"], days=(first, last))


@pytest.fixture()
def project(simulated_pipeline, tmp_path) -> Path:
    """This test's own project folder: a copy of the simulated pipeline (features and labels built), no model yet."""
    root = tmp_path / "project"
    shutil.copytree(simulated_pipeline, root)
    return root


@pytest.fixture(scope="module")
def champion_models(simulated_pipeline, instance, tmp_path_factory) -> Path:
    """A registry whose champion is the default training's model: trained once for the module, in a copy."""
    root = tmp_path_factory.mktemp("champion") / "project"
    shutil.copytree(simulated_pipeline, root)
    assert train(instance, root).success
    return root / "models"


@pytest.fixture()
def with_champion(project, champion_models) -> Path:
    """This test's project folder with its own copy of :func:`champion_models`."""
    shutil.copytree(champion_models, project / "models")
    return project


def _gate(result):
    return check_evaluations(result)[("failure_model", "champion_gate")]


def _meta(result) -> dict:
    return materialization_metadata(result, "failure_model")[None]


def test_first_model_becomes_champion_better_is_promoted_worse_is_not(project, instance):
    registry = LocalRegistry(project / "models")

    first = train(instance, project, **WEAK)  # the first model is champion whatever its quality
    assert first.success and _gate(first).passed and registry.champion() == "v0001"
    weak_ap = _meta(first)["average_precision"]

    better = train(instance, project)
    assert better.success and _gate(better).passed
    assert registry.champion() == "v0002" and _meta(better)["average_precision"] > weak_ap + 0.1

    worse = train(instance, project, **WORSE)
    gate = _gate(worse)
    # a decision, not a failure: the run succeeds, the check warns, the champion stays
    assert worse.success and not gate.passed and gate.severity == AssetCheckSeverity.WARN
    assert gate.description.startswith("kept the champion: ")
    assert registry.champion() == "v0002"  # unchanged
    assert _meta(worse)["promoted_to_champion"] is False and _meta(worse)["gate_decision"].startswith("kept v0002: ")
    assert registry.card("v0003")["gate"]["promoted"] is False
    decision = registry.gate_decision("v0003")
    assert decision["promoted"] is False and decision["champion_before"] == "v0002"
    assert decision["challenger_average_precision"] < decision["champion_average_precision"] - decision["tolerance"]
    # every version is registered with its card, promoted or not
    assert registry.versions() == ["v0001", "v0002", "v0003"]
    card = registry.card("v0003")
    assert card["training_window"]["cutoff"] and card["data_versions"]["train_rows_sha256"]
    assert f"{card['metrics']['average_precision']:.4g}" == f"{_meta(worse)['average_precision']:.4g}"  # shown rounded


def test_training_is_deterministic_and_the_same_training_reuses_its_version(project, instance):
    registry = LocalRegistry(project / "models")
    a = _meta(train(instance, project, max_iter=30))
    b = _meta(train(instance, project, max_iter=30))
    for key in ("average_precision", "roc_auc", "brier", "ece", "macro_f1_components"):
        assert a[key] == b[key], key
    # one version: the second run trained the same model from the same rows, parameters and code, and reused it
    assert registry.versions() == [a["version"]] and b["version"] == a["version"]
    assert registry.find(registry.card(a["version"])["fingerprint"]) == a["version"]
    c = _meta(train(instance, project, max_iter=31))  # other parameters: a new version
    assert c["version"] != a["version"] and registry.versions()[-1] == c["version"]


def test_a_champion_that_cannot_be_loaded_fails_the_step_and_leaves_no_version(with_champion, instance):
    registry = LocalRegistry(with_champion / "models")
    before, champion = registry.versions(), registry.champion()
    artifact = registry.root / champion / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")  # this test's copy of the registry
    result = train(instance, with_champion, max_iter=3, learning_rate=0.001)  # not the champion's training
    assert not result.success
    assert "was changed after registration" in step_failures(result)["failure_model"]
    # nothing registered, nothing half-written: no folder without its decision, no temporary folder
    assert registry.versions() == before and registry.champion() == champion
    assert sorted(p.name for p in registry.root.iterdir()) == sorted([*before, "champion"])


def test_scores_are_probabilities_from_the_champion_and_the_worklist_ranks_them(with_champion, instance):
    root = with_champion
    champion = LocalRegistry(root / "models").champion()
    result = score(instance, root, "2015-04-01", LAST)
    assert result.success
    evaluations = {check: e for (_, check), e in check_evaluations(result).items()}
    assert set(evaluations) == {"valid_probabilities", "scored_by_the_champion", "consistent_ranking"}
    assert all(e.passed for e in evaluations.values())
    assert evaluations["scored_by_the_champion"].description == f"every row by {champion}"
    scores = stored_partitions(root, "scores")
    assert scores["datetime"].min() >= pd.Timestamp("2015-04-01")  # only the days this test scored
    scored = scores[scores["scored"]]
    assert len(scored) > 0.9 * len(scores)
    proba = scored[PROBA_COLUMNS].to_numpy()
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(scored["p_any"], 1 - scored["p_none"], atol=1e-12)
    assert (scored["model_version"] == champion).all()
    assert scores.loc[~scores["scored"], "p_any"].isna().all()
    worklist = stored_partitions(root, "maintenance_worklist")
    for _, day in worklist.groupby("date"):
        assert list(day["rank"]) == list(range(1, len(day) + 1))
        assert day["expected_saving"].is_monotonic_decreasing
        assert ((day["action"] == "inspect") == (day["expected_saving"] > 0)).all()
        # the worst snapshot of the day for each machine
        day_scores = scored[scored["datetime"].dt.floor("D") == day["date"].iloc[0]]
        worst = day_scores.groupby("machineID")["p_any"].max()
        np.testing.assert_allclose(day.set_index("machineID")["p_any"].sort_index(), worst.sort_index())


def test_predict_cli_scores_one_machine_with_the_champion(with_champion, instance, capsys):
    import json

    from pm_assets.cli import main

    root = with_champion
    args = ["predict", "--machine", "4", "--registry", str(root / "models"), "--warehouse", str(root / "warehouse")]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["machineID"] == 4 and result["snapshot"] == "2015-04-30 21:00:00"
    assert result["model_version"] == LocalRegistry(root / "models").champion()
    assert result["p_any"] == pytest.approx(1 - result["p_none"])
    assert sum(result[c] for c in PROBA_COLUMNS) == pytest.approx(1.0)
    # the same snapshot scored by the scores asset gives the same probability
    assert score(instance, root, "2015-04-30", LAST).success
    stored = pd.read_parquet(root / "warehouse" / "scores" / "2015-04-30.parquet")
    row = stored[(stored["machineID"] == 4) & (stored["datetime"] == pd.Timestamp("2015-04-30 21:00"))]
    assert row["p_any"].iloc[0] == pytest.approx(result["p_any"], abs=1e-12)
    assert main([*args[:2], "999", *args[3:]]) == 1  # unknown machine: a clear failure, not a crash


def test_the_champions_version_is_the_model_lineage_of_scores_and_worklist(project, instance):
    """failure_model's data version is the champion's version after the gate (a refused challenger leaves it), so
    each scores materialization records the version that scored it as its input data version of failure_model,
    beside its model_version metadata; the worklist names the version of the scores it ranks."""
    root = project
    registry = LocalRegistry(root / "models")

    def latest(asset: str, partition: str | None = None):
        if partition is None:
            return instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization
        found = instance.fetch_materializations(AssetRecordsFilter(AssetKey(asset), [partition]), limit=1)
        return found.records[0].asset_materialization

    assert train(instance, root).success
    champion = registry.champion()
    assert latest("failure_model").tags["dagster/data_version"] == champion
    refused = train(instance, root, **WEAK)  # far worse than the champion: kept out
    assert refused.success and not _gate(refused).passed and registry.champion() == champion
    assert _meta(refused)["version"] != champion
    assert latest("failure_model").tags["dagster/data_version"] == champion
    days = [str((pd.Timestamp(LAST) - pd.Timedelta(days=1)).date()), LAST]
    assert score(instance, root, *days).success
    for day in days:
        scores, worklist = latest("scores", day), latest("maintenance_worklist", day)
        assert scores.tags["dagster/input_data_version/failure_model"] == champion
        assert scores.metadata["model_version"].value == champion
        assert worklist.metadata["model_version"].value == champion
        stored = pd.read_parquet(root / "warehouse" / "scores" / f"{day}.parquet")
        assert set(stored["model_version"]) == {champion}
