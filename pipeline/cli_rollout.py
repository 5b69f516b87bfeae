"""`mlops rollout analyze|advance|promote|abort`: the steps of a progressive rollout.

A rollout starts with `mlops release` on a target whose strategy is shadow or canary; each step
after that is a reviewable change of `deploy/<target>.json` (`pipeline/rollout/command.py`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.cli_args import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_check,
    add_json,
    add_target,
    command,
    command_group,
)

NEXT = (
    "next: commit deploy/{target}.json{extra} (the service and `mlops sync` follow it); "
    "`dvc repro` re-runs deploy@{target}"
)


def _logs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="the prediction log to analyse (default: the target's serve.log.dir; in CI the "
        "directory `mlops logs fetch` wrote)",
    )


def _print_outcome(outcome: Any, report: dict[str, Any]) -> None:
    if outcome.action == "promote":
        print(f"{outcome.target}: promoted {outcome.candidate} (replaces {outcome.stable})")
    elif outcome.action == "abort":
        print(
            f"{outcome.target}: aborted the rollout of {outcome.candidate}; {outcome.stable} "
            f"serves everything, {outcome.candidate} is rejected ({outcome.detail})"
        )
    else:
        print(
            f"{outcome.target}: advanced the rollout of {outcome.candidate} to step "
            f"{outcome.step + 1} (weight {outcome.weight})"
        )
    extra = ", reports/rollout/" + outcome.target + ".json" if report else ""
    if outcome.action == "abort":
        extra += ", conf/deploy/pins/generated.yaml and params.yaml"
    print(NEXT.format(target=outcome.target, extra=extra))


def _analyze(args: argparse.Namespace) -> int:
    """judge the running rollout step from the prediction log

    Error rate, latency, agreement (shadow), prediction drift and labelled metrics of the
    candidate against the stable release in the current step, each against
    deploy.targets.<target>.strategy.analysis. With --apply, carry the verdict out (advance,
    promote or abort: a change of deploy/<target>.json to commit, with the evidence in
    reports/rollout/<target>.json); a wait changes nothing.
    """
    from pipeline.rollout import analysis
    from pipeline.rollout.command import analyse_and_apply

    done = analyse_and_apply(args.root, args.target, args.logs, apply=args.apply)
    if args.json:
        print(json.dumps(done.report, indent=2, sort_keys=True))
    else:
        print(f"{args.target}: {analysis.summary(done.report)}")
        for check in done.report["checks"]:
            state = {True: "pass", False: "BREACH", None: "not judged"}[check["passed"]]
            print(
                f"  - {check['name']}: {check['value']} ({check['op']} {check['threshold']}): "
                f"{state}"
            )
    if done.outcome is not None:
        _print_outcome(done.outcome, done.report)
    if args.check and done.report["verdict"] == analysis.ABORT:
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _step(action: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from pipeline.rollout.command import by_hand

        done = by_hand(
            args.root,
            args.target,
            action,
            log_dir=getattr(args, "logs", None),
            force=getattr(args, "force", False),
            reason=getattr(args, "reason", None),
        )
        assert done.outcome is not None
        _print_outcome(done.outcome, done.report)
        return EXIT_OK

    return handler


def _advance(args: argparse.Namespace) -> int:
    """move the running rollout to its next step (when the analysis allows it)

    Writes deploy/<target>.json with the next step's weight; refused unless the analysis of
    the current step says advance (--force: step anyway, recorded as by hand).
    """
    return int(_step("advance")(args))


def _promote(args: argparse.Namespace) -> int:
    """make the rollout's candidate the release (after its last step)

    Writes the candidate's release record to deploy/<target>.json, exactly as a direct
    release would; refused unless the analysis of the last step says promote (--force: now).
    """
    return int(_step("promote")(args))


def _abort(args: argparse.Namespace) -> int:
    """abort the running rollout: the stable release serves everything

    Marks the rollout aborted in deploy/<target>.json and rejects the candidate
    (deploy.targets.<target>.rejected in conf/deploy/pins/generated.yaml, params.yaml
    recomposed), so the gate never proposes it again.
    """
    return int(_step("abort")(args))


def add_commands(sub: Any) -> None:
    """Register `rollout` on the `mlops` parser."""
    group = command_group(sub, "rollout", help="progressive delivery: shadow and canary steps")
    p = command(group, "analyze", _analyze)
    add_target(p)
    _logs(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="carry out the verdict (not wait)")
    add_check(mode, "the verdict is abort")
    add_json(p, "the analysis report")
    for name, handler in (("advance", _advance), ("promote", _promote)):
        p = command(group, name, handler)
        add_target(p)
        _logs(p)
        p.add_argument("--force", action="store_true", help="step without the analysis")
        p.add_argument("--reason", help="why, when forced (kept in the record's decisions)")
    p = command(group, "abort", _abort)
    add_target(p)
    p.add_argument("--reason", help="why (kept in the record)")
