"""Monitoring end to end, shared by the `monitor` stage and `mlops monitor --input`: load what
windows are compared with, give every window its verdict, write the reports.

Windows are judged against the monitored release's own bundle: its drift reference (summarised
from that bundle's training split when it was packaged), its test-split predictions and its test
metrics, never against whatever was trained since. When the bundle cannot judge this project's
traffic (`pipeline.monitor.compat.refusal`), the context carries the refusal and every window is
listed as not judged.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.monitor.assess import (
    PERFORMANCE_CHECKS,
    Context,
    assess,
    build_context,
    features_frame,
    measure,
    measured,
    read_scenarios,
    refused_context,
    rejudge,
    scenario_for,
)
from pipeline.monitor.compat import refusal
from pipeline.monitor.drift import check_settings
from pipeline.monitor.kept import KeptStore, digest, parts_of
from pipeline.monitor.monitored_bundle import monitored_bundle
from pipeline.monitor.windowing import MonitorWindow, Traffic, WindowPlan
from pipeline.params import ComputeSpec, MonitorSettings, ReportSpec
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
    windows: Sequence[MonitorWindow] | Traffic,
    ctx: Context,
    out_dir: Path,
    compute: ComputeSpec | None = None,
    kept: KeptStore | None = None,
    archived: Sequence[Mapping[str, Any]] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Assess every window and write the reports into `out_dir`; returns the report document
    and the per-window results (ordered by id, then source). In sketch mode with `compute` of
    kind dask, the windows are assessed on the cluster (`assess_all`).

    Given planned `Traffic` and a `kept` store, a window whose result is kept is not read nor
    assessed again (`assess_kept`); only the newest window of each group is read for the
    HTML report's charts. `archived`: the results of retired windows
    (`pipeline.monitor.retention`), listed as they were archived unless the window is back."""
    from pipeline.monitor.html import render
    from pipeline.monitor.report import newest, report_document, split, write_reports

    if isinstance(windows, Traffic):
        results, plans = assess_kept(windows, ctx, compute, kept or KeptStore(None))
        live = {(r["id"], r["source"]) for r in results}
        results += [dict(r) for r in archived if (r["id"], r["source"]) not in live]
        results.sort(key=lambda r: (r["id"], r["source"]))

        def frame_of(result: Mapping[str, Any]) -> MonitorWindow | None:
            if id(result) not in plans:  # archived: its rows are gone
                return None
            (window,) = windows.read([plans[id(result)]])
            return window
    else:
        results = assess_all(windows, ctx, compute)

        def frame_of(result: Mapping[str, Any]) -> MonitorWindow | None:
            (window,) = [w for w in windows if (w.id, w.source) == (result["id"], result["source"])]
            return window

    document = report_document(results, ctx)
    frames = {}
    for group, members in split(results).items():
        latest = newest(members)
        if latest is None or latest["drift"] is None:
            continue
        window = frame_of(latest)
        if window is None:
            continue
        frame, _ = features_frame(window.frame, list(ctx.reference.columns), ctx.types)
        frame[PREDICTION] = window.frame[PREDICTION].to_numpy()
        frames[group] = frame
    html = render(document, results, ctx, frames)
    write_reports(out_dir, document, results, ctx.settings.task, html)
    return document, results


def context_digest(ctx: Context) -> str:
    """Everything of the context a window's kept statistics depend on: the monitored bundle
    (its digest covers the drift reference, the test predictions and metrics it carries), how
    it is named in notes, the settings but the thresholds (`assess.measured`: a kept result
    is judged again under the current ones, `assess.rejudge`), the project's declared
    columns and types, and a refusal. The simulator's scenarios are not: they are attached
    to a result after it is kept."""
    bundle = ctx.bundle
    return digest(
        [
            "context",
            repr(measured(ctx.settings)),
            bundle.digest,
            bundle.label,
            bundle.source,
            bundle.release,
            bundle.task,
            sorted(ctx.declared),
            sorted(ctx.types.items()),
            None if ctx.refusal is None else ctx.refusal.to_dict(),
            ctx.reference.rows,
            ctx.reference.mode,
        ]
    )


def assess_kept(
    traffic: Traffic,
    ctx: Context,
    compute: ComputeSpec | None,
    kept: KeptStore,
    *,
    whole: bool = False,
) -> tuple[list[dict[str, Any]], dict[int, WindowPlan]]:
    """Every planned window's result, ordered by (id, source): kept ones read back, the others
    read, assessed (`assess_all`) and kept. Returns the results and, by `id()` of each result,
    the plan it came from.

    A window the reports show in detail (`report.detailed`) gets its full result; every other
    one its summary (`report.slim`: all the reports read of it), so a run decodes a small entry
    per old window and leaves its full result kept unread (`KeptStore.keep`). `whole`: every
    window's full result (what `mlops windows retain` archives).

    A kept result is stored judged, with the digest of the thresholds it was judged under
    (`judging_digest`): while they hold, it is used as read, and only a change of threshold
    judges it again (`assess.rejudge`, from the full result, then kept under the new ones), so
    a run costs a read per old window, not a verdict. Every result, just computed or kept, goes
    through the same JSON round trip, so both paths give the same values."""
    from pipeline.monitor.report import detailed, slim

    context = context_digest(ctx)
    judging = judging_digest(ctx)
    plans = traffic.plans
    keys = [digest(["result", plan.key, context]) for plan in plans]
    parts = [parts_of(p.clusters[0].files[0].name, traffic.newest.get(p.source)) for p in plans]
    light: list[dict[str, Any] | None] = []
    for key, part in zip(keys, parts, strict=True):
        summary = kept.get("summaries", key, part)
        usable = summary is not None and summary.pop(JUDGED_UNDER, None) == judging
        light.append(summary if usable else None)
    full: dict[int, dict[str, Any]] = {}

    def complete(wanted: Sequence[int]) -> None:
        """The full result of each window of `wanted`: kept (judged again if its thresholds
        changed), else assessed; each one judged now is kept with its summary."""
        found = {i: kept.get("results", keys[i], parts[i]) for i in wanted}
        missing = [i for i in wanted if found[i] is None]
        fresh = assess_all(traffic.read([plans[i] for i in missing]), ctx, compute, measure)
        for index, measured_now in zip(missing, fresh, strict=True):
            found[index] = dict(measured_now, scenario=None)  # scenarios attached below
        for index in wanted:
            stored = found[index]
            assert stored is not None
            if stored.pop(JUDGED_UNDER, None) != judging:
                # judged under this run's thresholds: the same verdict as measuring again
                entry = {**rejudge(stored, ctx), JUDGED_UNDER: judging}
                kept.put("results", keys[index], entry, parts[index])
                kept.put("summaries", keys[index], slim(entry), parts[index])
                stored = json.loads(json.dumps(entry, allow_nan=False))
                del stored[JUDGED_UNDER]
            elif light[index] is None:  # kept whole, its summary lost (a torn pack)
                summary = {**slim(stored), JUDGED_UNDER: judging}
                kept.put("summaries", keys[index], summary, parts[index])
            full[index] = stored
            light[index] = slim(stored)

    complete([i for i, summary in enumerate(light) if summary is None])
    shown = detailed([summary for summary in light if summary is not None], ctx.settings.report)
    complete(
        [
            i
            for i, summary in enumerate(light)
            if i not in full
            and summary is not None
            and (whole or (summary["id"], summary["source"]) in shown)
        ]
    )
    results: list[dict[str, Any]] = []
    by_plan: dict[int, WindowPlan] = {}
    for index, plan in enumerate(plans):
        summary = light[index]
        if index in full:
            result = full[index]
        else:
            assert summary is not None
            result = summary
            if kept.found_in("summaries", keys[index]) == parts[index][0]:
                kept.keep("results", keys[index], parts[index][0])
            else:  # moved into its month's pack: its full result moves with it
                kept.get("results", keys[index], parts[index])
        result.pop(PERFORMANCE_CHECKS, None)
        result["scenario"] = scenario_for(result["source"], result["files"], ctx.scenarios)
        results.append(result)
        by_plan[id(result)] = plan
    results.sort(key=lambda r: (r["id"], r["source"]))
    return results, by_plan


JUDGED_UNDER = "judged_under"  # a kept result's `judging_digest`


def judging_digest(ctx: Context) -> str:
    """The settings a kept result's verdicts depend on beyond its statistics (the thresholds):
    every monitoring setting but what only bounds the reports and the raw windows."""
    settings = dataclasses.replace(ctx.settings, report=ReportSpec(0, 0), keep_raw_days=None)
    return digest(["judging", repr(settings)])


def assess_all(
    windows: Sequence[MonitorWindow],
    ctx: Context,
    compute: ComputeSpec | None = None,
    how: Callable[[MonitorWindow, Context], dict[str, Any]] = assess,
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
        return [how(window, ctx) for window in windows]
    assert compute is not None

    with session(compute) as client:
        assert client is not None
        shared = client.scatter(ctx, broadcast=True, hash=False)
        items = [(window, shared) for window in windows]
        return list(ordered_map(client, how, items, name="mlops-monitor"))
