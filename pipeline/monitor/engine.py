"""Monitoring end to end, shared by the `monitor` stage and `mlops monitor --input`: load what
windows are compared with, give every window its verdict, write the reports.

Windows are judged against the monitored release's own bundle: its drift reference (summarised
from that bundle's training split when it was packaged), its test-split predictions and its test
metrics, never against whatever was trained since. When the bundle cannot judge this project's
traffic (`pipeline.monitor.compat.refusal`), the context carries the refusal and every window is
listed as not judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.monitor.assess import (
    Context,
    assess,
    build_context,
    features_frame,
    read_scenarios,
    refused_context,
)
from pipeline.monitor.compat import refusal
from pipeline.monitor.drift import check_settings
from pipeline.monitor.monitored_bundle import monitored_bundle
from pipeline.monitor.windowing import MonitorWindow
from pipeline.params import ComputeSpec, MonitorSettings
from pipeline.paths import SIMULATED_DIR
from pipeline.settings import DatasetSpec
from pipeline.windows import PREDICTION


def load_context(root: Path, settings: MonitorSettings, dataset: DatasetSpec) -> Context:
    """Settings, the monitored bundle with its drift reference, and the simulator's scenarios;
    a refused context when the bundle cannot judge this project's traffic."""
    check_settings(settings.drift)
    bundle = monitored_bundle(root, settings.target)
    scenarios = read_scenarios(root / SIMULATED_DIR)
    refused = refusal(bundle, settings.task, dataset)
    if refused is not None:
        return refused_context(settings, bundle, refused, scenarios)
    declared = [c.name for c in dataset.columns]
    return build_context(settings, bundle.reference(), bundle, scenarios, declared)


def monitor(
    windows: Sequence[MonitorWindow],
    ctx: Context,
    out_dir: Path,
    compute: ComputeSpec | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Assess every window and write the reports into `out_dir`; returns the report document
    and the per-window results (in window order). In sketch mode with `compute` of kind dask,
    the windows are assessed on the cluster (`assess_all`)."""
    from pipeline.monitor.html import render
    from pipeline.monitor.report import newest, report_document, split, write_reports

    results = assess_all(windows, ctx, compute)
    document = report_document(results, ctx)
    frames = {}
    for group, members in split(results).items():
        latest = newest(members)
        if latest is None or latest["drift"] is None:
            continue
        (window,) = [w for w in windows if (w.id, w.source) == (latest["id"], latest["source"])]
        frame, _ = features_frame(window.frame, list(ctx.reference.columns), ctx.types)
        frame[PREDICTION] = window.frame[PREDICTION].to_numpy()
        frames[group] = frame
    html = render(document, results, ctx, frames)
    write_reports(out_dir, document, results, ctx.settings.task, html)
    return document, results


def assess_all(
    windows: Sequence[MonitorWindow], ctx: Context, compute: ComputeSpec | None = None
) -> list[dict[str, Any]]:
    """Every window's verdict, in window order.

    Sketch mode is for windows too large to test in one piece; with `compute` of kind dask
    each window is one task: a worker streams it through the sketches and gives back only its
    verdict (the context, with the reference, is sent to every worker once). A window is the
    unit of a verdict, so a worker runs exactly the code a local run does on exactly the same
    rows, and the verdicts and certified bounds are the same numbers wherever and on however
    many workers they ran. Exact mode (the default, small windows), windows of fewer rows in all
    than `compute.min_rows` and a refused context stay here: there the task would cost more
    than the test."""
    from pipeline.compute import on_cluster, ordered_map, session

    distribute = (
        on_cluster(compute, sum(len(window.frame) for window in windows))
        and ctx.settings.drift.mode == "sketch"
        and ctx.refusal is None
        and len(windows) > 0
    )
    if not distribute:
        return [assess(window, ctx) for window in windows]
    assert compute is not None

    with session(compute) as client:
        assert client is not None
        shared = client.scatter(ctx, broadcast=True, hash=False)
        items = [(window, shared) for window in windows]
        return list(ordered_map(client, assess, items, name="mlops-monitor"))
