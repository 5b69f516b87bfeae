"""`mlops sync` (the reconciler) and `mlops verify` (release records and their bundles).

Registered by `pipeline.cli.build_parser` through `add_commands`. Exit codes follow the rest of
`mlops`: 0 in sync (verified), 1 "checked, and it differs" (out of sync, service unreachable,
a release that fails verification), 2 an error the user can fix (MlopsError, via cli.main: a
diverged or edited deployment checkout, an unknown target, a failed fetch). Imports are local,
so `mlops --help` never pays for httpx or DVC.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.cli_args import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_check,
    add_dvc_remote,
    add_json,
    add_target,
    add_targets,
    command,
    seconds,
)


def _params(root: Path) -> dict[str, Any]:
    from pipeline import config

    data: dict[str, Any] = config.read_yaml(root / config.PARAMS_FILE)
    return data


def service_url(params: dict[str, Any], target: str) -> str | None:
    """http://host:port of a service or systemd target (a bind-all host is asked on loopback);
    None for a target without a service on this machine (batch: sync checks out its release
    and bundle only; kubernetes: the cluster's GitOps controller runs it)."""
    from pipeline.deploy.live import service_url as url_of
    from pipeline.params import target_params

    spec = target_params(params, target)
    if spec["kind"] not in ("service", "systemd"):
        return None
    return url_of(spec["serve"]["host"], spec["serve"]["port"])


def _sync(args: argparse.Namespace) -> int:
    """reconcile this deployment checkout and its service with the followed branch

    Reconcile this deployment checkout with the followed branch, pull-based as Argo CD is:
    fetch --remote/--branch, pull the declared release's bundle from the DVC remote and verify
    its digest, fast-forward the checkout (deploy/<target>.json changes, `mlops serve` swaps),
    then ask the service's GET /version until it serves the declared release.

    A checkout with local commits or edits to tracked files is refused: it changes only by
    sync. --check fetches and compares only (declared on the branch vs live, and what a sync
    would do). --watch repeats every --interval seconds until interrupted, printing each change
    of state; errors are printed and retried while the service keeps serving.

    exit status: 0 in sync (or a target without a service: checked out), 1 out of sync or
    unreachable, 2 a problem to fix (diverged checkout, unknown target, fetch failed).
    """
    from pipeline.deploy.sync import SyncResult, dumps, run_sync
    from pipeline.errors import MlopsError

    root = args.root
    url = args.url or service_url(_params(root), args.target)

    def emit(outcome: SyncResult | MlopsError) -> None:
        if isinstance(outcome, MlopsError):
            print(f"{args.target}: sync failed: {outcome.render()}", file=sys.stderr, flush=True)
        else:
            print(dumps(outcome) if args.json else outcome.line(), flush=True)

    result = run_sync(
        root,
        args.target,
        remote=None if args.no_fetch else args.remote,
        branch=args.branch,
        url=url,
        watch=args.watch,
        interval=args.interval,
        timeout=args.timeout,
        dvc_remote=args.dvc_remote,
        apply=not args.check,
        emit=emit,
    )
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _verify(args: argparse.Namespace) -> int:
    """check deploy/*.json and their released bundles' digests

    Read every release record (deploy/*.json and each declared target's) with the rules
    `mlops serve` and the gates use, check that its bundle pointer (bundles/<id>.dvc) is
    committed and that the bundle's bytes match the recorded digest. Exit 1 when any record
    fails.
    """
    from pipeline.deploy.sync import verify_releases
    from pipeline.params import target_params
    from pipeline.paths import DEPLOY_DIR

    root = args.root
    params = _params(root)
    declared = list(params["deploy"]["targets"])
    files = sorted(p.stem for p in (root / DEPLOY_DIR).glob("*.json"))
    for unknown in sorted(set(args.target or ()) - {*declared, *files}):
        target_params(params, unknown)  # a user error naming the declared targets
    targets = args.target or list(dict.fromkeys([*declared, *files]))
    failed = 0
    for checked in verify_releases(root, targets, pull=args.pull, dvc_remote=args.dvc_remote):
        if checked.problems:
            failed += 1
            print(f"{checked.target}: FAILED {checked.release or '(no release)'}")
            for problem in checked.problems:
                print(f"  - {problem}")
        elif checked.release is None:
            print(f"{checked.target}: no release")
        else:
            print(f"{checked.target}: {checked.release} verified")
    if failed:
        print(f"{failed} release record(s) failed verification", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def add_commands(subparsers: Any) -> None:
    """Register `sync` and `verify` on the `mlops` parser."""
    p = command(subparsers, "sync", _sync)
    add_target(p)
    fetching = p.add_mutually_exclusive_group()
    fetching.add_argument("--remote", default="origin", help="git remote (default: origin)")
    fetching.add_argument(
        "--no-fetch",
        action="store_true",
        help="reconcile the working copy only: pull its release's bundle, wait for the service",
    )
    p.add_argument("--branch", default="main", help="the followed branch (default: main)")
    add_dvc_remote(p, "to pull bundles from (default: the project's default remote)")
    p.add_argument(
        "--url",
        help="the service's base URL (default: http://<serve.host>:<serve.port> of the target)",
    )
    add_check(p, "out of sync (fetch and compare only)")
    p.add_argument("--watch", action="store_true", help="reconcile every --interval seconds")
    p.add_argument(
        "--interval",
        type=seconds,
        default=60.0,
        help="seconds between reconciliations with --watch (default: 60)",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=60.0,
        help="seconds to wait for the service to serve the declared release (default: 60)",
    )
    add_json(p, "each result (one line each)")

    p = command(subparsers, "verify", _verify)
    add_targets(p, "every declared target and every deploy/*.json")
    p.add_argument(
        "--pull", action="store_true", help="`dvc pull` each released bundle before verifying"
    )
    add_dvc_remote(p, "for --pull (default: the project's default remote)")
