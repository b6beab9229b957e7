"""One module per pipeline stage: ingestion, features (features and labels), training, scoring, monitoring."""

import warnings

from dagster import BetaWarning

# Two beta parameters of Dagster 1.13 are used on purpose: single-run backfills (`backfill_policy`) and lookback
# windows that start before the first partition (`allow_nonexistent_upstream_partitions`). Their warning would be
# printed by every process that loads the code (code server, every run worker), so exactly these are silenced.
for _parameter in ("backfill_policy", "allow_nonexistent_upstream_partitions"):
    warnings.filterwarnings(
        "ignore", message=rf"Parameter `{_parameter}` .* is currently in beta", category=BetaWarning
    )
