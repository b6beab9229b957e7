"""The code location: assembles assets, checks, jobs, schedules, sensors and resources; no logic of its own.

Executor: in-process for every job. On this 2-core machine each step of Dagster's default multiprocess executor
costs ~2 s of process start and imports, and the graph is a chain (steps would wait for each other anyway), while
pandas, numpy and scikit-learn already use both cores inside a step (README, "Performance").
"""

from dagster import Definitions, in_process_executor, load_assets_from_modules

from pm_assets import automation
from pm_assets.assets import features, ingestion, monitoring, scoring, training
from pm_assets.resources import LandingResource, ModelRegistryResource, OutputsResource, ParquetIOManager

defs = Definitions(
    assets=load_assets_from_modules([ingestion, features, training, scoring, monitoring]),
    asset_checks=automation.freshness_checks,
    jobs=automation.jobs,
    schedules=automation.schedules,
    sensors=automation.sensors,
    executor=in_process_executor,
    resources={
        "io_manager": ParquetIOManager(),
        "landing": LandingResource(),
        "model_registry": ModelRegistryResource(),
        "outputs": OutputsResource(),
    },
)
