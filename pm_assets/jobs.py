"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

#: Everything, for the main command and for backfills of the whole history (partitioning is inferred from the
#: selected assets: the shared daily partitions).
main_job = define_asset_job(
    "main_job",
    selection=AssetSelection.all(),
    description="Materialize the whole graph; launch it over a partition range to process history in one run.",
)
