"""Scoring: the champion model's view of every snapshot, and the maintenance worklist a planner reads first."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from pm_assets.assets.common import (
    by_day,
    chunked_in,
    chunks_of,
    code_version,
    column_schema,
    daily_partitioned,
    run_summary,
    shown,
)
from pm_assets.core.chunks import ChunkedFrames, StoredPartitions
from pm_assets.core.consistency import probability_problems, version_problems, worklist_problems
from pm_assets.core.markdown import markdown_table
from pm_assets.core.model import RISK_LEVELS
from pm_assets.core.scoring import HIGH_RISK, MEDIUM_RISK, rank_worklist, score_snapshots
from pm_assets.resources import ModelRegistryResource

#: Changes with this module and the pm_assets code it uses (see ``code_version``).
CODE_VERSION = code_version(__name__)

SCORING_GROUP = "scoring"
WORKLIST_SHOWN = 10


class RiskConfig(Config):
    """Risk levels from the calibrated p_any (the probability of a failure within the horizon)."""

    medium_threshold: float = Field(
        default=MEDIUM_RISK,
        gt=0,
        lt=1,
        description="medium from here: at least 20 of every 100 such snapshots precede a failure within the horizon.",
    )
    high_threshold: float = Field(
        default=HIGH_RISK,
        gt=0,
        le=1,
        description="high from here: at least 50 failures expected per 100 high-risk snapshots.",
    )


class CostConfig(Config):
    """A simple cost model for the worklist (any currency; only the ratio matters for the ranking)."""

    failure_cost: float = Field(default=20_000.0, gt=0, description="Cost of an unplanned component failure.")
    inspection_cost: float = Field(
        default=1_000.0, gt=0, description="Cost of inspecting (and if needed replacing) now."
    )


@asset(
    code_version=CODE_VERSION,
    group_name=SCORING_GROUP,
    kinds={"scikitlearn", "pandas", "parquet"},
    **daily_partitioned(),
    ins={"features": chunked_in()},
    deps=["failure_model"],
    check_specs=[
        AssetCheckSpec(
            "valid_probabilities",
            asset="scores",
            blocking=True,
            description="Every scored row: class probabilities in [0, 1] summing to 1, p_any = 1 - p_none.",
        ),
        AssetCheckSpec(
            "scored_by_the_champion",
            asset="scores",
            blocking=True,
            description="Every row carries the version of the champion that scored it.",
        ),
    ],
    description="The champion model's scores for every machine and snapshot: P(none), P(comp1..comp4), p_any, the "
    "most likely component, risk level (low/medium/high), anomaly score and the model version. Snapshots without "
    "24 h of telemetry are not scored (scored = false).",
)
def scores(
    context: AssetExecutionContext,
    config: RiskConfig,
    features: StoredPartitions,
    model_registry: ModelRegistryResource,
):
    registry, version, bundle = _champion(model_registry)
    totals, problems = {"rows": 0, "scored": 0}, _Problems()

    def chunks():
        for keys in chunks_of(context):
            out = score_snapshots(
                features.read(keys[0], keys[-1]), bundle, version, config.medium_threshold, config.high_threshold
            )
            for key, day in by_day(out):
                context.add_asset_metadata(_scores_of_day(day), partition_key=key)
            problems.add("valid_probabilities", probability_problems(out))
            problems.add("scored_by_the_champion", version_problems(out, version))
            totals["rows"] += len(out)
            totals["scored"] += int(out["scored"].sum())
            yield keys, out

    yield _chunked_output(chunks(), lambda: {"model_version": version, "run": run_summary(**totals)})
    yield problems.check("valid_probabilities", "every scored row")
    yield problems.check("scored_by_the_champion", f"every row by {version}", champion=registry.champion() or "none")


def _champion(model_registry: ModelRegistryResource):
    """(registry, champion version, its bundle); fails the step when there is no champion yet."""
    registry = model_registry.registry()
    version = registry.champion()
    if version is None:
        raise RuntimeError(f"no champion model in {registry.root}: materialize failure_model first")
    return registry, version, registry.load(version)


def _scores_of_day(day) -> dict:
    """One day's scores metadata: rows, scored rows, their mean p_any and the rows at each risk level."""
    levels = day["risk_level"].value_counts()
    return shown(
        {
            "dagster/row_count": len(day),
            "scored": int(day["scored"].sum()),
            "mean_p_any": float(day["p_any"].mean()) if day["scored"].any() else 0.0,
            **{f"n_{level}": int(levels.get(level, 0)) for level in RISK_LEVELS},
        }
    )


def _chunked_output(chunks, run_metadata) -> Output:
    """The output written chunk by chunk; once the last is written, its column schema and ``run_metadata()``."""
    schema = {}

    def written():
        for keys, frame in chunks:
            schema["frame"] = frame.head(0)
            yield keys, frame

    return Output(
        ChunkedFrames(
            written(), lambda: shown({"dagster/column_schema": column_schema(schema["frame"]), **run_metadata()})
        )
    )


class _Problems:
    """The bad rows a run's chunks found for each check, and the first example of each."""

    def __init__(self):
        self.bad, self.examples = {}, {}

    def add(self, check: str, found: tuple[int, str]) -> None:
        bad, example = found
        self.bad[check] = self.bad.get(check, 0) + bad
        if bad:
            self.examples.setdefault(check, example)

    def check(self, check: str, passed: str, **metadata) -> AssetCheckResult:
        """The check's result: passed when no row was bad (``passed`` says what holds), else how many and one."""
        bad = self.bad.get(check, 0)
        return AssetCheckResult(
            check_name=check,
            passed=bad == 0,
            metadata={"bad_rows": bad, **metadata},
            description=f"{bad} rows, e.g. {self.examples[check]}" if bad else passed,
        )


@asset(
    code_version=CODE_VERSION,
    group_name=SCORING_GROUP,
    kinds={"pandas", "parquet"},
    **daily_partitioned("date"),
    ins={"scores": chunked_in()},
    check_specs=[
        AssetCheckSpec(
            "consistent_ranking",
            asset="maintenance_worklist",
            blocking=True,
            description="One row per machine and day, ranks 1..n by decreasing expected saving, "
            "inspect exactly where the saving is positive.",
        )
    ],
    description="What a maintenance planner reads first: per day, every scored machine ranked by the expected saving "
    "of inspecting it now (p_any x failure cost - inspection cost), with its worst snapshot of the day, the likely "
    "component, risk level and the recommended action (inspect when the saving is positive).",
)
def maintenance_worklist(context: AssetExecutionContext, config: CostConfig, scores: StoredPartitions):
    problems = _Problems()

    def chunks():
        for keys in chunks_of(context):
            worklist = rank_worklist(scores.read(keys[0], keys[-1]), config.failure_cost, config.inspection_cost)
            for key, day in by_day(worklist, "date"):
                context.add_asset_metadata(_worklist_of_day(day), partition_key=key)
            problems.add("consistent_ranking", worklist_problems(worklist))
            yield keys, worklist

    settings = run_summary(failure_cost=config.failure_cost, inspection_cost=config.inspection_cost)
    yield _chunked_output(chunks(), lambda: {"settings": settings})
    yield problems.check("consistent_ranking", "every day ranked")


def _worklist_of_day(day) -> dict:
    """One day's worklist metadata: machines, inspections, their expected saving, the top of the list and the model
    version(s) that scored it."""
    return shown(
        {
            "dagster/row_count": len(day),
            "inspect": int((day["action"] == "inspect").sum()),
            "expected_saving": float(day["expected_saving"].clip(lower=0).sum()),
            "top": MetadataValue.md(markdown_table(day.head(WORKLIST_SHOWN).drop(columns=["date"]))),
            "model_version": ", ".join(sorted(day["model_version"].astype(str).unique())),
        }
    )
