"""`mlops serve` and `mlops logs snapshot`: the service side of deployment.

Thin like `pipeline.cli`: parse, call `pipeline.deploy.service`, map errors (MlopsError: its
message and hint, exit 2). Imports are local so `mlops --help` and `mlops compose --check` never
pay for FastAPI, pandas or scikit-learn.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cli_args import (
    EXIT_OK,
    MONITORED,
    add_dvc_remote,
    add_out,
    add_target,
    command,
    command_group,
    minutes,
    port_number,
    positive_float,
    positive_int,
    project_path,
    target_or_monitored,
)
from pipeline.paths import PRODUCTION_DIR

if TYPE_CHECKING:
    from pipeline.params import Params


def _load(root: Path, target: str | None) -> tuple[Any, Params]:
    """The target's serve settings (`target` None: the monitored one) and the params."""
    from pipeline import config

    params = config.load_config(root, hyperparameters=False)
    return params.deploy.service(target_or_monitored(target, params)), params


# The container image sets these (Dockerfile); a flag given on the command line wins.
ENV_TARGET, ENV_HOST, ENV_PORT, ENV_BUNDLE = (
    "MLOPS_TARGET",
    "MLOPS_HOST",
    "MLOPS_PORT",
    "MLOPS_BUNDLE_MODE",
)
# What a Kubernetes manifest expects the image to serve (checked with --bundle).
ENV_RELEASE, ENV_SHA256 = "MLOPS_RELEASE", "MLOPS_BUNDLE_SHA256"


def _from_env(name: str, parse: Any) -> Any:
    """The value of environment variable `name` read by `parse`, None when unset or empty; a
    bad value is a user error naming the variable."""
    from pipeline.errors import ConfigError

    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return parse(text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ConfigError(
            f"environment variable {name}: {exc}",
            hint=f"fix or unset {name} (a command-line flag overrides it)",
        ) from exc


def _bundle_mode(text: str) -> str:
    from pipeline.deploy.entrypoint import MODES

    if text not in MODES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(MODES)} (got {text!r})")
    return text


def _serve(args: argparse.Namespace) -> int:
    """serve the release in deploy/<target>.json over HTTP (hot-swapped on change)

    Start the prediction service (FastAPI + uvicorn, one worker) for the release declared in
    deploy/<target>.json, with the target's serve settings from params.yaml. The service
    follows the file: a new release (or a rollback) is loaded, verified and swapped in without
    dropping requests. The bearer token for /feedback is read from the environment variable
    named in auth.token_env (or auth.token_file).

    --bundle is what the container image runs (Dockerfile): `baked` checks that every declared
    bundle is on disk with the digest its release record names, `fetch` first pulls it from
    the DVC remote (as `mlops sync` does) and verifies it; either refuses to serve (exit 2)
    rather than start without the declared model. Without --bundle the service serves what is
    on disk and reports a missing bundle on /health.

    Environment (the image sets them; a flag wins): MLOPS_TARGET (--target), MLOPS_HOST
    (--host), MLOPS_PORT (--port), MLOPS_BUNDLE_MODE (--bundle). With --bundle, MLOPS_RELEASE
    and MLOPS_BUNDLE_SHA256 (set by a rendered Kubernetes manifest) name the release and bundle
    digest the deployment expects: an image that declares neither is refused, and the pod
    serves that release alone (a canary's split is the cluster's, not the pod's).
    """
    root = args.root
    target = args.target
    settings, _ = _load(root, target)
    host = args.host or _from_env(ENV_HOST, str) or settings.host
    port = args.port
    if port is None:
        port = _from_env(ENV_PORT, port_number)
    if port is None:
        port = settings.port
    mode = args.bundle or _from_env(ENV_BUNDLE, _bundle_mode)
    _check_bind(host, port)
    # A pod of a Kubernetes workload serves the one release its manifest names: the cluster
    # (an Argo Rollout's stable and canary pods) splits the traffic, not each pod.
    only = _from_env(ENV_RELEASE, str) if mode is not None else None
    if mode is not None:
        from pipeline.deploy.entrypoint import prepare

        for line in prepare(
            root,
            target,
            mode,
            dvc_remote=args.dvc_remote,
            pointers=args.pointers,
            expect_release=only,
            expect_sha256=_from_env(ENV_SHA256, str),
        ):
            print(f"{target}: {line}", flush=True)
    from pipeline.deploy.service.server import serve

    serve(
        settings,
        root,
        host=host,
        port=port,
        poll_seconds=args.poll_seconds,
        log_level=args.log_level,
        only_release=only,
    )
    return EXIT_OK


def _check_bind(host: str, port: int) -> None:
    """Fail before loading the model when the address cannot be listened on (in use, not this
    machine's, a privileged port): uvicorn would log it and exit 1 only after start-up."""
    import socket

    from pipeline.errors import ServiceError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise ServiceError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="pick another --port (0 lets the system choose) or --host, or stop what is "
            "listening there (serve.host / serve.port in conf/deploy/)",
        ) from exc


def _snapshot(args: argparse.Namespace) -> int:
    """prediction log + feedback -> immutable windows under data/production/

    Turn the service's prediction log (rotated files and, unless --rotated-only, the current
    one), joined with feedback by request id (the latest label wins), into immutable window files
    under --out, named <first time>-<content digest>.parquet. Only complete windows are written
    (--window-rows records, or --window-minutes of log time that the log has passed); the rest
    waits for the next run (or --flush). Idempotent: records already in a window under --out are
    skipped, so running it twice writes nothing new; it is safe while the service is writing.

    Windows land in their month's folder, data/production/<YYYY-MM>/. Track the months that
    changed with DVC afterwards (monitoring depends on them), as printed:
        dvc add data/production/<YYYY-MM> ...
        git add data/production/<YYYY-MM>.dvc ... data/production/.gitignore
    (one pointer per month, so their number stays small as history grows; two branches adding
    windows to the same month merge with DVC's merge driver, which `make install` configures)
    """
    from pipeline.config import relpath
    from pipeline.deploy.service.snapshot import snapshot

    root = args.root
    settings, params = _load(root, args.target)
    rows = args.window_rows
    if rows is None and args.window_minutes is None:
        rows = params.monitor.windows.rows  # the monitoring windows' size
    out = project_path(root, args.out, PRODUCTION_DIR)
    result = snapshot(
        settings.log_dir,
        out,
        rows=rows,
        minutes=args.window_minutes,
        include_current=not args.rotated_only,
        flush=args.flush,
        label_wait_minutes=args.label_wait_minutes,
    )
    for window in result.written:
        print(f"wrote {relpath(window.path, root)}")
    size = f"{rows} rows" if rows is not None else f"{args.window_minutes:g} minutes"
    print(
        f"{len(result.written)} new window(s) of {size} in {relpath(out, root)} "
        f"({result.labelled} labelled record(s)); {result.held} record(s) wait for their "
        "window to complete"
    )
    _print_next([relpath(w.path, root) for w in result.written], relpath(out, root))
    return EXIT_OK


def _print_next(written: list[str], out: str) -> None:
    """How to track new window files: `dvc add` each month folder they landed in (one DVC
    output per month, `pipeline.windows`), then commit the pointers."""
    if not written:
        return
    months = sorted({str(Path(w).parent) for w in written})
    print("next: track the month(s) with new windows with DVC and commit their pointers:")
    print("  dvc add " + " ".join(months))
    print("  git add " + " ".join(f"{m}.dvc" for m in months) + f" {out}/.gitignore")


def _window_folder(out: Path, root: Path) -> None:
    """Refuse an --out that is not a folder: a typo must not read as "nothing to do"."""
    if not out.is_dir():
        from pipeline.config import relpath
        from pipeline.errors import DataError

        raise DataError(
            f"{relpath(out, root)}: no such window folder",
            hint="--out names the folder of production windows (default: data/production)",
        )


def _seal(args: argparse.Namespace) -> int:
    """pack closed days and months of windows; track every month with DVC

    Pack the windows of every day before the newest window's day into that day's pack
    (<YYYY-MM>/<YYYYMMDD>.zip) and those of every month before the newest window's month into
    that month's pack (<YYYY-MM>/<YYYYMM>.zip), then `dvc add` every month folder (new windows
    included). Packs hold the window files byte for byte: the windows, their ids and what
    monitoring reads do not change; what changes is that DVC sees about one file a day instead
    of one a window, so `dvc status` and `dvc repro` stay flat as history grows. Without
    --apply, prints what it would do and writes nothing; on failure nothing changes. Run it on
    the default branch (the monitor workflow does): two branches sealing the same day do not
    merge. Commit the result: `git add data/production`.
    """
    from pipeline.config import relpath
    from pipeline.windows import apply_seal, partitions, plan_seal

    root = args.root
    out = project_path(root, args.out, PRODUCTION_DIR)
    _window_folder(out, root)
    plan = plan_seal(out)
    changes = plan.changes
    for folder, target in changes.items():
        packs = sorted(k for k, v in target.items() if k is not None and v)
        loose = len(target.get(None, ()))
        print(
            f"{relpath(folder, root)}: {sum(len(v) for v in target.values())} window(s) as "
            f"{len(packs)} pack(s) ({', '.join(packs) or '-'}) and {loose} loose"
        )
    if not changes:
        print(f"{relpath(out, root)}: sealed already (nothing to pack)")
    if not args.apply:
        print("dry run: nothing written; run again with --apply (it also `dvc add`s each month)")
        return EXIT_OK
    apply_seal(plan)
    print(f"tracked: {', '.join(relpath(f, root) + '.dvc' for f in partitions(out)) or '-'}")
    print(f"next: git add {relpath(out, root)} && git commit")
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    """windows of one .dvc file each -> one DVC output per month

    Move the window files of the earlier layout (data/production/<id>.parquet, each tracked by
    its own <id>.parquet.dvc) into their month's folder, data/production/<YYYY-MM>/, drop the
    per-window pointers and their .gitignore lines, and track each month as one output
    (`dvc add`). Without --apply, prints what it would do and writes nothing. Needs every
    window in the workspace (`dvc pull data/production` first); on failure every file is put
    back as it was. Commit the result: `git add -A data/production`.
    """
    from pipeline.config import relpath
    from pipeline.windows import apply_migration, plan_migration

    root = args.root
    out = project_path(root, args.out, PRODUCTION_DIR)
    _window_folder(out, root)
    plan = plan_migration(out)
    if not plan.moves and not plan.pointers:
        print(f"{relpath(out, root)}: nothing to migrate (no window outside a month's folder)")
        return EXIT_OK
    months = [relpath(f, root) for f in plan.partitions]
    verb = "moved" if args.apply else "would move"
    print(
        f"{relpath(out, root)}: {verb} {len(plan.moves)} window(s) into {len(months)} month "
        f"folder(s) ({', '.join(months)}) and "
        + ("dropped" if args.apply else "would drop")
        + f" {len(plan.pointers)} per-window pointer(s)"
    )
    if not args.apply:
        print("dry run: nothing written; run again with --apply")
        return EXIT_OK
    apply_migration(plan)
    print(f"tracked: {', '.join(m + '.dvc' for m in months)}")
    print(f"next: git add -A {relpath(out, root)} && git commit -m 'windows: one output a month'")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    """files of scored traffic (CSV/Parquet) -> windows under data/production/

    Turn files of production traffic from outside the service (CSV or Parquet) into window files
    under --out (default data/production/), which the `monitor` stage judges and `maintain` learns
    from. A file must be scored: a prediction column (the output of `mlops predict` is read as it
    is: `prediction`, `proba_<class>`, `flags`); score an unscored file first with
    `mlops predict --input FILE --output scored.parquet`. Name your columns:

        --time-column C        each row's time (ISO 8601; without an offset: UTC), or
        --time T               one time for a file without a time column
        --prediction-column C  the prediction (default: __prediction__ or prediction)
        --label-column C       the label, when known (default: __label__ or the dataset's target)
        --id-column C          a unique request id per row (optional; labels sent later for the
                               same id replace earlier ones, and repeated ids count once)
        --release R            the release that scored the rows (optional)

    Feature columns are read by the types declared for the dataset (a CSV's "007" stays text in a
    category column); every other column is an error (or dropped under dataset.extra_columns:
    drop). Bad values are listed by column and row, and nothing is written. One window file per
    input, named by its data: importing the same rows again writes nothing.

    Windows land in their month's folder; then track the months and commit the pointers, as
    printed:
        dvc add data/production/<YYYY-MM>
        git add data/production/<YYYY-MM>.dvc data/production/.gitignore
    """
    from pipeline import config
    from pipeline.config import relpath
    from pipeline.traffic import Columns, import_files

    root = args.root
    params = config.load_config(root, hyperparameters=False)
    out = project_path(root, args.out, PRODUCTION_DIR)
    imported = import_files(
        args.files,
        out,
        params.dataset,
        params.task,
        Columns(args.time_column, args.prediction_column, args.label_column, args.id_column),
        time=args.time,
        release=args.release,
    )
    for item in imported:
        for note in item.notes:
            print(f"note: {note}")
        where = relpath(item.window.path, root)
        state = "wrote" if item.new else "already imported (nothing written):"
        print(f"{state} {where}: {item.rows} row(s), {item.labelled} labelled, from {item.source}")
    inside = [i.source for i in imported if i.source.resolve().parent == out.resolve()]
    for source in inside:
        print(
            f"move {source} out of {relpath(out, root)}: monitoring refuses any file there "
            "that is not a window"
        )
    _print_next(
        sorted({relpath(i.window.path, root) for i in imported if i.new}), relpath(out, root)
    )
    return EXIT_OK


def add_commands(subparsers: Any) -> None:
    """Register `serve` and `logs` on the `mlops` parser."""
    p = command(subparsers, "serve", _serve)
    add_target(p, os.environ.get(ENV_TARGET, "").strip() or "local")  # the image sets it
    p.add_argument("--host", help="bind address (default: $MLOPS_HOST, else serve.host)")
    p.add_argument(
        "--port",
        type=port_number,
        help="port (default: $MLOPS_PORT, else serve.port; 0 picks a free one)",
    )
    p.add_argument(
        "--bundle",
        type=_bundle_mode,
        metavar="{baked,fetch}",
        help="before listening, check the declared bundles (baked) or pull and check them "
        "(fetch); refuse to serve on a missing bundle or a digest mismatch "
        "(default: $MLOPS_BUNDLE_MODE, else neither)",
    )
    p.add_argument(
        "--pointers",
        type=Path,
        metavar="DIR",
        help="--bundle fetch: a folder holding the releases' bundles/<id>.dvc pointers, "
        "restored from there when bundles/ is an empty volume (the image's bundle cache)",
    )
    add_dvc_remote(p, "to pull bundles from with --bundle fetch (default: the default remote)")
    p.add_argument(
        "--poll-seconds",
        type=positive_float,
        default=1.0,
        help="how often to check deploy/<target>.json for a new release (default: 1)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: info)",
    )

    logs_sub = command_group(subparsers, "logs", help="prediction log tools")
    q = command(logs_sub, "snapshot", _snapshot)
    add_target(q, MONITORED)
    add_out(q, PRODUCTION_DIR, "the window directory")
    size = q.add_mutually_exclusive_group()
    size.add_argument(
        "--window-rows",
        type=positive_int,
        help="records per window (default: monitor.windows.rows, the monitoring windows' size)",
    )
    size.add_argument(
        "--window-minutes",
        type=positive_float,
        help="window length in minutes of log time, aligned to the epoch",
    )
    q.add_argument(
        "--rotated-only",
        action="store_true",
        help="read only rotated (closed) log files, not the one being written",
    )
    q.add_argument(
        "--flush",
        action="store_true",
        help="also write the last, incomplete window (e.g. when retiring a target)",
    )
    q.add_argument(
        "--label-wait-minutes",
        type=minutes,
        default=0.0,
        help="hold back records younger than this (log time) so their feedback can arrive",
    )

    from pipeline.cli_monitor import add_column_flags, add_retain_command

    q = command(logs_sub, "import", _import)
    q.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV or Parquet files")
    add_column_flags(q)
    q.add_argument("--time", help="one time (ISO 8601) for every row of a file without times")
    q.add_argument("--release", help="the release that scored the rows (e.g. r0001-...)")
    add_out(q, PRODUCTION_DIR, "the window directory")

    windows_sub = command_group(
        subparsers, "windows", help="production windows: layout (seal, migrate) and retention"
    )
    for name, handler in (("seal", _seal), ("migrate", _migrate)):
        q = command(windows_sub, name, handler)
        add_out(q, PRODUCTION_DIR, "the window directory")
        q.add_argument("--apply", action="store_true", help="carry it out (default: a dry run)")
    add_retain_command(windows_sub)

    from pipeline.cli_logship import add_log_commands

    add_log_commands(logs_sub)
