"""`mlops logs ship` and `mlops logs fetch`: prediction logs from the serving machine to CI.

Registered under `mlops logs` by `pipeline.cli_serve.add_commands`. Thin: parse, resolve the
target's log directory and the location, call `pipeline.deploy.logship`. Imports are local so
`mlops --help` never pays for DVC's filesystems.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.params import Params

SHIP_HELP = """\
Copy the target's prediction and feedback logs (serve.log.dir) to a ship location that CI
reads with `mlops logs fetch`: any URL a DVC remote can be (s3://, gs://, azure://, ssh://, a
path) or a DVC remote by name (--remote; its credentials in .dvc/config.local). Rotated files
are copied once and never overwritten, the current file's complete lines are replaced on every
run, and manifest.json (written last) lists what is there with each file's sha256. Idempotent:
run it as often as you like (e.g. from cron next to `mlops serve`).
"""

FETCH_HELP = """\
Download the prediction and feedback logs that `mlops logs ship` shipped to a location into the
target's log directory (serve.log.dir), checking every file against the manifest's sha256;
then `mlops logs snapshot` cuts them into windows. Fails, naming the cause, when nothing was
shipped there, the location cannot be read, or it holds another target's logs.
"""


def monitored_target(params: Params) -> str:
    """The default target of the log commands: the one monitoring watches (monitor.target)."""
    return params.monitor.target


def _setup(args: argparse.Namespace) -> tuple[Path, Path, str, Any]:
    from pipeline import config
    from pipeline.deploy.logship import location

    root = config.find_root()
    params = config.load_config(root)
    target = args.target or monitored_target(params)
    settings = params.deploy.service(target)
    loc = location(root, url=args.url, remote=args.remote)
    return root, settings.log_dir, target, loc


def _ship(args: argparse.Namespace) -> int:
    from pipeline.deploy.logship import ship

    _, log_dir, target, loc = _setup(args)
    result = ship(log_dir, loc, target)
    print(
        f"{target}: shipped {len(result.uploaded)} file(s) to {loc.shown}"
        f" ({len(result.unchanged)} already there)"
    )
    for name in result.uploaded:
        print(f"  uploaded {name}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from pipeline.config import relpath
    from pipeline.deploy.logship import fetch

    root, log_dir, target, loc = _setup(args)
    written = fetch(loc, log_dir, target)
    print(
        f"{target}: fetched {len(written)} new or changed log file(s) from {loc.shown} "
        f"into {relpath(log_dir, root)}"
    )
    return 0


def _where(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument(
        "--target", help="deployment target (default: the monitored one, monitor.target)"
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", metavar="URL", help=f"the ship location to {verb}")
    where.add_argument(
        "--remote", metavar="NAME", help=f"a DVC remote (`dvc remote list`) to {verb}"
    )


def add_log_commands(logs_sub: Any) -> None:
    """Register `ship` and `fetch` under `mlops logs`."""
    p = logs_sub.add_parser(
        "ship",
        help="serving side: copy the prediction logs to a ship location (idempotent)",
        description=SHIP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _where(p, "write")
    p.set_defaults(handler=_ship)
    p = logs_sub.add_parser(
        "fetch",
        help="CI side: download the shipped prediction logs into the target's log directory",
        description=FETCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _where(p, "read")
    p.set_defaults(handler=_fetch)
