"""`mlops summary`: the few lines `make run` ends with: champion, test metrics, artifact paths."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import ArtifactError
from pipeline.paths import (
    CHAMPION_RECORD,
    DEPLOY_DIR,
    GATE_REPORTS_DIR,
    MONITOR_REPORT,
    SELECTION_REPORT,
)
from pipeline.release_record import read_record
from pipeline.windows import PREDICTION


def release_lines(root: Path) -> list[str]:
    """One line per target: the released version and the last gate decision."""
    lines = []
    for record in sorted((root / DEPLOY_DIR).glob("*.json")):
        declared = read_record(record, record.stem).release  # the one parser: refuses a bad one
        report = root / GATE_REPORTS_DIR / record.name
        gate = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
        decision = gate.get("decision", "not run")
        lines.append(f"  {record.stem}: released {declared or 'nothing yet'}; gate: {decision}")
    return ["deployment (deploy/<target>.json):", *lines] if lines else []


def render_summary(root: Path) -> str:
    selection_path = root / SELECTION_REPORT
    champion_path = root / CHAMPION_RECORD
    try:
        selection = json.loads(selection_path.read_text(encoding="utf-8"))
        champion = json.loads(champion_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{exc.filename} is missing", hint="run `make run` (or `dvc repro`)"
        ) from exc
    rule = selection["rule"]
    lines = [
        f"champion: {champion['name']} ({champion['estimator']}), task {champion['task']}",
        f"  why: {selection['reason']}",
        "  test metrics: "
        + ", ".join(f"{k} {v:.4f}" for k, v in champion["metrics"]["test"].items()),
        f"  candidates ({rule['metric']} on {rule['scored_on']}): "
        + ", ".join(
            f"{n} {_score(c['scores'][rule['scored_on']].get(rule['metric']))}"
            + ("" if c["eligible"] else " (ineligible)")
            for n, c in sorted(
                selection["candidates"].items(), key=lambda kv: kv[1]["declared_order"]
            )
        ),
        *release_lines(root),
        *monitoring_lines(root),
        "artifacts:",
        "  models/champion/model.skops        the champion (skops; sha256 in champion.json)",
        "  reports/develop/selection.json     every candidate's scores and the reason",
        "  reports/develop/model_card.md      model card",
        "  reports/develop/metrics.json       `dvc metrics show` / `dvc metrics diff`",
        "  reports/develop/plots/             `dvc plots show`",
        "  reports/monitor/report.html        monitoring: verdicts, history, plots (one file)",
    ]
    return "\n".join(lines)


def _score(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


RECENT_WINDOWS = 6


def monitoring_lines(root: Path) -> list[str]:
    """What monitoring judged (the release and bundle) and its production verdict, then the
    simulated scenarios apart (what each was found to violate beside what the simulator
    injected; they never count), from reports/monitor/report.json."""
    path = root / MONITOR_REPORT
    if not path.is_file():
        return ["monitoring: no report yet (`dvc repro monitor`)"]
    report = json.loads(path.read_text(encoding="utf-8"))
    if "simulated" not in report:
        return ["monitoring: the report is from an older version (`dvc repro monitor`)"]
    mon, skipped = report["monitored"], report["skipped"]
    if skipped:
        lines = [f"monitoring skipped, no window judged: {skipped['reason']}"]
        lines += [f"  - {d}" for d in skipped["differences"]] + [f"  hint: {skipped['hint']}"]
    else:
        lines = [f"monitoring: judged against {mon['label']}"]
    summary = report["summary"]
    if report["newest"] is None:
        lines.append("  production: no windows yet")
    else:
        lines.append(
            f"  production: {_counts(summary)}; newest {summary['newest']}: "
            f"{summary['newest_status'].upper()}"
        )
    for window in report["windows"][-RECENT_WINDOWS:]:
        lines.append(f"    {window['id']:<28} {window['status']}{_found(window)}")
    simulated = report["simulated"]
    if simulated["windows"]:
        lines.append(
            f"  simulated scenarios (never counted for --check or maintenance): "
            f"{_counts(simulated['summary'])}"
        )
    for window in simulated["windows"][-RECENT_WINDOWS:]:
        name = window["scenario"] or window["source"]
        lines.append(f"    {name:<16} {window['status']}{_found(window)}")
    return lines


def window_counts(summary: Mapping[str, Any], words: Mapping[str, str], lead: str = ": ") -> str:
    """'N window(s)' then the count of each status, in the order and the words of `words`
    (status -> word), and of windows not judged when there are any: the one way `mlops
    monitor` and `mlops summary` count a monitor report's windows."""
    by_status = summary["by_status"]
    parts = [f"{by_status[status]} {word}" for status, word in words.items()]
    if by_status.get("not_judged"):
        parts.append(f"{by_status['not_judged']} not judged")
    return f"{summary['windows']} window(s){lead}" + ", ".join(parts)


COUNTED = {"breach": "breaching", "ok": "ok", "insufficient_data": "with insufficient data"}


def _counts(summary: dict) -> str:
    return window_counts(summary, COUNTED, lead=", ")


def _found(window: dict) -> str:
    if window["status"] == "not_judged" and window.get("notes"):
        return ": " + window["notes"][0]
    parts = []
    for check, subjects in window["violated"].items():
        if check == "dataset_drift":
            parts.append(f"dataset_drift ({window['drift_share']:.0%} of columns)")
        elif subjects == [PREDICTION]:
            parts.append(check)
        else:
            parts.append(f"{check} {', '.join(subjects)}")
    return ": " + "; ".join(parts) if parts else ""
