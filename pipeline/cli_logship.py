"""`mlops logs ship` and `mlops logs fetch`: prediction logs from the serving machine to CI.

Registered under `mlops logs` by `pipeline.cli_serve.add_commands`. Thin: parse, resolve the
target's log directory and the location, call `pipeline.deploy.logship`. Imports are local so
`mlops --help` never pays for DVC's filesystems.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cli_args import EXIT_OK, MONITORED, add_target, command, target_or_monitored


@dataclass(frozen=True)
class _Logs:
    """What both log commands work on: the target, its log directory, the ship location."""

    root: Path
    target: str
    log_dir: Path
    location: Any  # pipeline.deploy.logship.Location


def _logs(args: argparse.Namespace) -> _Logs:
    from pipeline import config
    from pipeline.deploy.logship import location

    root = args.root
    params = config.load_config(root, hyperparameters=False)
    target = target_or_monitored(args.target, params)
    settings = params.deploy.service(target)
    loc = location(root, url=args.url, remote=args.remote)
    return _Logs(root, target, settings.log_dir, loc)


def _ship(args: argparse.Namespace) -> int:
    """serving side: copy the prediction logs to a ship location (idempotent)

    Copy the target's prediction and feedback logs (serve.log.dir) to a ship location that CI
    reads with `mlops logs fetch`: any URL a DVC remote can be (s3://, gs://, azure://, ssh://,
    a path) or a DVC remote by name (--remote; its credentials in .dvc/config.local). Rotated
    files are copied once and never overwritten, the current file's complete lines are
    replaced on every run, and manifest.json (written last) lists what is there with each
    file's sha256. Idempotent: run it as often as you like (e.g. from cron next to `mlops
    serve`).
    """
    from pipeline.deploy.logship import ship

    logs = _logs(args)
    result = ship(logs.log_dir, logs.location, logs.target)
    print(
        f"{logs.target}: shipped {len(result.uploaded)} file(s) to {logs.location.shown}"
        f" ({len(result.unchanged)} already there)"
    )
    for name in result.uploaded:
        print(f"  uploaded {name}")
    return EXIT_OK


def _fetch(args: argparse.Namespace) -> int:
    """CI side: download the shipped prediction logs into the target's log directory

    Download the prediction and feedback logs that `mlops logs ship` shipped to a location
    into the target's log directory (serve.log.dir), checking every file against the
    manifest's sha256; then `mlops logs snapshot` cuts them into windows. Fails, naming the
    cause, when nothing was shipped there, the location cannot be read, or it holds another
    target's logs.
    """
    from pipeline.config import relpath
    from pipeline.deploy.logship import fetch

    logs = _logs(args)
    written = fetch(logs.location, logs.log_dir, logs.target)
    where = f"from {logs.location.shown} into {relpath(logs.log_dir, logs.root)}"
    print(f"{logs.target}: fetched {len(written)} new or changed log file(s) {where}")
    return EXIT_OK


def add_log_commands(logs_sub: Any) -> None:
    """Register `ship` and `fetch` under `mlops logs`."""
    for name, handler, verb in (("ship", _ship, "write"), ("fetch", _fetch, "read")):
        p = command(logs_sub, name, handler)
        add_target(p, MONITORED)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--url", metavar="URL", help=f"the ship location to {verb}")
        where.add_argument(
            "--remote", metavar="NAME", help=f"a DVC remote (`dvc remote list`) to {verb}"
        )
