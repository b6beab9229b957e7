"""Training: the calibrated failure model and the anomaly model, gated against the champion, then registered as one
version.

The asset trains on mature labels of usable snapshots before ``cutoff - horizon`` and tests on those from
``cutoff`` on (the Microsoft PdM guide's gap of one horizon). The new version is a challenger; the check
``champion_gate`` scores champion and challenger on the same window (the challenger's test window, recent mature
labels) and promotes the challenger unless its average precision is worse than the champion's by more than the
tolerance. The first model becomes champion directly. A refused challenger is a decision, not a failure: the check
passes or warns (WARN), the decision is in the metadata, the version's card and gate.json, and the run goes on to
score and monitor with the champion.
"""

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from pm_assets import settings
from pm_assets.assets.common import chunked_in, code_version, params_of, shown
from pm_assets.core.chunks import StoredPartitions, day_chunks
from pm_assets.core.labels import DEFAULT_HORIZON_HOURS
from pm_assets.core.markdown import markdown_table
from pm_assets.core.model import (
    TrainingSet,
    TrainParams,
    anomaly_roc_auc,
    champion_gate,
    evaluate,
    fit_sampled,
    gather_training,
    model_card,
    permutation_importance_of,
)
from pm_assets.core.registry import CARD
from pm_assets.resources import ModelRegistryResource

#: Changes with this module and the pm_assets code it uses (see ``code_version``).
CODE_VERSION = code_version(__name__)

MODEL_GROUP = "model"
_DEFAULTS = TrainParams()
#: Evaluation figures stored as plain floats, so the UI plots them across materializations.
PLOTTED_METRICS = (
    "macro_f1_components",
    "roc_auc",
    "average_precision",
    "brier",
    "ece",
    "false_positive_rate",
    "recall_at_threshold",
)


class TrainingConfig(Config):
    """Training window, split and model settings."""

    cutoff: str | None = Field(
        default=None,
        description="Test from this time on; train before cutoff - horizon. None: the last mature snapshot minus "
        "test_days (so a retraining always tests on the most recent month).",
    )
    test_days: int = Field(default=30, ge=1, description="Length of the test window when cutoff is None.")
    train_start: str | None = Field(default=None, description="First training snapshot; None: all history.")
    horizon_hours: int = Field(default=DEFAULT_HORIZON_HOURS, description="The labels' horizon (the train/test gap).")
    operating_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Alert when p_any >= this (for FPR/recall)."
    )
    gate_tolerance: float = Field(
        default=0.01, ge=0, description="Promote unless challenger AP < champion AP - tolerance on the same window."
    )
    seed: int = Field(
        default=_DEFAULTS.seed, description="Seed of the boosting, the CV folds and the isolation forest."
    )
    max_iter: int = Field(default=_DEFAULTS.max_iter, description="Boosting iterations.")
    learning_rate: float = Field(default=_DEFAULTS.learning_rate)
    l2_regularization: float = Field(default=_DEFAULTS.l2_regularization)
    min_samples_leaf: int = Field(default=_DEFAULTS.min_samples_leaf)
    calibration: str = Field(default=_DEFAULTS.calibration, description="sigmoid or isotonic.")
    max_negative_rows: int | None = Field(
        default=_DEFAULTS.max_negative_rows,
        ge=1,
        description="Train on at most this many no-failure rows (a seeded sample; probabilities are corrected back "
        "to the full class balance). None: every row.",
    )

    def params(self) -> TrainParams:
        return params_of(self, TrainParams)


@asset(
    code_version=CODE_VERSION,
    group_name=MODEL_GROUP,
    kinds={"scikitlearn", "joblib"},
    ins={
        "features": chunked_in(allow_missing_partitions=True),
        "labels": chunked_in(allow_missing_partitions=True),
    },
    check_specs=[
        AssetCheckSpec(
            "champion_gate",
            asset="failure_model",
            description="Promote the new version unless it is worse than the champion "
            "(average precision, same window) beyond the tolerance. Keeping the champion is a "
            "decision, not a failure: WARN, the run goes on and scores with the champion.",
        )
    ],
    description="Calibrated failure model (HistGradientBoosting in sigmoid CalibratedClassifierCV; classes none, "
    "comp1..comp4; p_any = 1 - P(none)) and an IsolationForest anomaly model on the telemetry features, saved as "
    "one new version of the model registry with a model card. Evaluation on the test window is in the metadata.",
)
def failure_model(
    context: AssetExecutionContext,
    config: TrainingConfig,
    features: StoredPartitions,
    labels: StoredPartitions,
    model_registry: ModelRegistryResource,
):
    data = _training_set(config, features, labels)
    test = data.test
    context.log.info(
        f"training on {data.train_rows:,} rows before {data.cutoff - pd.Timedelta(hours=config.horizon_hours)} "
        f"({len(data.fit_rows):,} kept), testing on {len(test):,} from {data.cutoff}"
    )
    bundle = fit_sampled(data.fit_rows, data.normal, data.rate, config.params())
    metrics, card = _evaluation_and_card(config, data, bundle, partitions=len(features.keys))
    registry = model_registry.registry()
    # the gate is decided before anything is written: a champion that cannot be loaded fails the step with no
    # version left behind; a re-run of the same training (after a crash, or a retry) reuses its version
    version, decision, reused = registry.register_or_reuse(
        bundle, card, lambda: champion_gate(registry, test, metrics, config.gate_tolerance)
    )
    if reused:
        context.log.info(f"{version} was trained on the same rows with the same parameters and code: reused")
    promote, reason = bool(decision.get("promoted")), decision.get("reason", "no decision recorded")
    champion = registry.champion()
    # the data version is the champion's version (the model scores and monitoring use, not a refused challenger):
    # downstream materializations record it as their input data version of failure_model
    yield MaterializeResult(
        metadata=_model_metadata(version, champion, promote, reason, card, metrics, registry.root),
        data_version=DataVersion(champion) if champion else None,
    )
    if not promote:
        context.log.warning(f"{version} is not promoted, {champion} stays champion: {reason}")
    yield AssetCheckResult(
        check_name="champion_gate",
        passed=promote,
        severity=AssetCheckSeverity.WARN,
        description=("promoted: " if promote else "kept the champion: ") + reason,
        metadata=shown(_gate_metadata(decision, version)),
    )


def _evaluation_and_card(config: TrainingConfig, data: TrainingSet, bundle, partitions: int) -> tuple[dict, dict]:
    """The new bundle's metrics on the test window and its model card (with the permutation importance)."""
    scores = bundle.score(data.test)
    metrics = evaluate(data.test, scores, config.operating_threshold)
    # computed once per version on its own test window, for importance-weighted drift in monitoring
    importance = permutation_importance_of(bundle, data.test)
    card = model_card(
        data,
        bundle,
        metrics,
        importance,
        anomaly_auc=anomaly_roc_auc(data.test, scores),
        horizon_hours=config.horizon_hours,
        operating_threshold=config.operating_threshold,
        partitions=partitions,
        code_version=CODE_VERSION,
    )
    return metrics, card


def _training_set(config: TrainingConfig, features: StoredPartitions, labels: StoredPartitions) -> TrainingSet:
    def read(keys, columns):
        return features.read(keys[0], keys[-1], columns), labels.read(keys[0], keys[-1])

    return gather_training(
        read,
        day_chunks(features.keys, settings.CHUNK_DAYS),
        config.params(),
        config.horizon_hours,
        config.test_days,
        cutoff=config.cutoff,
        train_start=config.train_start,
    )


def _model_metadata(version: str, champion, promote: bool, reason: str, card: dict, metrics: dict, root) -> dict:
    """The version's materialization metadata: the gate's outcome, the windows, the plotted metrics and tables."""
    return shown(
        {
            "version": version,
            "promoted_to_champion": promote,
            "gate_decision": (f"{version} promoted" if promote else f"kept {champion}: {reason}"),
            "champion": champion or "none",
            "train_rows": card["rows"]["train"],
            "test_rows": card["rows"]["test"],
            "training_window": f"{card['training_window']['start']} .. {card['training_window']['end']}",
            "test_window": f"{card['test_window']['start']} .. {card['test_window']['end']}",
            **{k: float(metrics[k]) for k in PLOTTED_METRICS},
            "anomaly_roc_auc": card["metrics"]["anomaly_roc_auc"],
            "per_class": MetadataValue.md(markdown_table(metrics["per_class"])),
            "confusion_matrix": MetadataValue.md(markdown_table(metrics["confusion"], index=True)),
            "model_card": MetadataValue.path(str(root / version / CARD)),
        }
    )


def _gate_metadata(decision: dict, version: str) -> dict:
    """The gate decision as check metadata: its figures as plain floats, the challenger's version."""
    return {
        k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in decision.items() if v is not None
    } | {"challenger": version}
