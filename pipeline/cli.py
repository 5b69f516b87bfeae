"""The `mlops` command: thin wrappers that parse arguments, call the layer below and map errors
to exit codes (2 for anything the user can fix, with a hint; 1 for "checked, and it differs").
The conventions every command follows (project root, paths, --target, --check, exit status) are
declared once, in `pipeline.cli_args`.

Imports are local to each command so that `mlops compose --check`, which guards every
`dvc repro`, pays for Hydra only, never for pandas or scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pipeline import (
    cli_deploy,
    cli_maintain,
    cli_monitor,
    cli_report,
    cli_rollout,
    cli_serve,
    cli_sync,
)
from pipeline.cli_args import (
    CONVENTIONS,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USER_ERROR,
    Handler,
    HelpFormatter,
    add_check,
    command,
    command_group,
)
from pipeline.errors import MlopsError, StaleParamsError


class Parser(argparse.ArgumentParser):
    """argparse with the error shape of every other `mlops` error: one message, a hint, exit 2.

    Subcommand parsers inherit the class (argparse creates them with `type(parent)`)."""

    def error(self, message: str) -> NoReturn:
        hint = f"`{self.prog} --help` lists the arguments"
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message}\nhint: {hint}\n")


def _compose(args: argparse.Namespace) -> int:
    """compose conf/ into params.yaml (validated)

    Compose conf/ with Hydra into params.yaml, validating every group; --check only compares
    and prints a diff when params.yaml is stale.
    """
    from pipeline import config

    root = args.root
    if args.check:
        try:
            config.check(root, args.overrides)
        except StaleParamsError as exc:
            print(exc.render(), file=sys.stderr)
            return EXIT_CHECK_FAILED
        print(f"{config.PARAMS_FILE} is up to date with {config.CONF_DIR}/")
        return EXIT_OK
    composed, changed = config.write(root, args.overrides)
    from pipeline.choices import unsaved

    ad_hoc = unsaved(root, args.overrides)
    if ad_hoc:
        print(
            f"note: {' '.join(ad_hoc)} is not saved in conf/, so `mlops compose --check` (and "
            f"`make run`) will call params.yaml stale; keep it with `mlops select "
            f"{' '.join(ad_hoc)}`",
            file=sys.stderr,
        )
    if (root / config.CONF_DIR / "local").is_dir() and any(
        (root / "conf" / "local").glob("*.yaml")
    ):
        print(
            "note: machine-local overrides in conf/local/ are part of this composition",
            file=sys.stderr,
        )
    state = "written" if changed else "unchanged"
    print(
        f"{config.PARAMS_FILE} {state}: {len(composed.data['candidates'])} candidate(s), "
        f"dataset {composed.data['dataset']['name']}, task {composed.data['task']}"
    )
    return EXIT_OK


def _select(args: argparse.Namespace) -> int:
    """choose a config group's option in conf/config.yaml, then compose

    Persist a choice such as dataset=my_data: rewrite that option in conf/config.yaml's
    defaults list (comments and layout kept: a one-line diff to review) and compose
    params.yaml. Checked first: the option file must exist, and the new composition must
    validate and take effect; otherwise nothing is written. Without arguments: list the current
    choices and their options.
    """
    from pipeline import choices, config

    root = args.root
    if not args.selections:
        text = (root / choices.CONFIG_FILE).read_text(encoding="utf-8")
        print(f"{choices.CONFIG_FILE} chooses (change one with `mlops select GROUP=OPTION`):")
        for choice in choices.read_choices(text):
            others = [o for o in choices.options(root, choice.group) if o != choice.option]
            print(
                f"  {choice.key:<28} {choice.option:<16}"
                + (f" others: {', '.join(others)}" if others else "")
            )
        return EXIT_OK
    composed, changed = choices.select(root, args.selections)
    for key, old, new in changed:
        print(f"{choices.CONFIG_FILE}: {key}: {old} -> {new}")
    if not changed:
        print(f"{choices.CONFIG_FILE} already chooses {' '.join(args.selections)}")
    print(
        f"{config.PARAMS_FILE} composed: {len(composed.data['candidates'])} candidate(s), "
        f"dataset {composed.data['dataset']['name']}, task {composed.data['task']}"
    )
    if changed:
        print(f"next: `dvc repro`; commit {choices.CONFIG_FILE}, {config.PARAMS_FILE} and dvc.lock")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    """queue a committed sweep (conf/experiment/NAME.yaml) as DVC experiments

    Read the grid a file in conf/experiment/ declares under hydra.sweeper.params, compose and
    validate every point with the project's rules (a bad point queues nothing), then queue the
    whole grid with one `dvc exp run --queue --name NAME -S +experiment=NAME -S KEY=A,B ...`:
    DVC expands it into one experiment per point, named NAME-1, NAME-2, ... Nothing runs yet:
    `dvc queue start -j N` runs the queue in the background (`dvc queue status` follows it),
    `dvc exp run --run-all -j N` in the foreground; `dvc exp show` compares the points.
    --list validates and lists the points and queues nothing.
    """
    from pipeline import sweep

    root = args.root
    declared = sweep.read_sweep(root, args.name)
    sweep.check_points(root, declared)
    print(f"sweep {declared.name}: {len(declared.points)} point(s), each validated")
    for number, point in enumerate(declared.points, 1):
        print(f"  {declared.point_name(number, args.exp_name)}: {' '.join(point)}")
    if args.list:
        print("nothing queued (--list)")
        return EXIT_OK
    printed = sweep.queue(root, declared, name=args.exp_name)
    print(printed.rstrip())
    print(
        "next: `dvc queue start -j N` (background; `dvc queue status`) or "
        "`dvc exp run --run-all -j N` (foreground), then `dvc exp show` to compare"
    )
    return EXIT_OK


def _schema_infer(args: argparse.Namespace) -> int:
    """print a starting conf/dataset/ file for a CSV/Parquet"""
    from pipeline.schema_infer import render_dataset_yaml

    print(render_dataset_yaml(Path(args.path), name=args.name, target=args.target), end="")
    return EXIT_OK


def _summary(args: argparse.Namespace) -> int:
    """the champion, its test metrics and where artifacts are"""
    from pipeline.summary import render_summary

    print(render_summary(args.root))
    return EXIT_OK


def _targets(args: argparse.Namespace) -> int:
    """the estimators a candidate's _target_ may name"""
    from pipeline.factory import ALLOWED_TARGETS

    for target, task in sorted(ALLOWED_TARGETS.items(), key=lambda kv: (kv[1], kv[0])):
        print(f"{task:<15} {target}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mlops",
        description="gitops-mlops: declarative ML pipelines run the GitOps way.",
        epilog=CONVENTIONS,
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="`mlops COMMAND --help` for its options",
    )

    p = command(sub, "compose", _compose)
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides, e.g. dataset=diabetes or +experiment=fast",
    )
    add_check(p, "params.yaml differs from the composition (printing the diff)")

    p = command(sub, "select", _select)
    p.add_argument(
        "selections",
        nargs="*",
        metavar="GROUP=OPTION",
        help="e.g. dataset=my_data or split=stratified",
    )

    p = command(sub, "sweep", _sweep)
    p.add_argument("name", metavar="NAME", help="the sweep: conf/experiment/NAME.yaml")
    p.add_argument(
        "--name",
        dest="exp_name",
        metavar="PREFIX",
        help="name the experiments PREFIX-1, PREFIX-2, ... (default: the sweep's NAME; DVC "
        "refuses a name an experiment already has)",
    )
    p.add_argument(
        "--list", action="store_true", help="validate and list the points; queue nothing"
    )

    q = command(
        command_group(sub, "schema", help="dataset schema helpers"),
        "infer",
        _schema_infer,
        project=False,
    )
    q.add_argument("path", help="the data file (CSV or Parquet), e.g. data/external/my.csv")
    q.add_argument("--name", help="dataset name (default: from the file name)")
    q.add_argument(
        "--target",
        metavar="COLUMN",
        help="the column to predict, the dataset's target (not a deployment target; default: "
        "the first of the ranked candidates, printed as comments)",
    )

    command(sub, "targets", _targets, project=False)
    command(sub, "summary", _summary)
    cli_deploy.add_commands(sub)
    cli_serve.add_commands(sub)
    cli_monitor.add_commands(sub)
    cli_sync.add_commands(sub)
    cli_report.add_commands(sub)
    cli_maintain.add_commands(sub)
    cli_rollout.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a usage error already printed with a hint (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    handler: Handler = args.handler
    try:
        if args.needs_root:  # the one place the project root is found, for every command
            from pipeline.config import find_root

            args.root = find_root()
        return handler(args)
    except MlopsError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `mlops targets | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
