"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

from pm_assets.partitions import daily_partitions

#: Everything, for the main command and for backfills of the whole history.
main_job = define_asset_job(
    "main_job",
    selection=AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Materialize the whole graph; launch it over a partition range to process history in one run.",
)
