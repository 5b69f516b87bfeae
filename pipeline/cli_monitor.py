"""The monitoring command of `mlops`: `mlops monitor --input PATH...` and `mlops monitor --check`.

Registered by `pipeline.cli.build_parser` through `add_commands`; handlers import what they need
when they run. User errors (MlopsError) reach `pipeline.cli.main`: message, exit 2. With
`--fail-on-breach`, a newest window in breach exits 1 ("checked, and the answer is no"), for CI.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BREACH_EXIT = 1


def _print_document(document: Mapping[str, Any], where: str) -> None:
    summary, latest = document["summary"], document["newest"]
    by_status = summary["by_status"]
    if latest is None:
        print("no windows: nothing to judge")
    else:
        scenario = (latest.get("scenario") or {}).get("scenario")
        extra = f", scenario {scenario}" if scenario else ""
        print(
            f"newest window {latest['id']} ({latest['source']}{extra}): "
            f"{latest['status'].upper()}, {latest['rows']} rows, {latest['labelled']} labelled"
        )
        for v in latest["violations"]:
            print(f"  - {v['check']}: {v['message']}")
        for note in latest.get("notes") or []:
            print(f"  note: {note}")
    print(
        f"{summary['windows']} window(s): {by_status['ok']} ok, {by_status['breach']} breach, "
        f"{by_status['insufficient_data']} insufficient data; {where}"
    )


def _exit_code(document: Mapping[str, Any], fail_on_breach: bool) -> int:
    newest = document["newest"]
    return BREACH_EXIT if fail_on_breach and newest and newest["status"] == "breach" else 0


def _monitor(args: argparse.Namespace) -> int:
    from pipeline import config
    from pipeline.errors import ArtifactError
    from pipeline.io import read_json

    root = config.find_root()
    if args.check:
        path = Path(args.report)
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist", hint="run `dvc repro monitor`")
        document = read_json(path)
        _print_document(document, f"from {path}")
        return _exit_code(document, args.fail_on_breach)
    from pipeline.monitor.manual import monitor_files
    from pipeline.traffic import Columns

    params = config.load_params(root, hyperparameters=False)
    out_dir = Path(args.out)
    document, notes = monitor_files(
        root,
        params,
        [Path(p) for p in args.input],
        Columns(args.time_column, args.prediction_column, args.label_column, args.id_column),
        out_dir,
        time=args.time,
    )
    for note in notes:
        print(f"note: {note}")
    _print_document(document, f"report: {out_dir / 'report.html'}")
    return _exit_code(document, args.fail_on_breach)


def add_commands(sub: Any) -> None:
    """Register `mlops monitor` on the subparsers of `mlops`."""
    from pipeline.monitor.paths import MANUAL_REPORT_DIR, REPORT_DIR, REPORT_JSON

    p = sub.add_parser(
        "monitor",
        help="monitor a file of scored traffic by hand, or check the committed verdict",
        description="--input: judge window files or any CSV/Parquet of scored traffic against "
        "the drift reference and the monitored bundle, as the `monitor` stage does, writing "
        "report.html/json, metrics.json and history.csv into --out. --check: print the newest "
        "verdict of a monitor report. --fail-on-breach exits 1 when the newest window breaches.",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="window files (.parquet) or CSV/Parquet files of scored traffic (e.g. the "
        "output of `mlops predict`)",
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help=f"read a report (default {REPORT_DIR / REPORT_JSON}) instead of monitoring",
    )
    p.add_argument(
        "--fail-on-breach",
        action="store_true",
        help="exit 1 when the newest window is in breach (for CI)",
    )
    p.add_argument(
        "--out",
        default=str(MANUAL_REPORT_DIR),
        help=f"where --input writes its reports (default {MANUAL_REPORT_DIR})",
    )
    p.add_argument(
        "--report",
        default=str(REPORT_DIR / REPORT_JSON),
        help="the report --check reads",
    )
    add_column_flags(p)
    p.add_argument(
        "--time",
        help="one time (ISO 8601) for every row of a file without a time column "
        "(default: file order)",
    )
    p.set_defaults(handler=_monitor)


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
