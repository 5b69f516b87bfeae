"""`mlops maintain`: show the maintenance decision, or carry it out (`--apply`)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _maintain(args: argparse.Namespace) -> int:
    from pipeline.config import find_root
    from pipeline.errors import ArtifactError
    from pipeline.paths import DECISION

    root = find_root()
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
        return 0
    decision = json.loads((root / DECISION).read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(decision, indent=2, sort_keys=True))
    else:
        print(f"{decision['action']}: {decision['reason']}")
        for policy in decision["policies"]:
            mark = "FIRED" if policy["fired"] else "-"
            print(f"  {mark:<5} {policy['policy']:<12} {policy['reason']}")
    return 1 if args.check and decision["action"] != "none" else 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "maintain",
        help="the maintenance decision (retrain / rollback / alert), or --apply it",
        description="Without options: print reports/maintain/decision.json (written by the "
        "`maintain` stage). --apply carries it out: retrain appends the labelled production "
        "rows to data/feedback/ and re-runs dvc repro; rollback pins the previous release; "
        "alert is recorded. Every applied decision goes into maintain/ledger.json.",
    )
    p.add_argument("--apply", action="store_true", help="carry the decision out")
    p.add_argument("--no-repro", action="store_true", help="with --apply: do not run dvc repro")
    p.add_argument("--check", action="store_true", help="exit 1 when the action is not none")
    p.add_argument("--json", action="store_true", help="print the whole decision as JSON")
    p.set_defaults(handler=_maintain)
