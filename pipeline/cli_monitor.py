"""The monitoring command of `mlops`: `mlops monitor [--check]` (the committed verdict) and
`mlops monitor --input PATH...` (monitoring by hand).

Registered by `pipeline.cli.build_parser` through `add_commands`; handlers import what they need
when they run. User errors (MlopsError) reach `pipeline.cli.main`: message, exit 2. With
`--check` (the committed report) or `--fail-on-breach` (either), a newest production window in
breach, or not judged, exits 1 ("checked, and the answer is no"), for CI. Simulated windows are
printed, labelled, and never count.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.cli_args import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_check,
    add_out,
    command,
    project_path,
)

BREACH_EXIT = EXIT_CHECK_FAILED
FAILING = ("breach", "not_judged")  # newest production statuses that --check fails on
COUNTED = {"ok": "ok", "breach": "breach", "insufficient_data": "insufficient data"}


def _counts(summary: Mapping[str, Any]) -> str:
    from pipeline.summary import window_counts

    return window_counts(summary, COUNTED)


def _window_line(latest: Mapping[str, Any]) -> list[str]:
    scenario = (latest.get("scenario") or {}).get("scenario")
    extra = f" (scenario {scenario})" if scenario else ""
    lines = [
        f"newest {latest['source']} window {latest['id']}{extra}: "
        f"{latest['status'].upper()}, {latest['rows']} rows, {latest['labelled']} labelled"
    ]
    lines += [f"  - {v['check']}: {v['message']}" for v in latest["violations"]]
    lines += [f"  note: {note}" for note in latest.get("notes") or []]
    return lines


def _print_document(document: Mapping[str, Any], where: str) -> None:
    """What was judged, the production verdict (the headline), then the simulated scenarios,
    which never count."""
    skipped = document.get("skipped")
    if skipped:
        print(f"monitoring skipped, no window judged: {skipped['reason']}")
        for difference in skipped["differences"]:
            print(f"  - {difference}")
        print(f"  hint: {skipped['hint']}")
    else:
        print(f"judged against {document['monitored']['label']}")
    latest = document["newest"]
    if latest is None:
        print("no production windows yet: nothing judged")
    else:
        print("\n".join(_window_line(latest)))
    print(f"production: {_counts(document['summary'])}; {where}")
    simulated = document["simulated"]
    if simulated["windows"]:
        newest = simulated["newest"]
        scenario = (newest.get("scenario") or {}).get("scenario") or newest["id"]
        print(
            f"simulated scenarios (not counted for --check or maintenance): "
            f"{_counts(simulated['summary'])}; newest {scenario}: {newest['status'].upper()}"
        )


def _exit_code(document: Mapping[str, Any], fail_on_breach: bool) -> int:
    """With --check or --fail-on-breach, 1 when the newest production window is in breach or
    was not judged (monitoring skipped, or traffic of another line); simulated windows never
    count."""
    newest = document["newest"]
    return BREACH_EXIT if fail_on_breach and newest and newest["status"] in FAILING else EXIT_OK


def _committed(args: argparse.Namespace) -> int:
    """Print what the committed monitor report (--report) judged; with --check (or
    --fail-on-breach) its newest production verdict is the exit status."""
    from pipeline.errors import ArtifactError
    from pipeline.io import read_json
    from pipeline.monitor.report import FORMAT, VERSION
    from pipeline.paths import MONITOR_REPORT

    path = project_path(args.root, args.report, MONITOR_REPORT)
    shown = args.report or MONITOR_REPORT  # as typed, or the project's own
    if not path.is_file():
        raise ArtifactError(f"{shown} does not exist", hint="run `dvc repro monitor`")
    document = read_json(path)
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ArtifactError(
            f"{shown}: not a {FORMAT} version {VERSION} report (an older version wrote it)",
            hint="run `dvc repro monitor`",
        )
    _print_document(document, f"from {shown}")
    return _exit_code(document, args.check or args.fail_on_breach)


def _monitor(args: argparse.Namespace) -> int:
    """check the committed monitoring verdict, or monitor a file of scored traffic by hand

    Without --input: print what the committed monitor report judged and its newest production
    verdict (simulated scenarios are shown apart and never count); --check also exits 1 when
    that window breaches or was not judged. --input: judge window files or any CSV/Parquet of
    scored traffic against the monitored release's bundle and the drift reference it carries,
    as the `monitor` stage does, writing report.html/json, metrics.json and history.csv into
    --out; --fail-on-breach exits 1 when the newest production window breaches or was not
    judged.
    """
    if args.input is None:
        return _committed(args)
    from pipeline import config
    from pipeline.monitor.manual import monitor_files
    from pipeline.paths import MANUAL_REPORTS, REPORT_HTML
    from pipeline.traffic import Columns

    root = args.root
    params = config.load_config(root, hyperparameters=False)
    out_dir = project_path(root, args.out, MANUAL_REPORTS)
    shown = Path(args.out or MANUAL_REPORTS)  # as typed, or the project's own
    document, notes = monitor_files(
        root,
        params.monitor,
        params.dataset,
        [Path(p) for p in args.input],
        Columns(args.time_column, args.prediction_column, args.label_column, args.id_column),
        out_dir,
        time=args.time,
        compute=params.compute,
    )
    for note in notes:
        print(f"note: {note}")
    _print_document(document, f"report: {shown / REPORT_HTML}")
    return _exit_code(document, args.fail_on_breach)


def add_commands(sub: Any) -> None:
    """Register `mlops monitor` on the subparsers of `mlops`."""
    from pipeline.paths import MANUAL_REPORTS, MONITOR_REPORT

    p = command(sub, "monitor", _monitor)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="window files (.parquet) or CSV/Parquet files of scored traffic (e.g. the "
        "output of `mlops predict`)",
    )
    add_check(
        mode,
        "the committed report's newest production window is in breach or was not judged",
    )
    p.add_argument(
        "--fail-on-breach",
        action="store_true",
        help="exit 1 when the newest production window is in breach or was not judged (for "
        "CI; what --check does to the committed report)",
    )
    add_out(p, MANUAL_REPORTS, "where --input writes its reports")
    p.add_argument(
        "--report",
        metavar="FILE",
        help=f"the report read without --input (default: {MONITOR_REPORT} in the project)",
    )
    add_column_flags(p)
    p.add_argument(
        "--time",
        help="one time (ISO 8601) for every row of a file without a time column "
        "(default: file order)",
    )


def _retain(args: argparse.Namespace) -> int:
    """Retire raw production windows older than monitor.retention.keep_raw_days.

    A window that ended more than keep_raw_days days before the newest production row (the
    data's time, not the clock) leaves data/production/ (its file and DVC pointer); its verdict
    is archived in monitor/archive/ so the history and the reports still show it (see
    pipeline/monitor/retention.py). A dry run unless --apply; the change is one transaction
    (restored whole when interrupted): commit it, then `dvc repro`."""
    from pipeline import config
    from pipeline.errors import ConfigError
    from pipeline.monitor.retention import apply, plan

    root = args.root
    params = config.load_config(root, hyperparameters=False)
    if params.monitor.keep_raw_days is None:
        raise ConfigError(
            "monitor.retention.keep_raw_days is null: no retention is declared, every raw "
            "window is kept",
            hint="declare how long raw windows stay in conf/monitor/ (retention: "
            "{keep_raw_days: 90}), run `mlops compose`, then `mlops windows retain`",
        )
    retired, why = plan(root, params)
    print(f"retention: {why}")
    if not retired:
        print("nothing to retire")
        return EXIT_OK
    for window in retired:
        names = ", ".join(p.name for p in window.files)
        print(f"  {window.id} (ended {window.end}, {window.result['status']}): {names}")
    files = {p for w in retired for p in w.files}
    if not args.apply:
        print(
            f"dry run: {len(retired)} window(s), {len(files)} file(s) would be retired; "
            "run again with --apply"
        )
        return EXIT_OK
    apply(root, retired)
    print(
        f"retired {len(retired)} window(s): {len(files)} file(s) removed, verdicts archived "
        "in monitor/archive/; review and commit, then `dvc repro`"
    )
    return EXIT_OK


def add_retain_command(windows: Any) -> None:
    """Register `mlops windows retain` in the `windows` group (`pipeline.cli_serve` makes it,
    beside `seal` and `migrate`)."""
    p = command(windows, "retain", _retain)
    p.add_argument(
        "--apply",
        action="store_true",
        help="remove the windows and archive their verdicts (default: a dry run)",
    )


def add_column_flags(p: argparse.ArgumentParser) -> None:
    """The flags naming a user's columns (`pipeline.traffic.Columns`), shared with
    `mlops logs import`."""
    p.add_argument(
        "--time-column", metavar="C", help="the column holding each row's time (__time__)"
    )
    p.add_argument(
        "--prediction-column",
        metavar="C",
        help="the column holding predictions (default: __prediction__, or `mlops predict`'s "
        "prediction)",
    )
    p.add_argument(
        "--label-column",
        metavar="C",
        help="the column holding labels (default: __label__, or the dataset's target column)",
    )
    p.add_argument(
        "--id-column",
        metavar="C",
        help="the column holding unique request ids (__request_id__; default: none)",
    )
