"""Production windows: the immutable Parquet files that monitoring reads.

A window is a batch of scored traffic: the input columns as received plus the reserved columns
below. `mlops logs snapshot` writes them from the service's prediction log (joined with
feedback), the `simulate` stage from the production pool, and users may add their own. A
window's id comes from its data (its first timestamp and a digest of its content), so writing
the same traffic twice yields the same file, and monitoring the same window again is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import DataError
from pipeline.io import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd

REQUEST_ID = "__request_id__"  # str: unique per scored record
TIME = "__time__"  # timestamp (UTC): when the record was scored
RELEASE = "__release__"  # str: the release that scored it
PREDICTION = "__prediction__"  # str label (classification) or float (regression)
LABEL = "__label__"  # ground truth when it has arrived (feedback), else null
FLAGS = "__flags__"  # str: comma-separated input flags (out_of_range:x, unseen_category:y)
RESERVED = (REQUEST_ID, TIME, RELEASE, PREDICTION, LABEL, FLAGS)
# Provenance and helper columns outside windows: the window a labelled row was fed back from
# (a column of data/feedback/ files, written by `mlops maintain --apply`), and which file a row
# came from while windows are collected (`pipeline.monitor.windowing`; never written).
WINDOW = "__window__"
SOURCE_FILE = "__file__"
# Every reserved or helper column starts with it; a declared dataset column cannot (its name
# matches ^[a-z]), so a column with it is never a feature.
RESERVED_PREFIX = "__"
# Scored traffic outside windows: the output columns of `mlops predict` (pipeline.deploy.scoring
# writes them, pipeline.traffic reads them back for `mlops logs import` / `monitor --input`)
PREDICTION_COLUMN = "prediction"  # the label (classification, as text) or the value
PROBA_PREFIX = "proba_"  # one column per class: proba_<class>
FLAGS_COLUMN = "flags"  # comma-separated input flags (out_of_range:x, unseen_category:y)
REQUIRED = (TIME, PREDICTION)
_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{12}")  # matched whole (fullmatch)


def is_reserved(column: object) -> bool:
    """Whether `column` is a reserved or helper column (provenance, never a feature)."""
    return str(column).startswith(RESERVED_PREFIX)


@dataclass(frozen=True)
class Window:
    id: str
    path: Path

    def read(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.path)


def _canonical_parquet(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", row_group_size=1 << 17)
    return out.getvalue()


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Reserved columns typed, rows ordered by (time, request id): the canonical form a window's
    id is computed on, so the same traffic always gives the same bytes."""
    import pandas as pd

    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"a production window needs the columns {', '.join(missing)}")
    out = frame.copy()
    out[TIME] = pd.to_datetime(out[TIME], utc=True).astype("datetime64[ns, UTC]")
    for col in (REQUEST_ID, RELEASE, FLAGS):
        if col not in out.columns:
            out[col] = pd.Series([None] * len(out), dtype=object)
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    if LABEL not in out.columns:
        out[LABEL] = pd.Series([None] * len(out), dtype=object)
    keys = [TIME, REQUEST_ID] if out[REQUEST_ID].notna().all() else [TIME]
    out = out.sort_values(keys, kind="stable").reset_index(drop=True)
    features = sorted(c for c in out.columns if c not in RESERVED)
    return out[[*features, *RESERVED]]


def window_id(frame: pd.DataFrame) -> str:
    """`<first time, UTC, to the second>-<12 hex of the content digest>`: sortable by time,
    unique by content."""
    canon = normalise(frame)
    if len(canon) == 0:
        raise DataError("an empty window has no id")
    start = canon[TIME].iloc[0].strftime("%Y%m%dT%H%M%S")
    return f"{start}-{hashlib.sha256(_canonical_parquet(canon)).hexdigest()[:12]}"


# Layout of a window folder (data/production/, data/simulated/): one partition per month of the
# windows' first times, `<folder>/<YYYY-MM>/<id>.parquet`. DVC tracks each production partition
# as one directory output (`dvc add data/production/<YYYY-MM>` writes `<YYYY-MM>.dvc` beside it),
# so the pointers number months, not windows; two branches adding windows to the same month both
# change its pointer, which DVC's merge driver merges (`make install` configures it for git,
# `.gitattributes` assigns it). Files of the earlier layout (`<id>.parquet` and its
# `<id>.parquet.dvc` at the top of the folder) are still read; `mlops windows migrate` moves them.
_PARTITION = re.compile(r"\d{4}-\d{2}")


def partition_of(wid: str) -> str:
    """The partition (`YYYY-MM`) of a window id: the month of its first time."""
    return f"{wid[:4]}-{wid[4:6]}"


def is_partition_name(name: str) -> bool:
    """Whether `name` is a partition folder's name (`YYYY-MM`)."""
    return bool(_PARTITION.fullmatch(name))


def window_path(directory: Path, wid: str) -> Path:
    """Where the window `wid` is written under `directory` (its month's partition)."""
    return directory / partition_of(wid) / f"{wid}.parquet"


def find_window(directory: Path, wid: str) -> Path | None:
    """The file of window `wid` under `directory`, in its partition or (earlier layout) at the
    top; None when it was never written."""
    for path in (window_path(directory, wid), directory / f"{wid}.parquet"):
        if path.is_file():
            return path
    return None


def write_window(frame: pd.DataFrame, directory: Path) -> Window:
    """Write a window atomically as `<partition>/<id>.parquet`; an existing window (in either
    layout) is never rewritten."""
    canon = normalise(frame)
    wid = window_id(canon)
    existing = find_window(directory, wid)
    if existing is not None:
        return Window(wid, existing)
    path = window_path(directory, wid)
    atomic_write_bytes(path, _canonical_parquet(canon))
    return Window(wid, path)


def partitions(directory: Path) -> list[Path]:
    """The partition folders of a window folder, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and is_partition_name(p.name))


def _window_folders(directory: Path) -> list[Path]:
    return [directory, *partitions(directory)] if directory.is_dir() else []


def sweep_partial_windows(directory: Path) -> None:
    """Remove the temporary files of windows whose writer was killed before its rename
    (`pipeline.io.atomic_open`): the window writers (`mlops logs snapshot`, `logs import`)
    call it before they read the folder, so a retry after a kill completes instead of
    tripping over the leftover (`foreign_files`)."""
    for folder in _window_folders(directory):
        for path in folder.glob(".*.parquet.*.tmp"):
            if path.is_file() and is_window_name(path.name[1:].rsplit(".", 2)[0]):
                path.unlink(missing_ok=True)


GIT_FILES = (".gitkeep", ".gitignore")  # what git and `dvc add` keep in a window folder
POINTER = ".dvc"  # `dvc add data/production/<YYYY-MM>` writes `<YYYY-MM>.dvc`


def is_window_name(name: str) -> bool:
    """Whether `name` is a window file's name: `<YYYYmmddTHHMMSS>-<12 hex>.parquet`."""
    return name.endswith(".parquet") and bool(_ID.fullmatch(name[: -len(".parquet")]))


def _allowed_top(path: Path, allowed: set[str]) -> bool:
    name = path.name
    if name in allowed:
        return True
    if path.is_dir():
        return is_partition_name(name)
    if name.endswith(POINTER):  # a partition's pointer, or a window's (earlier layout)
        stem = name[: -len(POINTER)]
        return is_partition_name(stem) or is_window_name(stem)
    return path.is_file() and is_window_name(name)


def foreign_files(directory: Path, also: Iterable[str] = ()) -> list[Path]:
    """Everything in a window folder that is not a partition of window files, a DVC pointer, a
    git file or one of the names in `also` (files the folder's writer owns, e.g. the simulator's
    manifest): monitoring must never skip traffic silently, so these are errors. A window file
    in another month's partition is foreign too (its partition names its month)."""
    allowed = {*GIT_FILES, *also}
    if not directory.is_dir():
        return []
    foreign = [p for p in directory.iterdir() if not _allowed_top(p, allowed)]
    for folder in partitions(directory):
        foreign += [
            path
            for path in folder.iterdir()
            if not (
                path.is_file()
                and is_window_name(path.name)
                and partition_of(path.name) == folder.name
            )
        ]
    return sorted(foreign)


def list_windows(*directories: Path, also: Iterable[str] = ()) -> list[Window]:
    """Every window file under the given directories (in their partitions, or at the top in
    the earlier layout), oldest first (ids sort by time).

    Raises DataError naming any other file there (see `foreign_files`): a CSV or a Parquet
    file dropped into data/production/ is turned into windows by `mlops logs import`.
    """
    found = []
    for directory in directories:
        foreign = foreign_files(directory, also)
        if foreign:
            raise DataError(
                f"{directory}: {len(foreign)} file(s) that are not production windows: "
                + ", ".join(str(p.relative_to(directory)) for p in foreign[:5])
                + (" ..." if len(foreign) > 5 else ""),
                hint=_foreign_hint(foreign),
            )
        for folder in _window_folders(directory):
            for path in folder.glob("*.parquet"):
                found.append(Window(path.stem, path))
    return sorted(found, key=lambda w: (w.id, str(w.path)))


def unfetched(directory: Path) -> list[str]:
    """What DVC tracks under a window folder that is not in the workspace: a partition whose
    pointer (`<YYYY-MM>.dvc`) has no folder, a window (earlier layout: `<id>.parquet.dvc`)
    without its file. Monitoring stops on them (`dvc pull` brings them)."""
    if not directory.is_dir():
        return []
    missing = []
    for pointer in directory.glob("*" + POINTER):
        stem = pointer.name[: -len(POINTER)]
        target = directory / stem
        if is_partition_name(stem) and not target.is_dir():
            missing.append(stem + "/")
        elif is_window_name(stem) and not target.is_file():
            missing.append(stem)
    return sorted(missing)


def _foreign_hint(foreign: list[Path]) -> str:
    data = [p for p in foreign if p.suffix.lower() in (".csv", ".parquet")]
    where = foreign[0].parent
    if data:
        return (
            f"turn a file of traffic into windows with `mlops logs import {data[0]} "
            "--time-column ...` and move the original out of "
            f"{where}; only window files (<YYYYmmddTHHMMSS>-<12 hex>.parquet, written by "
            "`mlops logs import` or `mlops logs snapshot`) in their month's folder "
            "(<YYYY-MM>/), the folders' .dvc pointers, .gitignore and .gitkeep belong there"
        )
    return (
        f"move it out of {where}: only window files (<YYYYmmddTHHMMSS>-<12 hex>.parquet) in "
        "their month's folder (<YYYY-MM>/), the folders' .dvc pointers, .gitignore and .gitkeep "
        "belong there"
    )


# Tracking: the commands outside the graph that change which windows exist (migration,
# retention) record the change in the partitions' DVC pointers themselves, so what they did is
# a reviewable diff of `<YYYY-MM>.dvc` files. DVC is imported here only, lazily: stages never
# call these.


def track_partitions(folders: Sequence[Path]) -> None:
    """Record each partition folder's content in its DVC pointer (`dvc add`); a partition left
    without windows loses its pointer and folder (`dvc remove`), so no pointer names an empty
    month."""
    if not folders:
        return
    from dvc.repo import Repo

    keep = [f for f in folders if f.is_dir() and any(f.iterdir())]
    gone = [f for f in folders if f not in keep]
    with Repo(str(folders[0].parent)) as repo:
        if keep:
            repo.add([str(f.resolve()) for f in keep])
        for folder in gone:
            pointer = folder.with_name(folder.name + POINTER)
            if pointer.exists():
                repo.remove(str(pointer.resolve()))
            if folder.is_dir():
                folder.rmdir()


def remove_windows(paths: Iterable[Path]) -> list[Path]:
    """Remove window files and update their partitions' DVC pointers (a reviewable diff: the
    `<YYYY-MM>.dvc` files change; commit them). Returns the partitions it re-tracked.

    Refuses anything that is not a window file in its partition (DataError, nothing removed).
    Atomic as a whole: the files are first moved aside (same file system); if DVC fails they are
    moved back, so a failed removal leaves the windows and pointers as they were."""
    import shutil
    import tempfile

    targets = sorted({Path(p) for p in paths})
    wrong = [
        p
        for p in targets
        if not (
            p.is_file()
            and is_window_name(p.name)
            and is_partition_name(p.parent.name)
            and partition_of(p.name) == p.parent.name
        )
    ]
    if wrong:
        raise DataError(
            f"not window files in their partition: {', '.join(map(str, wrong[:5]))}",
            hint="pass <folder>/<YYYY-MM>/<id>.parquet paths that exist (`list_windows`)",
        )
    if not targets:
        return []
    folders = sorted({p.parent for p in targets})
    pointers = {f: f.with_name(f.name + POINTER) for f in folders}
    before = {f: p.read_bytes() for f, p in pointers.items() if p.exists()}
    ignore = folders[0].parent / ".gitignore"
    ignore_before = ignore.read_bytes() if ignore.exists() else None
    aside = Path(tempfile.mkdtemp(prefix=".removed-", dir=folders[0].parent.parent))
    moved: list[tuple[Path, Path]] = []
    try:
        for i, path in enumerate(targets):
            parked = aside / f"{i}-{path.name}"
            path.replace(parked)
            moved.append((path, parked))
        track_partitions(folders)
    except BaseException:
        for path, parked in moved:
            path.parent.mkdir(parents=True, exist_ok=True)
            parked.replace(path)
        for folder, pointer in pointers.items():
            if folder in before:
                atomic_write_bytes(pointer, before[folder])
        if ignore_before is not None:
            atomic_write_bytes(ignore, ignore_before)
        else:
            ignore.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return folders


@dataclass
class Migration:
    """What `mlops windows migrate` does to a window folder of the earlier layout (one
    `<id>.parquet.dvc` per window): each window moves into its month's partition, the per-window
    pointers and their .gitignore lines go, and each partition is tracked as one output."""

    directory: Path
    moves: list[tuple[Path, Path]]
    pointers: list[Path]

    @property
    def partitions(self) -> list[Path]:
        return sorted({dst.parent for _, dst in self.moves})


def plan_migration(directory: Path) -> Migration:
    """The migration of `directory` (nothing to do: empty lists). Refuses, naming them, tracked
    windows that are not in the workspace (`dvc pull` first) and windows whose file differs from
    what its pointer recorded (a window never changes: DVC would lose the recorded one)."""
    if not directory.is_dir():
        return Migration(directory, [], [])
    foreign = foreign_files(directory)
    if foreign:
        list_windows(directory)  # raises the error that names them
    pointers = sorted(
        p for p in directory.glob("*.parquet" + POINTER) if is_window_name(p.name[: -len(POINTER)])
    )
    missing = [p.name[: -len(POINTER)] for p in pointers if not p.with_suffix("").is_file()]
    if missing:
        raise DataError(
            f"{directory}: {len(missing)} tracked window(s) not in the workspace: "
            + ", ".join(missing[:5]),
            hint=f"run `dvc pull {directory}` first: migration moves every window file",
        )
    changed = [p.with_suffix("").name for p in pointers if not _matches_pointer(p)]
    if changed:
        raise DataError(
            f"{directory}: {len(changed)} window file(s) differ from what their .dvc pointer "
            "recorded: " + ", ".join(changed[:5]),
            hint="a window never changes: restore them with `dvc checkout` before migrating",
        )
    moves = [
        (path, window_path(directory, path.stem))
        for path in sorted(directory.glob("*.parquet"))
        if is_window_name(path.name)
    ]
    clash = [dst for _, dst in moves if dst.exists()]
    if clash:
        raise DataError(
            f"{directory}: window(s) present in both layouts: "
            + ", ".join(str(p) for p in clash[:5]),
            hint="remove the copy at the top of the folder (the partition holds the same "
            "window: its name is its content's digest)",
        )
    return Migration(directory, moves, pointers)


def _matches_pointer(pointer: Path) -> bool:
    import yaml

    try:
        outs = yaml.safe_load(pointer.read_text())["outs"]
        recorded = outs[0]["md5"]
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError) as exc:
        raise DataError(
            f"{pointer}: not a DVC pointer ({exc})", hint="restore it with `git checkout`"
        ) from exc
    data = pointer.with_suffix("").read_bytes()
    return hashlib.md5(data, usedforsecurity=False).hexdigest() == recorded


def apply_migration(plan: Migration) -> None:
    """Carry out `plan`: on any failure, the files, pointers and .gitignore are put back as
    they were (DVC's cache may keep copies of the windows: harmless, content-addressed)."""
    if not plan.moves and not plan.pointers:
        return
    ignore = plan.directory / ".gitignore"
    ignore_before = ignore.read_bytes() if ignore.exists() else None
    pointer_bytes = {p: p.read_bytes() for p in plan.pointers}
    for folder in plan.partitions:  # partitions tracked already change too
        if folder.with_name(folder.name + POINTER).exists():
            pointer = folder.with_name(folder.name + POINTER)
            pointer_bytes[pointer] = pointer.read_bytes()
    new_pointers = [
        f.with_name(f.name + POINTER)
        for f in plan.partitions
        if not f.with_name(f.name + POINTER).exists()
    ]
    new_folders = [f for f in plan.partitions if not f.exists()]
    moved: list[tuple[Path, Path]] = []
    try:
        for src, dst in plan.moves:
            dst.parent.mkdir(exist_ok=True)
            src.replace(dst)
            moved.append((src, dst))
        for pointer in plan.pointers:
            pointer.unlink()
        if ignore_before is not None:
            names = {f"/{p.name[: -len(POINTER)]}" for p in plan.pointers}
            kept = [
                line
                for line in ignore_before.decode().splitlines(keepends=True)
                if line.strip() not in names
            ]
            atomic_write_bytes(ignore, "".join(kept).encode())
        track_partitions(plan.partitions)
    except BaseException:
        for src, dst in reversed(moved):
            dst.replace(src)
        for pointer, data in pointer_bytes.items():
            atomic_write_bytes(pointer, data)
        for pointer in new_pointers:
            pointer.unlink(missing_ok=True)
        for folder in new_folders:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if ignore_before is not None:
            atomic_write_bytes(ignore, ignore_before)
        else:
            ignore.unlink(missing_ok=True)
        raise
