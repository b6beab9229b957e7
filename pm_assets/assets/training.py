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

import hashlib
import json

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
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
from pm_assets.core.model import TrainParams, evaluate, fit_sampled, gate, gather_training, rows_sha256
from pm_assets.core.monitoring import permutation_importance_of
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


def data_version(rows: pd.DataFrame) -> str:
    """sha256 of the rows a model saw (content, not file names): the training data's version."""
    return rows_sha256(rows).hexdigest()


def _metric_metadata(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}{k}": float(metrics[k]) for k in PLOTTED_METRICS}


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
    def read(keys, columns):
        return features.read(keys[0], keys[-1], columns), labels.read(keys[0], keys[-1])

    data = gather_training(
        read,
        day_chunks(features.keys, settings.CHUNK_DAYS),
        config.params(),
        config.horizon_hours,
        config.test_days,
        cutoff=config.cutoff,
        train_start=config.train_start,
    )
    test, cutoff = data.test, data.cutoff
    context.log.info(
        f"training on {data.train_rows:,} rows before {cutoff - pd.Timedelta(hours=config.horizon_hours)} "
        f"({len(data.fit_rows):,} kept), testing on {len(test):,} from {cutoff}"
    )
    bundle = fit_sampled(data.fit_rows, data.normal, data.rate, config.params())
    scores = bundle.score(test)
    metrics = evaluate(test, scores, config.operating_threshold)
    y_any = (test["failure_component"].astype(str) != "none").astype(int)
    anomaly_auc = float(_auc(y_any.to_numpy(), scores["anomaly_score"].to_numpy()))
    # computed once per version on its own test window, for importance-weighted drift in monitoring
    importance = permutation_importance_of(bundle, test)

    registry = model_registry.registry()
    card = {
        "training_window": {
            "start": str(data.train_window[0]),
            "end": str(data.train_window[1]),
            "cutoff": str(cutoff),
            "horizon_hours": config.horizon_hours,
        },
        "test_window": {"start": str(test["datetime"].min()), "end": str(test["datetime"].max())},
        "partitions": {
            "first": str(data.snapshots[0].date()),
            "last": str(data.snapshots[1].date()),
            "count": len(features.keys),
        },
        "data_versions": {"train_rows_sha256": data.train_sha256, "test_rows_sha256": data_version(test)},
        "rows": {"train": data.train_rows, "test": len(test)},
        "features": bundle.features,
        "params": bundle.params,
        "operating_threshold": config.operating_threshold,
        "metrics": {k: v for k, v in metrics.items() if not isinstance(v, pd.DataFrame)}
        | {"anomaly_roc_auc": anomaly_auc},
        "permutation_importance": {
            "scoring": "average precision of p_any",
            "window": "test",
            "values": importance.to_dict(),
        },
    }
    # the same rows, parameters and code train the same model (deterministic): a re-run (after a crash, or a retry)
    # reuses that version instead of registering a copy, so what is scored with it is the same, byte for byte
    card["fingerprint"] = hashlib.sha256(
        json.dumps(
            [card["data_versions"], card["params"], card["training_window"], config.operating_threshold, CODE_VERSION],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    version = registry.find(card["fingerprint"])
    if version is not None:
        decision = registry.gate_decision(version) or {}
        before = None if decision.get("champion_before") in (None, "none") else decision["champion_before"]
        if decision.get("promoted") and registry.champion() == before:
            registry.promote(version)  # a crash came between its registration and the champion pointer
        context.log.info(f"{version} was trained on the same rows with the same parameters and code: reused")
    else:
        # decided before anything is written: a champion that cannot be loaded fails the step with no version left
        # behind; the version then appears whole, with its decision, in one rename
        decision = _champion_gate(registry, test, metrics, config.gate_tolerance)
        version = registry.register(bundle, card, gate=decision)
    promote, reason = bool(decision.get("promoted")), decision.get("reason", "no decision recorded")
    gate_meta = {
        k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in decision.items() if v is not None
    } | {"challenger": version}
    yield MaterializeResult(
        metadata=shown(
            {
                "version": version,
                "promoted_to_champion": promote,
                "gate_decision": (f"{version} promoted" if promote else f"kept {registry.champion()}: {reason}"),
                "champion": registry.champion() or "none",
                "train_rows": data.train_rows,
                "test_rows": len(test),
                "training_window": f"{card['training_window']['start']} .. {card['training_window']['end']}",
                "test_window": f"{card['test_window']['start']} .. {card['test_window']['end']}",
                **_metric_metadata("", metrics),
                "anomaly_roc_auc": anomaly_auc,
                "per_class": MetadataValue.md(markdown_table(metrics["per_class"])),
                "confusion_matrix": MetadataValue.md(markdown_table(metrics["confusion"], index=True)),
                "model_card": MetadataValue.path(str(registry.root / version / "card.json")),
            }
        )
    )
    if not promote:
        context.log.warning(f"{version} is not promoted, {registry.champion()} stays champion: {reason}")
    yield AssetCheckResult(
        check_name="champion_gate",
        passed=promote,
        severity=AssetCheckSeverity.WARN,
        description=("promoted: " if promote else "kept the champion: ") + reason,
        metadata=shown(gate_meta),
    )


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, score) if len(np.unique(y)) == 2 else float("nan")


def _champion_gate(registry, window: pd.DataFrame, challenger_metrics: dict, tolerance: float) -> dict:
    """The decision about a challenger with ``challenger_metrics``: compared with the champion on ``window``."""
    champion_version = registry.champion()
    champion_ap = None
    if champion_version is not None:
        champion = registry.load(champion_version)
        champion_ap = evaluate(window, champion.score(window), challenger_metrics["threshold"])["average_precision"]
    challenger_ap = challenger_metrics["average_precision"]
    promote, reason = gate(champion_ap, challenger_ap, tolerance)
    return {
        "champion_before": champion_version or "none",
        "promoted": promote,
        "reason": reason,
        "challenger_average_precision": challenger_ap,
        "champion_average_precision": champion_ap,
        "tolerance": tolerance,
        "window": f"{window['datetime'].min()} .. {window['datetime'].max()}",
        "window_rows": len(window),
    }
