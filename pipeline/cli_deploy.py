"""The deploy commands of `mlops`: release, rollback, unpin, gate, predict, status, and the
deployment environments' render, image record and install-units.

Registered by `pipeline.cli.build_parser` through `add_commands`. Each handler imports what it
needs when it runs, so other commands never pay for pandas or scikit-learn. Errors a user can
fix (MlopsError and its subclasses) reach `pipeline.cli.main`, which prints them without a
traceback and exits 2; "checked, and the answer is no" (a blocked gate) exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cli_args import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    add_check,
    add_target,
    add_targets,
    command,
    command_group,
    positive_int,
)
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pipeline.deploy.batch import BatchResult


def _release(args: argparse.Namespace) -> int:
    """apply the gates' proposals: bundles/<id> (dvc add) and deploy/<target>.json

    For every target whose reports/deploy/<target>.json proposes a release (and is current),
    copy the bundle to bundles/<id>/, track it with `dvc add` and write deploy/<target>.json.
    All or nothing.
    """
    from pipeline.deploy.release import release

    outcomes = release(args.root, args.target)
    for o in outcomes:
        if o.action == "released":
            print(f"{o.target}: released {o.release} ({o.detail})")
        elif o.action == "rolling_out":
            print(f"{o.target}: {o.detail}; candidate {o.release}")
        elif o.action == "already_released":
            print(f"{o.target}: already released ({o.release})")
        elif o.action == "blocked":
            print(f"{o.target}: blocked, nothing released: {o.detail}")
        else:
            print(f"{o.target}: nothing to release ({o.detail})")
        for note in o.notes:
            print(f"  {note}")
    if any(o.action == "rolling_out" for o in outcomes):
        print(
            "the rollout's steps follow with `mlops rollout analyze --apply` (or advance, "
            "promote, abort by hand), each a change of deploy/<target>.json"
        )
    if any(o.action in ("released", "rolling_out") for o in outcomes):
        print(
            "next: commit deploy/, bundles/*.dvc and bundles/.gitignore; `dvc push`; "
            "`dvc repro` records the release in reports/deploy/"
        )
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    """pin a target to an earlier release and reject the current one

    Write a pin into conf/deploy/pins/generated.yaml (default: the parent of the current
    release), add the current release to `rejected`, recompose params.yaml.
    """
    from pipeline.deploy.release import rollback
    from pipeline.paths import PINS_FILE

    outcome = rollback(args.root, args.target, args.to)
    print(
        f"{outcome.target}: pinned to {outcome.pin}; rejected {', '.join(outcome.rejected)} "
        f"(was {outcome.current})"
    )
    print(
        f"wrote {PINS_FILE} and params.yaml; next: `dvc repro` (proposes the pinned release), "
        f"`mlops release --target {outcome.target}`, commit"
    )
    return EXIT_OK


def _unpin(args: argparse.Namespace) -> int:
    """remove a rollback pin (rejected releases stay rejected)"""
    from pipeline.deploy.release import unpin

    if unpin(args.root, args.target):
        print(f"{args.target}: pin removed (rejected releases stay rejected); run `dvc repro`")
    else:
        print(f"{args.target}: no generated pin to remove")
    return EXIT_OK


def _gate(args: argparse.Namespace) -> int:
    """show the gate decisions (reports/deploy/*.json)"""
    from pipeline.deploy.release import check_gates, new_line_text

    blocked = 0
    for target, report in check_gates(args.root, args.target):
        decision = report.get("decision")
        proposal = report.get("proposal") or {}
        line = f"{target}: {decision}"
        if proposal:
            line += f" {proposal['release']} (parent {proposal['parent'] or 'none'})"
        print(line)
        if new_line_text(proposal):
            print(f"  - {new_line_text(proposal)}")
        if decision == "blocked":
            blocked += 1
            for reason in report.get("reasons", []):
                print(f"  - {reason}")
    if args.check and blocked:
        print(f"{blocked} target(s) blocked", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    """score a CSV/Parquet file (or a folder of Parquet files) with a target's release

    Batch scoring with the release in deploy/<target>.json (or --bundle), validated like the
    service; the output format follows the output file's extension.
    """
    from dataclasses import replace

    from pipeline import config
    from pipeline.deploy import batch

    root = args.root
    params = config.load_config(root, hyperparameters=False)
    settings = params.deploy.batch(args.target)
    declared = {c.name: c.type for c in params.dataset.columns}
    overrides = {
        "on_bad_rows": args.on_bad_rows,
        "unseen_policy": args.unseen_policy,
        "chunk_rows": args.chunk_rows,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    bundle, release = batch.load_release(root, args.target, args.bundle)
    meta = {
        "input": str(args.input),
        "output": str(args.output),
        "target": args.target,
        "release": release,
        "bundle": bundle.id,
        "on_bad_rows": settings.on_bad_rows,
        "unseen_policy": settings.unseen_policy,
    }
    try:
        result = batch.predict_file(
            bundle, args.input, args.output, settings, declared, compute=params.compute
        )
    except batch.BadRowsError as exc:
        if args.report:  # the refused file's every bad row, for fixing it in one pass
            _write_report(args.report, exc.result, {**meta, "written": False})
        raise
    except OSError as exc:  # the output cannot be written there: the user's path, not a bug
        raise DataError(
            f"{args.output}: cannot write the scored file: {exc.strerror or exc}",
            hint="choose a writable --output path",
        ) from exc
    if args.report:
        _write_report(args.report, result, meta)
    source = f"release {release}" if release else f"bundle {bundle.id} ({args.bundle})"
    print(
        f"scored {result.scored} of {result.rows} row(s) with {source} into {args.output}"
        + (f"; {result.flagged} flagged" if result.flagged else "")
    )
    if result.bad:
        print(
            f"skipped {len(result.bad_rows)} bad row(s) (on_bad_rows: skip):\n"
            + batch.render_bad(result.bad),
            file=sys.stderr,
        )
    return EXIT_OK


def _write_report(path: Path, result: BatchResult, meta: Mapping[str, Any]) -> None:
    from pipeline.deploy import batch

    try:
        batch.write_report(path, result, meta)
    except OSError as exc:
        raise DataError(
            f"{path}: cannot write the report: {exc.strerror or exc}",
            hint="choose a writable --report path",
        ) from exc


def _status(args: argparse.Namespace) -> int:
    """config, stages, champion, and each target's declared vs live release"""
    import httpx

    from pipeline.deploy.status import render_status

    kubeconfig = None if args.kubeconfig is None else Path(args.kubeconfig)
    with httpx.Client() as client:
        print(render_status(args.root, client=client, kubeconfig=kubeconfig))
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    """render kubernetes and systemd targets' desired state into the repository

    Write each kubernetes target's manifests (deploy/k8s/<target>/: Deployment or Argo Rollouts
    Rollout, Service, HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy, optionally a
    KServe InferenceService, and a kustomization.yaml) and each systemd target's units
    (deploy/systemd/<target>/), from the target's config, its release record and its image
    record (deploy/images/<target>.json). Deterministic: the same inputs give the same bytes.
    `mlops release` and `mlops image record` render too; this command catches up after a config
    change. --check writes nothing and exits 1 when a rendering differs from what is committed.
    """
    from pipeline.deploy.environments import differences, render_targets

    renderings = render_targets(args.root, args.target, check=args.check)
    stale = 0
    for rendering in renderings:
        changed = differences(args.root, rendering) if args.check else list(rendering.written)
        where = f"{rendering.path}/"
        if args.check:
            if changed:
                stale += 1
                print(f"{rendering.target}: {where} is STALE:")
                for line in changed:
                    print(f"  - {line}")
            else:
                print(f"{rendering.target}: {where} is up to date")
        elif rendering.files:
            state = f"{len(changed)} file(s) changed" if changed else "unchanged"
            print(f"{rendering.target}: {where} {state} ({len(rendering.files)} file(s))")
        elif changed:
            print(f"{rendering.target}: {where} removed")
        for note in rendering.notes:
            print(f"  note: {note}")
    if not renderings:
        print("no kubernetes or systemd targets are declared: nothing to render")
    if stale:
        print(f"{stale} target(s) stale: run `mlops render` and commit", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _image_record(args: argparse.Namespace) -> int:
    """record the image digest that serves a kubernetes target's release, and re-render it

    Check the digest (sha256:<64 hex>), read the target's release record and write
    deploy/images/<target>.json ({target, release, bundle, image: <repository>@<digest>}) for
    its workload release (the candidate of a running canary rollout, else the release), then
    re-render the target's manifests with the image: one transaction, both or neither change.
    .github/workflows/image.yml runs this after pushing the image.
    """
    from pipeline.deploy.environments import record_image
    from pipeline.paths import image_record_path

    image, rendering = record_image(args.root, args.target, args.digest)
    print(f"{args.target}: {image.release} is served by {image.image}")
    print(f"wrote {image_record_path(args.target)}; rendered {rendering.path}/")
    for note in rendering.notes:
        print(f"  note: {note}")
    print(f"next: commit {image_record_path(args.target)} and {rendering.path}/")
    return EXIT_OK


def _install_units(args: argparse.Namespace) -> int:
    """install a systemd target's units into a directory (e.g. /etc/systemd/system)

    Write the units `mlops render` renders for a systemd target (mlops-<target>-serve.service,
    mlops-<target>-sync.service) into --dir, each atomically; a unit already there with other
    content is refused (nothing is written) unless --force. Then, as root:
    `systemctl daemon-reload && systemctl enable --now <units>`.
    """
    from pipeline.deploy.environments import install_units

    installed = install_units(args.root, args.target, Path(args.dir), force=args.force)
    for item in installed:
        print(f"{item.path}: {item.action}")
    names = " ".join(item.path.name for item in installed)
    if any(item.action != "unchanged" for item in installed):
        print(f"next (as root): systemctl daemon-reload && systemctl enable --now {names}")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register the deploy commands on `mlops`' subparsers."""
    add_targets(command(sub, "release", _release))

    p = command(sub, "rollback", _rollback)
    add_target(p)
    p.add_argument(
        "--to",
        metavar="RELEASE",
        help="release id, e.g. r0001-3f9a1c2b5e6d7f80 (default: the current release's parent)",
    )

    add_target(command(sub, "unpin", _unpin))

    p = command(sub, "gate", _gate)
    add_check(p, "any target is blocked")
    add_targets(p)

    p = command(sub, "predict", _predict)
    add_target(p, "batch")
    p.add_argument(
        "--input",
        required=True,
        type=Path,
        help="CSV or Parquet file to score, or a folder of Parquet files (one dataset, in name "
        "order, scored into the one --output file)",
    )
    p.add_argument("--output", required=True, type=Path, help="where to write (.csv/.parquet)")
    p.add_argument(
        "--bundle",
        type=Path,
        help="score with this bundle directory instead (e.g. models/bundle, the unreleased "
        "champion): it need not be released, but its manifest (bundle.json) must match every "
        "file and its model file may hold only trusted types, as for a release",
    )
    p.add_argument("--on-bad-rows", choices=("fail", "skip"), help="override batch.on_bad_rows")
    p.add_argument(
        "--unseen-policy", choices=("flag", "reject"), help="override batch.unseen_policy"
    )
    p.add_argument("--chunk-rows", type=positive_int, help="override batch.chunk_rows")
    p.add_argument("--report", type=Path, help="write a JSON report (every bad row) here")

    p = command(sub, "status", _status)
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="read the live release of kubernetes targets from this cluster (with kubectl); "
        "without it they are not checked",
    )

    p = command(sub, "render", _render)
    add_check(p, "a rendered environment differs from what the repository holds")
    add_targets(p, "every kubernetes and systemd target")

    p = command(
        command_group(sub, "image", help="container images of kubernetes targets"),
        "record",
        _image_record,
    )
    add_target(p)
    p.add_argument(
        "--digest",
        required=True,
        metavar="sha256:HEX",
        help="the pushed image's digest, sha256:<64 hex> (never a tag)",
    )

    p = command(sub, "install-units", _install_units)
    add_target(p)
    p.add_argument(
        "--dir", required=True, help="where to write the units, e.g. /etc/systemd/system"
    )
    p.add_argument(
        "--force", action="store_true", help="replace unit files that differ from the rendering"
    )
