"""Retention of raw production windows (`monitor.retention.keep_raw_days`), applied by
`mlops windows retain [--apply]` outside the graph as a change a reviewer reads.

A production window is *retired* when it ended more than `keep_raw_days` days before the newest
production row (the data's time, never the clock: the same windows give the same plan), and only
as part of the oldest run of such windows of its line whose files hold no row of a later window
(so the windows left are cut exactly as before: a cut never moves). Its files are removed from
the workspace and their DVC pointers (`pipeline.windows.remove_windows`), and its verdict as the
reports show it now goes to `monitor/archive/<window id>.json` (git-tracked), which the `monitor`
stage reads as a declared dependency: the history, report.json and report.html still list it,
and a fresh clone reproduces the same reports. An archived window is not judged again (its
rows are gone): a new release or new thresholds apply to the windows still kept.

The change is one transaction (`pipeline.journal`): interrupted or failed, every path is
restored byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import DataError
from pipeline.io import read_json, write_json
from pipeline.monitor.kept import KeptStore
from pipeline.monitor.windowing import WindowPlan, survey
from pipeline.paths import MONITOR_ARCHIVE, MONITOR_KEPT, PRODUCTION_DIR
from pipeline.windows import Window

FORMAT = "gitops-mlops/monitor-archive"
VERSION = 1
DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class Retired:
    """One window to retire: its result (as the reports show it) and its files."""

    id: str
    end: str
    files: tuple[Window, ...]  # loose or packed (`pipeline.windows` owns the layout)
    result: Mapping[str, Any]


def read_archive(directory: Path) -> list[dict[str, Any]]:
    """The archived windows' results (oldest first); refuses an entry that is not one."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        data = read_json(path)
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("result"), dict)
        ):
            raise DataError(
                f"{path}: not an archived monitoring window ({FORMAT} version {VERSION})",
                hint="archived windows are written by `mlops windows retain --apply`; restore "
                "the file from git",
            )
        out.append(dict(data["result"]))
    return out


def plan(root: Path, params: Any) -> tuple[list[Retired], str]:
    """The windows `keep_raw_days` retires now, and why (or why none)."""
    from pipeline.monitor.engine import assess_kept, load_context

    days = params.monitor.keep_raw_days
    if days is None:
        return [], "monitor.retention.keep_raw_days is null: every raw window is kept"
    ctx = load_context(root, params.monitor, params.dataset)
    store = KeptStore(root / MONITOR_KEPT, read_only=True)
    traffic = survey({"production": root / PRODUCTION_DIR}, ctx.settings.windows, kept=store)
    if not traffic.plans:
        return [], "no production window"
    results, plans = assess_kept(traffic, ctx, None, store, whole=True)
    by_plan = {id(plans[id(r)]): r for r in results}
    newest = max(f.last for p in traffic.plans for c in p.clusters for f in c.files if f.last)
    cutoff = newest - days * DAY_NS
    retired: list[Retired] = []
    for line in _lines(traffic.plans):
        done = _oldest_run(line, cutoff)
        for window in line[:done]:
            result = by_plan[id(window)]
            files = tuple(
                f.window for c in window.clusters for f in c.files if f.window is not None
            )
            retired.append(Retired(result["id"], result["end"], files, result))
    when = datetime.fromtimestamp(cutoff / 1e9, tz=UTC).isoformat()
    return retired, f"windows that ended before {when} ({days} days before the newest row)"


def _lines(plans: Sequence[WindowPlan]) -> list[list[WindowPlan]]:
    """The windows of each line of releases, oldest first (as `survey` planned them)."""
    out: dict[str, list[WindowPlan]] = {}
    for window in plans:
        out.setdefault(window.clusters[0].files[0].line, []).append(window)
    return list(out.values())


def _oldest_run(windows: Sequence[WindowPlan], cutoff: int) -> int:
    """How many of the oldest windows retire: each ended before `cutoff`, and none shares a
    cluster (a file's rows) with a window left, so the windows left are cut as before."""
    done = 0
    for count, window in enumerate(windows, start=1):
        if max(f.last for c in window.clusters for f in c.files if f.last is not None) >= cutoff:
            break
        later = {id(c) for w in windows[count:] for c in w.clusters}
        if not any(id(c) in later for c in window.clusters):
            done = count  # a clean boundary after this window
    return done


def apply(root: Path, retired: Sequence[Retired]) -> list[Path]:
    """Archive every retired window's result, then remove its files, as one transaction:
    the journal holds every file `remove_windows` may rewrite (each partition's windows and
    packs, its DVC pointer and the .gitignore beside it), so a kill restores them too.
    Returns the partitions changed."""
    from pipeline.journal import transaction
    from pipeline.windows import POINTER, remove_windows

    windows = sorted({w for r in retired for w in r.files}, key=lambda w: (w.id, str(w.path)))
    folders = sorted({w.path.parent for w in windows})
    with transaction(root, "mlops windows retain --apply") as journal:
        for window in retired:
            target = journal.file(root / MONITOR_ARCHIVE / f"{window.id}.json")
            write_json(
                target,
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "files": sorted(w.name for w in window.files),
                    "result": dict(window.result),
                },
            )
        for folder in folders:
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    journal.file(path)
            for path in (folder.with_name(folder.name + POINTER), folder.parent / ".gitignore"):
                journal.file(path)
        changed = remove_windows(windows)
    return changed
