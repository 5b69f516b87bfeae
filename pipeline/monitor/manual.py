"""`mlops monitor --input`: monitoring by hand, outside the graph, on a window file or on any
CSV/Parquet of scored traffic, with the same bundle (and the reference it carries) and settings
as the stage. Where the stage writes a report saying why nothing was judged (the monitored
bundle cannot judge this project's traffic), this command refuses with that reason (exit 2).

Files are read by `pipeline.traffic.read_traffic`, as `mlops logs import` reads them: reserved
columns, `mlops predict`'s output columns as they are, or the columns named by
`--prediction-column` / `--label-column` / `--time-column` / `--id-column`. A file without a
time column is judged in file order (or at `--time`). The inputs are pooled and cut into
windows exactly as the stage cuts a source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError, DataError
from pipeline.params import ComputeSpec, MonitorSettings
from pipeline.settings import DatasetSpec
from pipeline.traffic import Columns, read_traffic


def monitor_files(
    root: Path,
    settings: MonitorSettings,
    dataset: DatasetSpec,
    paths: Sequence[Path],
    columns: Columns,
    out_dir: Path,
    *,
    time: str | None = None,
    compute: ComputeSpec | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Monitor the given files as one source ("manual"); write the reports into `out_dir`
    (in sketch mode on the cluster when `compute` says dask: `engine.assess_all`)."""
    from pipeline.monitor.engine import load_context, monitor
    from pipeline.monitor.windowing import windows_of

    ctx = load_context(root, settings, dataset)
    if ctx.refusal is not None:  # by hand, a refusal is an error: nothing is written
        raise ArtifactError(ctx.refusal.message, hint=ctx.refusal.hint)
    frames, notes = [], []
    for path in paths:
        traffic = read_traffic(path, dataset, settings.task, columns, time=time, require_time=False)
        frames.append(traffic.frame)
        notes += traffic.notes
    windows = windows_of("manual", frames, [p.name for p in paths], ctx.settings.windows)
    if not windows:
        raise DataError("the input holds no rows: nothing to monitor")
    document, _ = monitor(windows, ctx, out_dir, compute)
    return document, notes
