"""The code location: assembles assets, checks, jobs and resources; no logic of its own."""

from dagster import Definitions, load_assets_from_modules

from pm_assets.assets import features, ingestion, monitoring, scoring, training
from pm_assets.jobs import main_job
from pm_assets.resources import ModelRegistryResource, OutputsResource, ParquetIOManager, RawFilesResource

defs = Definitions(
    assets=load_assets_from_modules([ingestion, features, training, scoring, monitoring]),
    jobs=[main_job],
    resources={"io_manager": ParquetIOManager(), "raw_files": RawFilesResource(), "model_registry": ModelRegistryResource(),
               "outputs": OutputsResource()},
)
