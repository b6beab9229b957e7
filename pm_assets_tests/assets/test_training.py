"""Training, the champion/challenger gate, scoring and the worklist, through Dagster on a small simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetRecordsFilter, load_assets_from_modules, materialize

from pm_assets.assets import features as features_module
from pm_assets.assets import ingestion, scoring, training
from pm_assets.core.model import PROBA_COLUMNS
from pm_assets.core.parquet_files import read_partitions
from pm_assets.core.registry import LocalRegistry
from pm_assets.core.simulate import SimulationConfig, simulate, write_kaggle_csv
from pm_assets.resources import ModelRegistryResource, ParquetIOManager
from pm_assets_tests.conftest import landing_resource

ASSETS = load_assets_from_modules([ingestion, features_module, training, scoring])
FIRST, LAST = "2015-01-01", "2015-04-30"
#: A model that barely learns: one boosting iteration at a tiny learning rate.
WEAK = {"max_iter": 1, "learning_rate": 0.001}
#: Another weak model (not the same training as WEAK, which would reuse its version).
WORSE = {"max_iter": 2, "learning_rate": 0.001}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, instance):
    root = tmp_path_factory.mktemp("training")
    raw = root / "raw"
    write_kaggle_csv(simulate(SimulationConfig(machines=15, start=FIRST, end="2015-05-01", seed=11)), raw)
    resources = {
        "landing": landing_resource(root, raw),
        "io_manager": ParquetIOManager(base_dir=str(root / "warehouse")),
        "model_registry": ModelRegistryResource(root=str(root / "models")),
    }
    tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
    selection = [
        "source_files",
        "machines",
        "telemetry",
        "errors",
        "maintenance",
        "maintenance_history",
        "failures",
        "features",
        "labels",
    ]
    assert materialize(ASSETS, instance=instance, resources=resources, tags=tags, selection=selection).success

    def train(**config):
        return materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            selection=["failure_model"],
            run_config={"ops": {"failure_model": {"config": config}}},
            raise_on_error=False,
        )

    def score(first=FIRST, last=LAST):
        return materialize(
            ASSETS,
            instance=instance,
            resources=resources,
            selection=["scores", "maintenance_worklist"],
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )

    return root, train, score


def _gate(result):
    return next(e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION")


def _meta(result) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node("failure_model")[0].metadata.items()}


def test_first_model_becomes_champion_better_is_promoted_worse_is_not(pipeline):
    root, train, _ = pipeline
    registry = LocalRegistry(root / "models")

    first = train(**WEAK)  # the first model is champion whatever its quality
    assert first.success and _gate(first).passed and registry.champion() == "v0001"
    weak_ap = _meta(first)["average_precision"]

    better = train()
    assert better.success and _gate(better).passed
    assert registry.champion() == "v0002" and _meta(better)["average_precision"] > weak_ap + 0.1

    worse = train(**WORSE)
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


def test_training_is_deterministic_and_the_same_training_reuses_its_version(pipeline):
    root, train, _ = pipeline
    registry = LocalRegistry(root / "models")
    before = registry.versions()
    a = _meta(train(max_iter=30))
    b = _meta(train(max_iter=30))
    for key in ("average_precision", "roc_auc", "brier", "ece", "macro_f1_components"):
        assert a[key] == b[key], key
    # one version: the second run trained the same model from the same rows, parameters and code, and reused it
    assert registry.versions() == [*before, a["version"]] and b["version"] == a["version"]
    assert registry.find(registry.card(a["version"])["fingerprint"]) == a["version"]
    c = _meta(train(max_iter=31))  # other parameters: a new version
    assert c["version"] != a["version"] and registry.versions()[-1] == c["version"]


def test_a_champion_that_cannot_be_loaded_fails_the_step_and_leaves_no_version(pipeline):
    root, train, _ = pipeline
    registry = LocalRegistry(root / "models")
    before, champion = registry.versions(), registry.champion()
    artifact = registry.root / champion / "model.joblib"
    original = artifact.read_bytes()
    artifact.write_bytes(original + b"tampered")
    try:
        result = train(max_iter=3, learning_rate=0.001)  # a training not done before (it would reuse its version)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "was changed after registration" in str(failure.event_specific_data.error)
        # nothing registered, nothing half-written: no folder without its decision, no temporary folder
        assert registry.versions() == before and registry.champion() == champion
        assert sorted(p.name for p in registry.root.iterdir()) == sorted([*before, "champion"])
    finally:
        artifact.write_bytes(original)


def test_scores_are_probabilities_from_the_champion_and_the_worklist_ranks_them(pipeline):
    root, train, score = pipeline
    if LocalRegistry(root / "models").champion() is None:
        assert train().success
    champion = LocalRegistry(root / "models").champion()
    result = score("2015-04-01", LAST)
    assert result.success
    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert set(evaluations) == {"valid_probabilities", "scored_by_the_champion", "consistent_ranking"}
    assert all(e.passed for e in evaluations.values())
    assert evaluations["scored_by_the_champion"].description == f"every row by {champion}"
    scores = read_partitions(sorted((root / "warehouse" / "scores").glob("2015-04-*.parquet")))
    scored = scores[scores["scored"]]
    assert len(scored) > 0.9 * len(scores)
    proba = scored[PROBA_COLUMNS].to_numpy()
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(scored["p_any"], 1 - scored["p_none"], atol=1e-12)
    assert (scored["model_version"] == champion).all()
    assert scores.loc[~scores["scored"], "p_any"].isna().all()
    worklist = read_partitions(sorted((root / "warehouse" / "maintenance_worklist").glob("2015-04-*.parquet")))
    for _, day in worklist.groupby("date"):
        assert list(day["rank"]) == list(range(1, len(day) + 1))
        assert day["expected_saving"].is_monotonic_decreasing
        assert ((day["action"] == "inspect") == (day["expected_saving"] > 0)).all()
        # the worst snapshot of the day for each machine
        day_scores = scored[scored["datetime"].dt.floor("D") == day["date"].iloc[0]]
        worst = day_scores.groupby("machineID")["p_any"].max()
        np.testing.assert_allclose(day.set_index("machineID")["p_any"].sort_index(), worst.sort_index())


def test_predict_cli_scores_one_machine_with_the_champion(pipeline, capsys):
    import json

    from pm_assets.cli import main

    root, train, score = pipeline
    if LocalRegistry(root / "models").champion() is None:
        assert train().success
    args = ["predict", "--machine", "4", "--registry", str(root / "models"), "--warehouse", str(root / "warehouse")]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["machineID"] == 4 and result["snapshot"] == "2015-04-30 21:00:00"
    assert result["model_version"] == LocalRegistry(root / "models").champion()
    assert result["p_any"] == pytest.approx(1 - result["p_none"])
    assert sum(result[c] for c in PROBA_COLUMNS) == pytest.approx(1.0)
    # the same snapshot scored by the scores asset gives the same probability
    assert score("2015-04-30", LAST).success
    stored = pd.read_parquet(root / "warehouse" / "scores" / "2015-04-30.parquet")
    row = stored[(stored["machineID"] == 4) & (stored["datetime"] == pd.Timestamp("2015-04-30 21:00"))]
    assert row["p_any"].iloc[0] == pytest.approx(result["p_any"], abs=1e-12)
    assert main([*args[:2], "999", *args[3:]]) == 1  # unknown machine: a clear failure, not a crash


def test_the_champions_version_is_the_model_lineage_of_scores_and_worklist(pipeline, instance):
    """failure_model's data version is the champion's version after the gate (a refused challenger leaves it), so
    each scores materialization records the version that scored it as its input data version of failure_model,
    beside its model_version metadata; the worklist names the version of the scores it ranks."""
    root, train, score = pipeline
    registry = LocalRegistry(root / "models")

    def latest(asset: str, partition: str | None = None):
        if partition is None:
            return instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization
        found = instance.fetch_materializations(AssetRecordsFilter(AssetKey(asset), [partition]), limit=1)
        return found.records[0].asset_materialization

    assert train().success
    champion = registry.champion()
    assert latest("failure_model").tags["dagster/data_version"] == champion
    refused = train(max_iter=1, learning_rate=0.0005)  # far worse than the champion: kept out
    assert refused.success and not _gate(refused).passed and registry.champion() == champion
    assert _meta(refused)["version"] != champion
    assert latest("failure_model").tags["dagster/data_version"] == champion
    days = ["2015-04-29", "2015-04-30"]
    assert score(*days).success
    for day in days:
        scores, worklist = latest("scores", day), latest("maintenance_worklist", day)
        assert scores.tags["dagster/input_data_version/failure_model"] == champion
        assert scores.metadata["model_version"].value == champion
        assert worklist.metadata["model_version"].value == champion
        stored = pd.read_parquet(root / "warehouse" / "scores" / f"{day}.parquet")
        assert set(stored["model_version"]) == {champion}
