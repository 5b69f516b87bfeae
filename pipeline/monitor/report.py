"""The monitor's outputs, written from the per-window verdicts (shared by the stage and
`mlops monitor --input`).

Production traffic is the headline; simulated windows (the `simulate` stage's scenarios, the
default data of `make run`) are a labelled section of their own and never count: not for
`mlops monitor --check`, not in metrics.json, not in history.csv, so never for maintenance.
"Production" here is every source but the simulator (`data/production/`, or the files given to
`mlops monitor --input`).

* `report.json` - what was judged (target, release, bundle, its reference) or why nothing was
  (`skipped`: the bundle cannot judge this project's traffic); then the production windows: the
  newest one's full verdict, a one-line summary of each of the latest `monitor.report.
  detail_windows` windows, the counts per status and the whole history in at most
  `monitor.report.history_buckets` buckets (`history`); then `simulated`: the same for the
  simulated scenarios. Its size is bounded whatever the history's length: about 1 KB per
  detailed window and 0.4 KB per bucket per group, plus the newest window in full;
* `metrics.json` - DVC metrics of the newest production window (drift share, drifted columns,
  performance on labelled rows, breach flag) and the number of breaching production windows;
* `history.csv` - one row per production window, keyed and ordered by window id, the maintain
  stage's input and a DVC plot. It is recomputed from every window on each run (the stage stays
  pure), so a new window adds exactly one row and leaves the others byte-identical. It stays
  one row per window (about 200 bytes): it is the history itself, what maintenance and
  `dvc plots` read, and writing it from kept results costs no assessment;
* `report.html` - see `pipeline.monitor.html`.

Nothing here reads the clock: the same windows and settings give the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.io import atomic_write_text, write_json
from pipeline.monitor.assess import (
    BREACH,
    INSUFFICIENT,
    NOT_JUDGED,
    PERFORMANCE_CHECKS,
    STATUSES,
    Context,
)
from pipeline.monitor.task_metrics import HEADLINE_METRIC, label_metrics
from pipeline.params import ReportSpec
from pipeline.paths import HISTORY_CSV, METRICS_JSON, REPORT_HTML, REPORT_JSON

FORMAT = "gitops-mlops/monitor-report"
VERSION = 2  # 2: production windows are the headline, simulated ones a section of their own
PRODUCTION, SIMULATED = "production", "simulated"  # the two groups of windows
SIMULATED_NOTE = (
    "simulated scenarios (the simulate stage): shown for what they inject, never counted by "
    "`mlops monitor --check`, metrics.json, history.csv or maintenance"
)


def group_of(result: Mapping[str, Any]) -> str:
    """Simulated windows are their own group; every other source is production traffic."""
    return SIMULATED if result["source"] == SIMULATED else PRODUCTION


def split(results: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The windows of each group, in their order."""
    out: dict[str, list[Mapping[str, Any]]] = {PRODUCTION: [], SIMULATED: []}
    for result in results:
        out[group_of(result)].append(result)
    return out


def newest(results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The window with the greatest id (ids sort by time); production wins a tie. Windows of
    another line of releases (an earlier dataset's traffic, listed as not judged) are never
    the headline while the monitored line has a window: their times say nothing about it."""
    own = [r for r in results if not r.get("other_line")] or list(results)
    if not own:
        return None
    return max(own, key=lambda r: (r["id"], r["source"] == "production"))


def detailed(results: Sequence[Mapping[str, Any]], bound: ReportSpec) -> set[tuple[str, str]]:
    """(id, source) of the windows the reports show in full: in each group, the latest
    `bound.detail_windows` (`section`, `html.group_body`) and the newest (`newest`). Every
    other window is read through `slim`."""
    ordered = sorted(results, key=lambda r: (r["id"], r["source"]))
    out: set[tuple[str, str]] = set()
    for members in split(ordered).values():
        latest = newest(members)
        for result in [*members[-bound.detail_windows :], *([latest] if latest else [])]:
            out.add((result["id"], result["source"]))
    return out


def slim(result: Mapping[str, Any]) -> dict[str, Any]:
    """A window's result as the reports read it when they do not show it in detail (history
    rows, summary lines, buckets, counts): without its per-column drift statistics and its
    checks, nine tenths of its bytes. Kept beside the full result (`monitor.kept`), so a run
    decodes this much per old window."""
    out = {k: v for k, v in result.items() if k not in ("checks", PERFORMANCE_CHECKS)}
    drift = out.get("drift")
    if isinstance(drift, Mapping):
        out["drift"] = {k: v for k, v in drift.items() if k != "columns"}
    return out


def summary_line(result: Mapping[str, Any]) -> dict[str, Any]:
    """What report.json keeps of every window (the newest one is also kept in full)."""
    drift = result.get("drift") or {}
    dataset = drift.get("dataset") or {}
    perf = (result.get("performance") or {}).get("metrics") or {}
    return {
        "id": result["id"],
        "source": result["source"],
        "start": result["start"],
        "end": result["end"],
        "rows": result["rows"],
        "labelled": result["labelled"],
        "release": result["release"],
        "status": result["status"],
        "other_line": bool(result.get("other_line")),
        "scenario": (result.get("scenario") or {}).get("scenario"),
        "drift_share": dataset.get("share"),
        "drifted_columns": list(dataset.get("drifted_columns") or []),
        "null_share_alerts": list(dataset.get("null_share_alerts") or []),
        "prediction_drifted": (result.get("prediction") or {}).get("drifted"),
        "metrics": {name: m.get("value") for name, m in perf.items()},
        "violated": violated(result),
        "violations": [v["message"] for v in result["violations"]],
        "notes": list(result.get("notes") or []),
    }


def violated(result: Mapping[str, Any]) -> dict[str, list[str]]:
    """Violated checks and their subjects (columns, metrics), e.g. {"null_share": ["age"]}."""
    out: dict[str, list[str]] = {}
    for v in result["violations"]:
        out.setdefault(v["check"], []).append(v["subject"])
    return {k: sorted(set(v)) for k, v in sorted(out.items())}


def counts(results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {status: sum(1 for r in results if r["status"] == status) for status in STATUSES}


def section(results: Sequence[Mapping[str, Any]], bound: ReportSpec) -> dict[str, Any]:
    """One group's part of report.json: counts, the newest window in full, the latest
    `bound.detail_windows` windows in a line each, the whole history in at most
    `bound.history_buckets` buckets (`history_summary`): its size does not grow with the
    history."""
    latest = newest(results)
    shown = results[-bound.detail_windows :]
    return {
        "summary": {
            "windows": len(results),
            "by_status": counts(results),
            "newest": None if latest is None else latest["id"],
            "newest_status": None if latest is None else latest["status"],
        },
        "newest": latest,
        "windows": [summary_line(r) for r in shown],
        "history": history_summary(results, bound),
    }


def history_summary(results: Sequence[Mapping[str, Any]], bound: ReportSpec) -> dict[str, Any]:
    """The whole history (in window order) in at most `bound.history_buckets` buckets of
    consecutive windows, each with its span, counts per status and drift share (mean and
    largest over the windows that have one)."""
    size = max(1, math.ceil(len(results) / bound.history_buckets))
    buckets = []
    for start in range(0, len(results), size):
        part = results[start : start + size]
        shares = [s for s in (_share(r) for r in part) if s is not None]
        buckets.append(
            {
                "first": part[0]["id"],
                "last": part[-1]["id"],
                "start": part[0]["start"],
                "end": part[-1]["end"],
                "windows": len(part),
                "rows": sum(int(r["rows"]) for r in part),
                "labelled": sum(int(r["labelled"]) for r in part),
                "by_status": counts(part),
                "dataset_drift": sum(1 for r in part if "dataset_drift" in violated(r)),
                "drift_share_mean": sum(shares) / len(shares) if shares else None,
                "drift_share_max": max(shares) if shares else None,
            }
        )
    return {
        "windows": len(results),
        "detailed": min(len(results), bound.detail_windows),
        "bucket_windows": size,
        "buckets": buckets,
    }


def _share(result: Mapping[str, Any]) -> float | None:
    value = (((result.get("drift") or {}).get("dataset")) or {}).get("share")
    return None if value is None else float(value)


def report_document(results: Sequence[Mapping[str, Any]], ctx: Context) -> dict[str, Any]:
    groups = split(results)
    refused = ctx.refusal
    return {
        "format": FORMAT,
        "version": VERSION,
        "monitored": {
            "target": ctx.settings.target,
            "release": ctx.bundle.release,
            "label": ctx.bundle.label,
            "task": ctx.bundle.task,
            "bundle": {
                "id": ctx.bundle.id,
                "source": ctx.bundle.source,
                "path": ctx.bundle.location,
                "format": ctx.bundle.format,
            },
            "reference_rows": None if refused else ctx.reference.rows,
            "reference_mode": None if refused else ctx.reference.mode,
            **({"rollout": ctx.bundle.rollout} if ctx.bundle.rollout else {}),
        },
        "judged": refused is None,
        "skipped": None if refused is None else refused.to_dict(),
        "windows_spec": {
            "by": ctx.settings.windows.by,
            "rows": ctx.settings.windows.rows,
            "span": ctx.settings.windows.span,
            "min_rows": ctx.settings.windows.min_rows,
        },
        **section(groups[PRODUCTION], ctx.settings.report),
        SIMULATED: {"note": SIMULATED_NOTE, **section(groups[SIMULATED], ctx.settings.report)},
    }


def metrics_document(results: Sequence[Mapping[str, Any]], task: str) -> dict[str, Any]:
    """Numbers and flags only, so `dvc metrics show/diff` can compare them: production windows
    only (`results` are the production group's)."""
    by_status = counts(results)
    out: dict[str, Any] = {
        "windows": len(results),
        "breaching_windows": by_status[BREACH],
        "insufficient_windows": by_status[INSUFFICIENT],
        "not_judged_windows": by_status[NOT_JUDGED],
    }
    latest = newest(results)
    if latest is not None:
        out["newest"] = newest_metrics(latest, task)
    return out


def newest_metrics(result: Mapping[str, Any], task: str) -> dict[str, Any]:
    drift = (result.get("drift") or {}).get("dataset") or {}
    pred = result.get("prediction") or {}
    perf = result.get("performance") or {}
    values = {m: (perf.get("metrics") or {}).get(m, {}).get("value") for m in label_metrics(task)}
    return {
        "breach": result["status"] == BREACH,
        "insufficient_data": result["status"] == INSUFFICIENT,
        "violations": len(result["violations"]),
        "rows": result["rows"],
        "labelled": result["labelled"],
        "drift_share": drift.get("share"),
        "drifted_columns": drift.get("count"),
        "null_share_alerts": len(drift.get("null_share_alerts") or []),
        "prediction_drifted": pred.get("drifted"),
        "performance": {k: v for k, v in values.items() if v is not None},
    }


# ------------------------------------------------------------------------------------- history
def history_fields(task: str) -> list[str]:
    return [
        "window",
        "source",
        "start",
        "end",
        "rows",
        "labelled",
        "release",
        "status",
        "violations",
        "checks",
        "drift_share",
        "drifted_count",
        "drifted",
        "null_share_alerts",
        "prediction_method",
        "prediction_statistic",
        "prediction_drifted",
        *label_metrics(task),
        "performance",
        "scenario",
    ]


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return format(float(value), ".6g")


def history_row(result: Mapping[str, Any], task: str) -> dict[str, str]:
    """One window as a row of history.csv (empty cells where a window has no value)."""
    drift = (result.get("drift") or {}).get("dataset") or {}
    pred = result.get("prediction") or {}
    perf = ((result.get("performance") or {}).get("metrics")) or {}
    row = {
        "window": result["id"],
        "source": result["source"],
        "start": result["start"],
        "end": result["end"],
        "rows": _num(result["rows"]),
        "labelled": _num(result["labelled"]),
        "release": result["release"] or "",
        "status": result["status"],
        "violations": _num(len(result["violations"])),
        "checks": ";".join(sorted({v["check"] for v in result["violations"]})),
        "drift_share": _num(drift.get("share")),
        "drifted_count": _num(drift.get("count")),
        "drifted": ";".join(drift.get("drifted_columns") or []),
        "null_share_alerts": ";".join(drift.get("null_share_alerts") or []),
        "prediction_method": pred.get("method") or "",
        "prediction_statistic": _num(pred.get("statistic")),
        "prediction_drifted": _num(pred.get("drifted")),
        "scenario": (result.get("scenario") or {}).get("scenario") or "",
    }
    for name in label_metrics(task):
        row[name] = _num(perf.get(name, {}).get("value"))
    row["performance"] = row[HEADLINE_METRIC[task]]
    return row


def history_csv(results: Sequence[Mapping[str, Any]], task: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=history_fields(task), lineterminator="\n")
    writer.writeheader()
    for result in sorted(results, key=lambda r: (r["id"], r["source"])):
        writer.writerow(history_row(result, task))
    return out.getvalue()


# -------------------------------------------------------------------------------------- writing
def write_reports(
    directory: Path,
    document: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    task: str,
    html: str,
) -> None:
    """Write the four outputs, each atomically; metrics and history from production windows."""
    production = split(results)[PRODUCTION]
    write_json(directory / REPORT_JSON, document)
    write_json(directory / METRICS_JSON, metrics_document(production, task))
    atomic_write_text(directory / HISTORY_CSV, history_csv(production, task))
    atomic_write_text(directory / REPORT_HTML, html)
