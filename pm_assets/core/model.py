"""The failure model, the anomaly model, their evaluation and the decisions built on them. No Dagster import.

- Failure model: ``HistGradientBoostingClassifier`` inside ``CalibratedClassifierCV`` (sigmoid, calibrators fit on
  3-fold out-of-fold predictions, one booster refit on all rows: ``ensemble=False``, a third of the trees to run
  at prediction time) on the five classes none/comp1..comp4. ``p_any = 1 - P(none)``. The boosting is regularised
  (L2 1.0, at least 40 rows a leaf): without it, at learning rate 0.1 the multiclass boosting ran away on the
  simulated year and macro F1 fell to 0.27; with it 100 iterations reach 0.995.
- Sigmoid, not isotonic, calibration: on the simulated 2015-08-01 split both are as good (ECE 0.0003 vs 0.0002,
  macro F1 0.995 both), but isotonic's step function put 97.8 % of snapshots at exactly p_any = 0, which leaves
  score drift (PSI on reference quantiles) undefined; sigmoid gives a continuous p_any.
- Negative sampling: on large histories the model trains on every failure row and a seeded sample of about
  ``max_negative_rows`` no-failure rows (a share ``rate``; small fleets keep every row), calibrated on that sample;
  its probabilities are then mapped back to the full data's class balance by the prior correction
  P(none) = (P_s(none) / rate) / (P_s(none) / rate + sum of P_s(comp)),
  which is exact when the sample's model is calibrated and only the no-failure class was thinned. Weighting the
  kept rows by 1/rate instead would do the same, but weighted boosting (no constant hessians) fitted 3.7x slower.
  Measured figures are in the README ("Model").
- Features go to the models as one float matrix, ``model`` as its category code (an ordinal code: with four models
  the trees isolate each one as easily, and declaring it categorical made the boosting run a column transformer on
  every call): a single prediction then skips pandas validation, which was a third of its time.
- Anomaly model: an ``IsolationForest`` on the 3 h and 24 h telemetry features (present on every usable snapshot),
  scored as ``-score_samples``: higher is more anomalous. Reported beside the failure model, not fed into it
  (``benchmarks/evaluate_model.py`` measures both ways).
- A snapshot is scored only when it is ``usable`` (see features); the longer windows may be NaN, which the
  boosting handles natively.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from itertools import islice

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from pm_assets.core.features import SHORT_WINDOWS, feature_columns
from pm_assets.core.labels import LABEL_CLASSES, NO_FAILURE
from pm_assets.core.schema import COMPONENTS, SENSORS

PROBA_COLUMNS = [f"p_{c}" for c in LABEL_CLASSES]  # p_none, p_comp1..p_comp4
ANOMALY_FEATURES = [f"{s}_{stat}_{w}" for s in SENSORS for w in SHORT_WINDOWS for stat in ("mean", "sd")]
RISK_LEVELS = ("low", "medium", "high")
#: Permutation importance of a new version (on its test window; monitoring weights the drift by it): rows sampled,
#: repeats per feature and the seed of both. Fixed by design, not configurable.
IMPORTANCE_SAMPLE, IMPORTANCE_REPEATS, IMPORTANCE_SEED = 2000, 3, 0


@dataclass(frozen=True)
class TrainParams:
    """Model hyper-parameters (the Dagster training config mirrors these)."""

    seed: int = 42  # the isolation forest's; the boosting (no subsampling) and the CV folds are deterministic
    max_iter: int = 100
    learning_rate: float = 0.1
    l2_regularization: float = 1.0
    min_samples_leaf: int = 40
    calibration: str = "sigmoid"  # or "isotonic" (see the module docstring)
    calibration_folds: int = 3
    #: at most this many no-failure rows are trained on (a seeded sample, see the module docstring); None: all.
    #: Small fleets keep every row; the simulated year keeps ~11 % of its 285,000 (README, "Model").
    max_negative_rows: int | None = 30_000
    anomaly_trees: int = 32  # scoring one row costs ~40 us a tree: 32 keeps predict_one's p99 under 10 ms
    anomaly_max_samples: int = 4096


#: Rows the classifier predicts at once. Its trees are walked one at a time over every row given, so rows that stay in
#: the CPU's cache between trees predict faster: 233,000 rows (30 days of 1,000 machines) took 4.02 s at once,
#: 1.48-1.59 s in pieces of 16,384-65,536 rows, the same probabilities bit for bit (2026-12-02).
PREDICT_ROWS = 32_768


@dataclass
class ModelBundle:
    """What one registry version holds: both models and what they need to score."""

    classifier: CalibratedClassifierCV
    anomaly: IsolationForest
    features: list[str]
    params: dict = field(default_factory=dict)
    negative_sample_rate: float = 1.0  # share of no-failure rows the classifier was trained on (see module docstring)

    def probabilities(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(rows x 5) class probabilities in LABEL_CLASSES order, and the anomaly scores."""
        matrix = feature_matrix(frame, self.features)
        proba = self.predict_proba(matrix)
        order = [list(self.classifier.classes_).index(c) for c in LABEL_CLASSES]
        if set(ANOMALY_FEATURES) <= set(self.features):  # the anomaly inputs are columns of the same matrix
            anomaly_input = matrix[:, [self.features.index(f) for f in ANOMALY_FEATURES]]
        else:
            anomaly_input = frame[ANOMALY_FEATURES].to_numpy(dtype=np.float64)
        return proba[:, order], -self.anomaly.score_samples(anomaly_input)

    @property
    def negative_column(self) -> int:
        """The column of the no-failure class in the classifier's probabilities (p_any = 1 - that column)."""
        return list(self.classifier.classes_).index(NO_FAILURE)

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """The classifier's probabilities (its classes' order) on the full data's class balance, predicted
        :data:`PREDICT_ROWS` rows at a time (the same numbers as at once: each row's prediction is its own)."""
        starts = range(0, max(len(matrix), 1), PREDICT_ROWS)  # no row: one call, which raises as sklearn does
        proba = np.concatenate([self.classifier.predict_proba(matrix[i : i + PREDICT_ROWS]) for i in starts])
        return prior_correction(proba, self.negative_column, self.negative_sample_rate)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, p_any, most likely component and anomaly score for each row of ``frame``."""
        proba, anomaly = self.probabilities(frame)
        out = pd.DataFrame(proba, columns=PROBA_COLUMNS, index=frame.index)
        out["p_any"] = 1.0 - out["p_none"]
        comps = out[[f"p_{c}" for c in COMPONENTS]].to_numpy()
        out["likely_component"] = pd.Categorical(
            np.array(COMPONENTS)[comps.argmax(axis=1)], categories=list(COMPONENTS)
        )
        out["predicted_class"] = pd.Categorical(
            np.array(LABEL_CLASSES)[out[PROBA_COLUMNS].to_numpy().argmax(axis=1)], categories=list(LABEL_CLASSES)
        )
        out["anomaly_score"] = anomaly
        return out


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model's input: ``features`` as float64, categorical columns as their category codes (NaN if missing).

    Filled a column at a time into a column-major matrix, each column one contiguous copy: 30 days of 1,000 machines
    (240,000 rows x 55) 0.70 s -> 0.03 s against selecting the columns as a frame and converting it (2026-12-03).
    The models' numbers do not depend on the layout (the same probabilities, asserted in the tests)."""
    matrix = np.empty((len(frame), len(features)), order="F")
    for j, name in enumerate(features):
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            matrix[:, j] = codes
        else:
            matrix[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix


def training_rows(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Usable snapshots with mature labels: the only rows a model may learn from or be judged on."""
    rows = features.merge(labels, on=["machineID", "datetime"], how="inner", validate="one_to_one")
    return rows[rows["usable"] & rows["label_mature"]].reset_index(drop=True)


def split_by_cutoff(rows: pd.DataFrame, cutoff, horizon_hours: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on snapshots before ``cutoff - horizon`` (their labels end before the cutoff), test from ``cutoff``."""
    cutoff = pd.Timestamp(cutoff)
    train = rows[rows["datetime"] < cutoff - pd.Timedelta(hours=horizon_hours)]
    test = rows[rows["datetime"] >= cutoff]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def fit_bundle(
    train: pd.DataFrame, params: TrainParams = TrainParams(), features: list[str] | None = None
) -> ModelBundle:
    """Fit the calibrated failure classifier and the anomaly model on mature, usable rows."""
    if not train["label_mature"].all() or train["failure_component"].isna().any():
        raise ValueError("training rows include immature labels: pass rows from training_rows()")
    negative = train["failure_component"].astype(str).to_numpy() == NO_FAILURE
    rate = negative_sample_rate(int(negative.sum()), params.max_negative_rows)
    keep = negative_sample(negative, rate, params.seed)
    return fit_sampled(train.iloc[keep], train.loc[negative, ANOMALY_FEATURES].to_numpy(), rate, params, features)


def fit_sampled(
    fit_rows: pd.DataFrame,
    normal: np.ndarray,
    rate: float,
    params: TrainParams = TrainParams(),
    features: list[str] | None = None,
) -> ModelBundle:
    """:func:`fit_bundle` from what it keeps of the training rows: ``fit_rows``, every failure row and a seeded share
    ``rate`` of the others (the classifier's input), and ``normal``, the anomaly features of every no-failure row."""
    features = list(features or feature_columns())
    y = fit_rows["failure_component"].astype(str)
    missing = sorted(set(LABEL_CLASSES) - set(y))
    if missing:
        raise ValueError(f"training rows lack classes {missing}: widen the training window")
    booster = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        l2_regularization=params.l2_regularization,
        min_samples_leaf=params.min_samples_leaf,
        early_stopping=False,
        random_state=params.seed,
        categorical_features=None,
    )
    classifier = CalibratedClassifierCV(booster, method=params.calibration, cv=params.calibration_folds, ensemble=False)
    classifier.fit(feature_matrix(fit_rows, features), y.to_numpy())
    anomaly = IsolationForest(
        n_estimators=params.anomaly_trees,
        max_samples=min(params.anomaly_max_samples, len(normal)),
        random_state=params.seed,
    )
    anomaly.fit(normal)  # the anomaly model learns normal rows only
    return ModelBundle(
        classifier=classifier, anomaly=anomaly, features=features, params=asdict(params), negative_sample_rate=rate
    )


@dataclass
class TrainingSet:
    """What training and its evaluation need from the history, gathered a chunk at a time (:func:`gather_training`):
    never every feature row at once."""

    fit_rows: pd.DataFrame  # every failure row of the training window and a seeded share ``rate`` of the others
    normal: np.ndarray  # the anomaly features of every no-failure training row, in order
    rate: float
    test: pd.DataFrame  # every row from the cutoff on
    cutoff: pd.Timestamp
    train_rows: int
    train_window: tuple[pd.Timestamp, pd.Timestamp]  # first and last training snapshot
    train_sha256: str  # :func:`rows_sha256` of the training rows
    snapshots: tuple[pd.Timestamp, pd.Timestamp]  # first and last snapshot read (usable or not)


def rows_sha256(rows: pd.DataFrame, digest=None):
    """sha256 of rows' content (pandas' per-row hashes, index left out); ``digest``: update that one instead."""
    digest = digest or hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    return digest


def gather_training(
    read, chunks, params: TrainParams, horizon_hours: int, test_days: int, cutoff=None, train_start=None
) -> TrainingSet:
    """The rows :func:`training_rows` gives over ``chunks`` (lists of partition keys), split at the cutoff (``cutoff``,
    else the last training row minus ``test_days``), kept as :func:`fit_bundle` keeps them, the same to the bit as
    the whole history in one frame would give, reading two passes of one chunk at a time.

    ``read(keys, columns)`` gives (features, labels) of those partitions, with only ``columns`` of the features
    when given. The first pass reads the keys and flags (where the cutoff falls, how many negatives the training
    window has); the second every column, drawing the negative sample from one seeded stream as it goes (a
    Generator's draws in pieces equal one draw of the whole).
    """
    times, negatives, first_last = [], [], []
    for keys in chunks:
        features, labels = read(keys, ["machineID", "datetime", "usable"])
        rows = _after(training_rows(features, labels), train_start)
        times.append(rows["datetime"].to_numpy())
        negatives.append(rows["failure_component"].astype(str).to_numpy() == NO_FAILURE)
        if len(features):
            first_last += [features["datetime"].min(), features["datetime"].max()]
    times, negatives = np.concatenate(times or [np.array([], "datetime64[ns]")]), np.concatenate(negatives or [[]])
    if len(times) == 0:
        raise ValueError("no usable snapshot with a mature label to train on")
    cutoff = pd.Timestamp(cutoff) if cutoff else pd.Timestamp(times.max()) - pd.Timedelta(days=test_days)
    train_end = np.datetime64(cutoff - pd.Timedelta(hours=horizon_hours))
    rate = negative_sample_rate(int((negatives & (times < train_end)).sum()), params.max_negative_rows)
    draws = np.random.default_rng(params.seed)
    fit, normal, test, digest, train_times = [], [], [], hashlib.sha256(), []
    for keys in chunks:
        rows = _after(training_rows(*read(keys, None)), train_start)
        train = rows[rows["datetime"] < train_end].reset_index(drop=True)
        test.append(rows[rows["datetime"] >= cutoff])
        negative = train["failure_component"].astype(str).to_numpy() == NO_FAILURE
        keep = np.arange(len(train)) if rate == 1 else np.flatnonzero(~negative | (draws.random(len(train)) < rate))
        fit.append(train.iloc[keep])
        normal.append(train.loc[negative, ANOMALY_FEATURES].to_numpy())
        rows_sha256(train, digest)
        if len(train):
            train_times += [train["datetime"].min(), train["datetime"].max()]
    train_rows = int((times < train_end).sum())
    return TrainingSet(
        fit_rows=pd.concat(fit, ignore_index=True),
        normal=np.concatenate(normal),
        rate=rate,
        test=pd.concat(test, ignore_index=True),
        cutoff=cutoff,
        train_rows=train_rows,
        train_window=(min(train_times), max(train_times)) if train_times else (pd.NaT, pd.NaT),
        train_sha256=digest.hexdigest(),
        snapshots=(min(first_last), max(first_last)),
    )


def _after(rows: pd.DataFrame, start) -> pd.DataFrame:
    return rows if not start else rows[rows["datetime"] >= pd.Timestamp(start)].reset_index(drop=True)


def negative_sample_rate(negatives: int, max_negative_rows: int | None) -> float:
    """Share of the negative rows to keep so that about ``max_negative_rows`` remain (1.0: keep all)."""
    if max_negative_rows is None or negatives <= max_negative_rows:
        return 1.0
    if max_negative_rows < 1:
        raise ValueError(f"max_negative_rows must be at least 1, got {max_negative_rows}")
    return max_negative_rows / negatives


def negative_sample(negative: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Indices (in order) of the rows kept: every positive row and a seeded share ``rate`` of the negative ones."""
    if not 0 < rate <= 1:
        raise ValueError(f"negative_sample_rate must be in (0, 1], got {rate}")
    if rate == 1:
        return np.arange(len(negative))
    return np.flatnonzero(~negative | (np.random.default_rng(seed).random(len(negative)) < rate))


def prior_correction(proba: np.ndarray, negative_column: int, rate: float) -> np.ndarray:
    """Probabilities of a model trained with only ``rate`` of the negative class, mapped back to the full class
    balance: the negative column divided by ``rate``, rows renormalised (Bayes' rule with the sampling as prior)."""
    if rate == 1:
        return proba
    out = proba.copy()
    out[:, negative_column] /= rate
    return out / out.sum(axis=1, keepdims=True)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: sum over equal-width probability bins of (share of rows) x |mean predicted - observed rate|."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(p) == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            total += in_bin.mean() * abs(p[in_bin].mean() - y[in_bin].mean())
    return float(total)


def evaluate(rows: pd.DataFrame, scores: pd.DataFrame, threshold: float) -> dict:
    """Metrics of scored, labelled rows. ``threshold``: the operating point on p_any (alert when p_any >= it)."""
    y_class = rows["failure_component"].astype(str).to_numpy()
    y_any = (y_class != NO_FAILURE).astype(int)
    p_any = scores["p_any"].to_numpy()
    predicted = scores["predicted_class"].astype(str).to_numpy()
    precision, recall, f1, support = precision_recall_fscore_support(
        y_class, predicted, labels=list(LABEL_CLASSES), zero_division=0
    )
    per_class = pd.DataFrame(
        {"class": LABEL_CLASSES, "precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}
    )
    both = len(np.unique(y_any)) == 2
    alert = p_any >= threshold
    negatives = y_any == 0
    return {
        "rows": len(rows),
        "positives": int(y_any.sum()),
        "macro_f1_components": float(
            f1_score(y_class, predicted, labels=list(COMPONENTS), average="macro", zero_division=0)
        ),
        "roc_auc": float(roc_auc_score(y_any, p_any)) if both else float("nan"),
        "average_precision": float(average_precision_score(y_any, p_any)) if both else float("nan"),
        "brier": float(brier_score_loss(y_any, p_any)) if len(rows) else float("nan"),
        "ece": expected_calibration_error(y_any, p_any),
        "threshold": float(threshold),
        "false_positive_rate": float((alert & negatives).sum() / negatives.sum()) if negatives.any() else float("nan"),
        "recall_at_threshold": float((alert & ~negatives).sum() / (~negatives).sum())
        if (~negatives).any()
        else float("nan"),
        "per_class": per_class,
        "confusion": pd.DataFrame(
            confusion_matrix(y_class, predicted, labels=list(LABEL_CLASSES)),
            index=[f"true {c}" for c in LABEL_CLASSES],
            columns=[f"pred {c}" for c in LABEL_CLASSES],
        ),
    }


def anomaly_roc_auc(rows: pd.DataFrame, scores: pd.DataFrame) -> float:
    """ROC AUC of the anomaly score for "a failure within the horizon" on labelled rows (NaN with one class)."""
    y_any = (rows["failure_component"].astype(str).to_numpy() != NO_FAILURE).astype(int)
    if len(np.unique(y_any)) != 2:
        return float("nan")
    return float(roc_auc_score(y_any, scores["anomaly_score"].to_numpy()))


def permutation_importance_of(
    bundle: ModelBundle,
    rows: pd.DataFrame,
    sample: int = IMPORTANCE_SAMPLE,
    repeats: int = IMPORTANCE_REPEATS,
    seed: int = IMPORTANCE_SEED,
) -> pd.Series:
    """Permutation importance of the bundle's classifier for the average precision of p_any, on a seeded sample of at
    most ``sample`` of ``rows`` (usable snapshots with mature labels), ``repeats`` permutations per feature; NaN for
    every feature when the rows do not hold both outcomes.

    The numbers of ``sklearn.inspection.permutation_importance`` (the same permutations from the same seed; equal in
    the tests), computed differently: sklearn predicts each permuted copy of the sample on its own (1 + features x
    repeats predictions of 2,000 rows, each tree walked with its thread start-up for few rows), this stacks the copies
    and predicts :data:`PREDICT_ROWS` rows at a time (each row's prediction is its own, so the same probabilities):
    the 100-machine year's 54 features x 3 repeats 6.1 s -> 3.5-4.1 s (2026-12-03, 2 cores)."""
    if len(rows) == 0 or rows["failure_within_horizon"].astype(float).nunique() < 2:
        return pd.Series(np.nan, index=bundle.features)
    drawn = rows.sample(min(sample, len(rows)), random_state=seed)
    matrix = feature_matrix(drawn, bundle.features)
    y = drawn["failure_within_horizon"].astype(int).to_numpy()
    negative = bundle.negative_column
    # sklearn's draws: one seed from ``seed``, and from it each feature's shuffles, cumulative over its repeats
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)

    def copies():
        yield matrix
        for col in range(matrix.shape[1]):
            shuffles, permuted = np.random.RandomState(column_seed), matrix.copy()
            order = np.arange(len(matrix))
            for _ in range(repeats):
                shuffles.shuffle(order)
                permuted[:, col] = permuted[order, col]
                yield permuted.copy()

    stacked, per_prediction, scores = copies(), max(1, PREDICT_ROWS // len(matrix)), []
    while batch := list(islice(stacked, per_prediction)):
        # the classifier's own p_any: the bundle's prior correction is increasing in it, so AP is the same
        p_any = 1.0 - bundle.classifier.predict_proba(np.concatenate(batch))[:, negative]
        scores += [average_precision_score(y, part) for part in np.split(p_any, len(batch))]
    baseline, permuted = scores[0], np.array(scores[1:]).reshape(matrix.shape[1], repeats)
    return pd.Series(np.mean(baseline - permuted, axis=1), index=bundle.features)


def model_card(
    data: TrainingSet,
    bundle: ModelBundle,
    metrics: dict,
    importance: pd.Series,
    *,
    anomaly_auc: float,
    horizon_hours: int,
    operating_threshold: float,
    partitions: int,
    code_version: str,
) -> dict:
    """What a registry version says about itself: the training and test windows, the ``partitions`` read, the
    versions (sha256) of the rows trained and tested on, features, parameters, the test metrics (``evaluate``'s
    figures without its tables, and ``anomaly_auc``), the permutation importance and the :func:`card_fingerprint`
    of the training with ``code_version``. The registry adds when, the artifact's sha256 and the libraries."""
    test = data.test
    card = {
        "training_window": {
            "start": str(data.train_window[0]),
            "end": str(data.train_window[1]),
            "cutoff": str(data.cutoff),
            "horizon_hours": horizon_hours,
        },
        "test_window": {"start": str(test["datetime"].min()), "end": str(test["datetime"].max())},
        "partitions": {
            "first": str(data.snapshots[0].date()),
            "last": str(data.snapshots[1].date()),
            "count": partitions,
        },
        "data_versions": {"train_rows_sha256": data.train_sha256, "test_rows_sha256": rows_sha256(test).hexdigest()},
        "rows": {"train": data.train_rows, "test": len(test)},
        "features": bundle.features,
        "params": bundle.params,
        "operating_threshold": operating_threshold,
        "metrics": {k: v for k, v in metrics.items() if not isinstance(v, pd.DataFrame)}
        | {"anomaly_roc_auc": anomaly_auc},
        "permutation_importance": {
            "scoring": "average precision of p_any",
            "window": "test",
            "values": importance.to_dict(),
        },
    }
    return card | {"fingerprint": card_fingerprint(card, code_version)}


def card_fingerprint(card: dict, code_version: str) -> str:
    """sha256 of what makes a training (its rows, parameters and window, the operating threshold, the code): the
    training is deterministic, so an equal fingerprint is the same model, and a re-run reuses its version."""
    made_of = [card["data_versions"], card["params"], card["training_window"], card["operating_threshold"]]
    return hashlib.sha256(json.dumps([*made_of, code_version], sort_keys=True, default=str).encode()).hexdigest()


def risk_level(p_any: np.ndarray, medium: float, high: float) -> pd.Categorical:
    """low below ``medium``, medium below ``high``, high at or above it (p_any is calibrated: a high alert at
    threshold 0.5 is a failure within the horizon at least half the time)."""
    if not 0 < medium < high <= 1:
        raise ValueError(f"risk thresholds must satisfy 0 < medium < high <= 1, got {medium}, {high}")
    p = np.asarray(p_any, dtype=float)
    level = np.where(p >= high, "high", np.where(p >= medium, "medium", "low"))
    return pd.Categorical(np.where(np.isnan(p), None, level), categories=list(RISK_LEVELS), ordered=True)


def gate(champion_ap: float | None, challenger_ap: float, tolerance: float) -> tuple[bool, str]:
    """Promote the challenger unless it is worse than the champion by more than ``tolerance`` in average precision."""
    if champion_ap is None:
        return True, "no champion yet: the first model becomes champion"
    if np.isnan(challenger_ap):
        return False, "challenger average precision is undefined on the comparison window"
    if np.isnan(champion_ap) or challenger_ap >= champion_ap - tolerance:
        return True, f"challenger AP {challenger_ap:.4f} >= champion AP {champion_ap:.4f} - tolerance {tolerance}"
    return False, f"challenger AP {challenger_ap:.4f} < champion AP {champion_ap:.4f} - tolerance {tolerance}"


def champion_gate(registry, window: pd.DataFrame, challenger_metrics: dict, tolerance: float) -> dict:
    """The decision about a challenger with ``challenger_metrics`` (:func:`evaluate`'s): the ``registry``'s champion
    scored on the same ``window`` at the same threshold, then :func:`gate`. Loading the champion raises when its
    artifact was tampered with (:class:`~pm_assets.core.registry.RegistryError`)."""
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


def expected_costs(p_any: np.ndarray, failure_cost: float, inspection_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost of waiting (p x failure cost) and the expected saving of inspecting now
    (p x failure cost - inspection cost; an inspection is assumed to prevent the failure)."""
    p = np.asarray(p_any, dtype=float)
    waiting = p * failure_cost
    return waiting, waiting - inspection_cost


def predict_one(
    bundle: ModelBundle, snapshots: pd.DataFrame, machine_id: int, at=None, medium: float = 0.2, high: float = 0.5
) -> dict:
    """Score one machine's current snapshot: its latest usable snapshot at or before ``at`` (default: the latest).

    ``snapshots``: feature rows (any number of machines and days). Returns a JSON-ready dict.
    """
    times = snapshots["datetime"].to_numpy()
    candidates = (snapshots["machineID"].to_numpy() == machine_id) & snapshots["usable"].to_numpy()
    if at is not None:
        candidates &= times <= np.datetime64(pd.Timestamp(at))
    positions = np.flatnonzero(candidates)
    if len(positions) == 0:
        raise LookupError(
            f"machine {machine_id}: no usable snapshot" + (f" at or before {at}" if at is not None else "")
        )
    row = snapshots.iloc[[positions[np.argmax(times[positions])]]]
    proba, anomaly = bundle.probabilities(row)
    p = dict(zip(PROBA_COLUMNS, proba[0].tolist()))
    p_any = 1.0 - p["p_none"]
    return {
        "machineID": int(machine_id),
        "snapshot": str(row["datetime"].iloc[0]),
        "p_any": p_any,
        **p,
        "likely_component": max(COMPONENTS, key=lambda c: p[f"p_{c}"]),
        "risk_level": "high" if p_any >= high else "medium" if p_any >= medium else "low",
        "anomaly_score": float(anomaly[0]),
    }
