"""The monitoring command of `mlops`: `mlops monitor --input PATH...` and `mlops monitor --check`.

Registered by `pipeline.cli.build_parser` through `add_commands`; handlers import what they need
when they run. User errors (MlopsError) reach `pipeline.cli.main`: message, exit 2. With
`--fail-on-breach`, a newest production window in breach, or not judged, exits 1 ("checked, and
the answer is no"), for CI. Simulated windows are printed, labelled, and never count.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BREACH_EXIT = 1
FAILING = ("breach", "not_judged")  # newest production statuses that --fail-on-breach fails on


def _counts(summary: Mapping[str, Any]) -> str:
    by_status = summary["by_status"]
    text = (
        f"{summary['windows']} window(s): {by_status['ok']} ok, {by_status['breach']} breach, "
        f"{by_status['insufficient_data']} insufficient data"
    )
    if by_status.get("not_judged"):
        text += f", {by_status['not_judged']} not judged"
    return text


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
    """With --fail-on-breach, 1 when the newest production window is in breach or was not
    judged (monitoring skipped, or traffic of another line); simulated windows never count."""
    newest = document["newest"]
    return BREACH_EXIT if fail_on_breach and newest and newest["status"] in FAILING else 0


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
        from pipeline.monitor.report import FORMAT, VERSION

        if document.get("format") != FORMAT or document.get("version") != VERSION:
            raise ArtifactError(
                f"{path}: not a {FORMAT} version {VERSION} report (an older version wrote it)",
                hint="run `dvc repro monitor`",
            )
        _print_document(document, f"from {path}")
        return _exit_code(document, args.fail_on_breach)
    from pipeline.monitor.manual import monitor_files
    from pipeline.paths import REPORT_HTML
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
    _print_document(document, f"report: {out_dir / REPORT_HTML}")
    return _exit_code(document, args.fail_on_breach)


def add_commands(sub: Any) -> None:
    """Register `mlops monitor` on the subparsers of `mlops`."""
    from pipeline.paths import MANUAL_REPORTS, MONITOR_REPORT

    p = sub.add_parser(
        "monitor",
        help="monitor a file of scored traffic by hand, or check the committed verdict",
        description="--input: judge window files or any CSV/Parquet of scored traffic against "
        "the monitored release's bundle and the drift reference it carries, as the `monitor` "
        "stage does, writing report.html/json, metrics.json and history.csv into --out. "
        "--check: print what a monitor report judged and its newest production verdict "
        "(simulated scenarios are shown apart and never count). --fail-on-breach exits 1 when "
        "the newest production window breaches or was not judged.",
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
        help=f"read a report (default {MONITOR_REPORT}) instead of monitoring",
    )
    p.add_argument(
        "--fail-on-breach",
        action="store_true",
        help="exit 1 when the newest production window is in breach or was not judged (for CI)",
    )
    p.add_argument(
        "--out",
        default=str(MANUAL_REPORTS),
        help=f"where --input writes its reports (default {MANUAL_REPORTS})",
    )
    p.add_argument(
        "--report",
        default=str(MONITOR_REPORT),
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
