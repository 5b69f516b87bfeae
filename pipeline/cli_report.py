"""`mlops report --pr [--base REV]`: the pull-request impact comment, as markdown on stdout.

Registered by `pipeline.cli.build_parser` through `add_commands`. The base is a git revision
(default: origin/main when that ref exists, else main); the head is the working tree, i.e. the
state after `dvc repro` in CI. It reads files only (no network, no DVC), so it runs the same
locally and in CI. The output starts with `pipeline.pr_report.MARKER`, by which CI finds and
updates the one comment in place.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.cli_args import EXIT_OK, command

DEFAULT_BASES = ("origin/main", "main")


def _has_commit(root: Path, rev: str) -> bool:
    from pipeline import vcs

    return vcs.git_ok(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def resolve_base(root: Path, base: str | None) -> str:
    """The revision to compare with: `base`, or the first default that exists."""
    from pipeline.errors import MlopsError

    candidates = (base,) if base else DEFAULT_BASES
    for rev in candidates:
        if _has_commit(root, rev):
            return rev
    raise MlopsError(
        f"no base revision: {' / '.join(candidates)} is not a commit in {root}",
        hint="fetch the base branch (`git fetch origin main`; in CI check out with "
        "fetch-depth: 0) or name one with --base REV",
    )


def _read(path: Path, flag: str) -> str:
    from pipeline.errors import MlopsError

    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MlopsError(
            f"{flag} {path}: cannot read it ({exc.strerror})",
            hint="give the file a previous CI step wrote",
        ) from exc


def _decision(path: Path) -> dict[str, Any]:
    from pipeline.errors import MlopsError

    try:
        data = json.loads(_read(path, "--decision"))
    except ValueError as exc:
        raise MlopsError(
            f"--decision {path}: not JSON ({exc})",
            hint="give a copy of reports/maintain/decision.json",
        ) from exc
    if not isinstance(data, dict) or "action" not in data:
        raise MlopsError(
            f"--decision {path}: not a maintenance decision (no 'action')",
            hint="give a copy of reports/maintain/decision.json",
        )
    return data


def _report(args: argparse.Namespace) -> int:
    """the pull-request impact report (markdown), base revision vs the working tree

    Compare a base revision with the working tree (after `dvc repro`): params that changed,
    stages that re-ran (dvc.lock entries that differ), metrics, the champion, each target's
    gate verdict with its interval, the monitoring verdict and the maintenance decision.
    Markdown on stdout, starting with a marker line by which CI updates one comment in place.
    """
    from pipeline import pr_report

    root = args.root
    base = resolve_base(root, args.base)
    problem = _read(args.problem, "--problem") if args.problem else None
    decision = _decision(args.decision) if args.decision else None
    text = pr_report.render(
        pr_report.git_reader(root, base),
        pr_report.tree_reader(root),
        problem=problem,
        decision=decision,
        note=_read(args.note, "--note") if args.note else None,
    )
    print(text, end="")
    return EXIT_OK


def add_commands(subparsers: Any) -> None:
    """Register `report` on the `mlops` parser."""
    p = command(subparsers, "report", _report)
    p.add_argument(
        "--pr",
        action="store_true",
        required=True,
        help="the pull-request comment (the one format there is; required so that another "
        "can be added without changing what this prints)",
    )
    p.add_argument(
        "--base",
        metavar="REV",
        help="git revision to compare with (default: origin/main if it exists, else main)",
    )
    p.add_argument(
        "--problem",
        metavar="FILE",
        type=Path,
        help="report only this: why the impact could not be computed (e.g. the output of a "
        "failed `mlops compose --check`), so the comment never shows an earlier push's results "
        "as current",
    )
    p.add_argument(
        "--note",
        metavar="FILE",
        type=Path,
        help="text to show first, quoted (e.g. what a fork's pull request could not reproduce)",
    )
    p.add_argument(
        "--decision",
        metavar="FILE",
        type=Path,
        help="the maintenance decision that caused this change (a copy of "
        "reports/maintain/decision.json taken before `mlops maintain --apply`)",
    )
