"""Monitoring end to end, shared by the `monitor` stage and `mlops monitor --input`: load what
windows are compared with, give every window its verdict, write the reports.

Windows are judged against the monitored release's own bundle: its drift reference (summarised
from that bundle's training split when it was packaged), its test-split predictions and its test
metrics, never against whatever was trained since.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError
from pipeline.monitor.assess import Context, assess, build_context, features_frame, read_scenarios
from pipeline.monitor.bundles import monitored_bundle
from pipeline.monitor.paths import SIMULATED_DIR
from pipeline.monitor.settings import MonitorSettings
from pipeline.monitor.windowing import MonitorWindow
from pipeline.profile.reference import monitored_columns
from pipeline.settings import DatasetSpec
from pipeline.windows import PREDICTION


def load_context(root: Path, params: Mapping[str, Any]) -> Context:
    """Settings, the monitored bundle with its drift reference, and the simulator's scenarios."""
    settings = MonitorSettings.from_params(params)
    bundle = monitored_bundle(root, settings.target)
    if bundle.task != settings.task:
        raise ArtifactError(
            f"{bundle.path}: a {bundle.task} bundle, but the task is {settings.task}",
            hint="release a bundle of the current task (`dvc repro`, `mlops release`) or set "
            "monitor.target to a target serving one",
        )
    reference = bundle.reference()
    expected = monitored_columns(DatasetSpec.from_params(params["dataset"]))
    if reference.kinds != expected:
        raise ArtifactError(
            f"{bundle.location}: its reference summarises {sorted(reference.kinds)} but the "
            f"dataset declares {sorted(expected)} for monitoring",
            hint="release a bundle of the current dataset (`dvc repro`, `mlops release`)",
        )
    return build_context(settings, reference, bundle, read_scenarios(root / SIMULATED_DIR))


def monitor(
    windows: Sequence[MonitorWindow], ctx: Context, out_dir: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Assess every window and write the reports into `out_dir`; returns the report document
    and the per-window results (in window order)."""
    from pipeline.monitor.html import render
    from pipeline.monitor.report import newest, report_document, write_reports

    results = [assess(window, ctx) for window in windows]
    document = report_document(results, ctx)
    latest = newest(results)
    frame = None
    if latest is not None:
        (window,) = [w for w in windows if (w.id, w.source) == (latest["id"], latest["source"])]
        frame, _ = features_frame(window.frame, list(ctx.reference.columns))
        frame[PREDICTION] = window.frame[PREDICTION].to_numpy()
    html = render(document, results, ctx, frame)
    write_reports(out_dir, document, results, ctx.settings.task, html)
    return document, results
