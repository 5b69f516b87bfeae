"""`mlops monitor --input`: monitoring by hand, outside the graph, on a window file or on any
CSV/Parquet of scored traffic, with the same bundle (and the reference it carries) and settings
as the stage. Where the stage writes a report saying why nothing was judged (the monitored
bundle cannot judge this project's traffic), this command refuses with that reason (exit 2).

Scored traffic needs a prediction and a time per row (the reserved `__prediction__` and
`__time__` columns, or the columns named by `--prediction-column` / `--time-column`); labels
come from `__label__`, a `--label-column`, or else the dataset's target column when present.
The inputs are pooled and cut into windows exactly as the stage cuts a source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ArtifactError, DataError
from pipeline.windows import LABEL, PREDICTION, TIME

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Columns:
    """Where the reserved columns are in a user's file (None: the reserved name itself)."""

    prediction: str | None = None
    label: str | None = None
    time: str | None = None


def read_traffic(path: Path, columns: Columns, target: str) -> tuple[pd.DataFrame, list[str]]:
    """One input file as window rows, plus notes on how its columns were read."""
    from pipeline.data import read_table

    frame = read_table(path)
    notes = []
    renames = {
        given: reserved
        for given, reserved in (
            (columns.prediction, PREDICTION),
            (columns.label, LABEL),
            (columns.time, TIME),
        )
        if given is not None
    }
    absent = [given for given in renames if given not in frame.columns]
    if absent:
        raise DataError(f"{path}: no column(s) {', '.join(map(repr, absent))}")
    frame = frame.rename(columns=renames)
    if LABEL not in frame.columns and target in frame.columns:
        frame = frame.rename(columns={target: LABEL})
        notes.append(f"{path.name}: labels read from the target column {target!r}")
    missing = [c for c in (PREDICTION, TIME) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: scored traffic needs the column(s) {', '.join(missing)}",
            hint="name them with --prediction-column / --time-column (timestamps order the "
            "traffic into windows), or write windows with `mlops logs snapshot`",
        )
    return frame, notes


def monitor_files(
    root: Path,
    params: dict[str, Any],
    paths: Sequence[Path],
    columns: Columns,
    out_dir: Path,
) -> tuple[dict[str, Any], list[str]]:
    """Monitor the given files as one source ("manual"); write the reports into `out_dir`."""
    from pipeline.monitor.engine import load_context, monitor
    from pipeline.monitor.windowing import windows_of

    ctx = load_context(root, params)
    if ctx.refusal is not None:  # by hand, a refusal is an error: nothing is written
        raise ArtifactError(ctx.refusal.message, hint=ctx.refusal.hint)
    frames, notes = [], []
    for path in paths:
        frame, more = read_traffic(path, columns, params["dataset"]["target"])
        frames.append(frame)
        notes += more
    windows = windows_of("manual", frames, [p.name for p in paths], ctx.settings.windows)
    if not windows:
        raise DataError("the input holds no rows: nothing to monitor")
    document, _ = monitor(windows, ctx, out_dir)
    return document, notes
