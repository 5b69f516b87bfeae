"""`mlops maintain`: show the maintenance decision, or carry it out (`--apply`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline.cli_args import EXIT_CHECK_FAILED, EXIT_OK, add_check, add_json, command


def _maintain(args: argparse.Namespace) -> int:
    """the maintenance decision (retrain / rollback / alert), or --apply it

    Without options: print reports/maintain/decision.json (written by the `maintain` stage).
    --apply carries it out: retrain appends the labelled production rows to data/feedback/ and
    re-runs dvc repro; rollback pins the previous release; alert is recorded. Every applied
    decision goes into maintain/ledger.json.
    """
    from pipeline.errors import ArtifactError
    from pipeline.paths import DECISION

    root = args.root
    if not (root / DECISION).is_file():
        raise ArtifactError(
            f"{DECISION} does not exist: the maintain stage has not run",
            hint="run `dvc repro` (or `dvc repro maintain`) first",
        )
    if args.apply:
        from pipeline.maintain.apply import apply

        applied = apply(root, repro=not args.no_repro)
        print(applied.message)
        for path in applied.changed:
            print(f"  changed: {path}")
        if applied.changed:
            print("commit these (and `dvc push`), then open a pull request")
        return EXIT_OK
    decision = json.loads((root / DECISION).read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(decision, indent=2, sort_keys=True))
    else:
        print(f"{decision['action']}: {decision['reason']}")
        for policy in decision["policies"]:
            mark = "FIRED" if policy["fired"] else "-"
            print(f"  {mark:<5} {policy['policy']:<12} {policy['reason']}")
    return EXIT_CHECK_FAILED if args.check and decision["action"] != "none" else EXIT_OK


def add_commands(sub: Any) -> None:
    """Register `mlops maintain` on the subparsers of `mlops`."""
    p = command(sub, "maintain", _maintain)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="carry the decision out")
    add_check(mode, "the decision is an action (not none)")
    p.add_argument("--no-repro", action="store_true", help="with --apply: do not run dvc repro")
    add_json(p, "the whole decision")
