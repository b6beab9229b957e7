"""The code location: assembles assets, checks, jobs and resources; no logic of its own."""

from dagster import Definitions, load_assets_from_modules

from pm_assets.assets import features, ingestion
from pm_assets.jobs import main_job
from pm_assets.resources import ParquetIOManager, RawFilesResource

defs = Definitions(
    assets=load_assets_from_modules([ingestion, features]),
    jobs=[main_job],
    resources={"io_manager": ParquetIOManager(), "raw_files": RawFilesResource()},
)
