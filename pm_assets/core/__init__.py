"""Pure numeric core: no Dagster import anywhere below this package."""
