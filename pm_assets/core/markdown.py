"""Markdown tables for Dagster metadata: floats to 4 significant digits and cells escaped for a pipe table, the same
everywhere.

Not pandas' ``to_markdown``: its tabulate (installed with Dagster) shows floats to 6 significant digits, padded by
column, and leaves a ``|`` in a cell as it is, which splits the cell.
"""

from __future__ import annotations

import pandas as pd


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, index: bool = False, max_rows: int = 50) -> str:
    """A GitHub-style markdown table of the first ``max_rows`` rows (a note says how many were left out)."""
    if index:
        frame = frame.reset_index()
    if frame.empty:
        return "_no rows_"
    shown = frame.head(max_rows)
    lines = ["| " + " | ".join(_cell(c) for c in shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False, name=None)]
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more rows not shown_")
    return "\n".join(lines)
