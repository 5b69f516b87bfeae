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
from collections.abc import Iterable
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


def write_window(frame: pd.DataFrame, directory: Path) -> Window:
    """Write a window atomically as `<id>.parquet`; an existing window is never rewritten."""
    canon = normalise(frame)
    wid = window_id(canon)
    path = directory / f"{wid}.parquet"
    if not path.exists():
        atomic_write_bytes(path, _canonical_parquet(canon))
    return Window(wid, path)


def sweep_partial_windows(directory: Path) -> None:
    """Remove the temporary files of windows whose writer was killed before its rename
    (`pipeline.io.atomic_open`): the window writers (`mlops logs snapshot`, `logs import`)
    call it before they read the folder, so a retry after a kill completes instead of
    tripping over the leftover (`foreign_files`)."""
    if not directory.is_dir():
        return
    for path in directory.glob(".*.parquet.*.tmp"):
        if path.is_file() and is_window_name(path.name[1:].rsplit(".", 2)[0]):
            path.unlink(missing_ok=True)


GIT_FILES = (".gitkeep", ".gitignore")  # what git and `dvc add` keep in a window folder
POINTER = ".dvc"  # `dvc add data/production/<id>.parquet` writes `<id>.parquet.dvc`


def is_window_name(name: str) -> bool:
    """Whether `name` is a window file's name: `<YYYYmmddTHHMMSS>-<12 hex>.parquet`."""
    return name.endswith(".parquet") and bool(_ID.fullmatch(name[: -len(".parquet")]))


def foreign_files(directory: Path, also: Iterable[str] = ()) -> list[Path]:
    """Everything in a window folder that is not a window file, a window's DVC pointer, a git
    file or one of the names in `also` (files the folder's writer owns, e.g. the simulator's
    manifest): monitoring must never skip traffic silently, so these are errors."""
    allowed = {*GIT_FILES, *also}
    if not directory.is_dir():
        return []
    return sorted(
        path
        for path in directory.iterdir()
        if not (
            path.name in allowed
            or (path.is_file() and is_window_name(path.name))
            or (path.name.endswith(POINTER) and is_window_name(path.name[: -len(POINTER)]))
        )
    )


def list_windows(*directories: Path, also: Iterable[str] = ()) -> list[Window]:
    """Every window file under the given directories, oldest first (ids sort by time).

    Raises DataError naming any other file there (see `foreign_files`): a CSV or a Parquet
    file dropped into data/production/ is turned into windows by `mlops logs import`.
    """
    found = []
    for directory in directories:
        foreign = foreign_files(directory, also)
        if foreign:
            raise DataError(
                f"{directory}: {len(foreign)} file(s) that are not production windows: "
                + ", ".join(p.name for p in foreign[:5])
                + (" ..." if len(foreign) > 5 else ""),
                hint=_foreign_hint(foreign),
            )
        if not directory.is_dir():
            continue
        for path in directory.glob("*.parquet"):
            found.append(Window(path.stem, path))
    return sorted(found, key=lambda w: (w.id, str(w.path)))


def remove_windows(paths: Iterable[Path]) -> list[Path]:
    """Remove window files and their DVC pointers (`<file>.dvc`); what was removed. The one
    way a window leaves the workspace (retention, `pipeline.monitor.retention`): a layout that
    tracks windows otherwise changes this function, not its callers. Callers that must be able
    to undo it journal the paths first (`pipeline.journal`)."""
    removed = []
    for path in paths:
        for each in (path, path.with_name(path.name + POINTER)):
            if each.is_file():
                each.unlink()
                removed.append(each)
    return removed


def _foreign_hint(foreign: list[Path]) -> str:
    data = [p for p in foreign if p.suffix.lower() in (".csv", ".parquet")]
    where = foreign[0].parent
    if data:
        return (
            f"turn a file of traffic into windows with `mlops logs import {data[0]} "
            "--time-column ...` and move the original out of "
            f"{where}; only window files (<YYYYmmddTHHMMSS>-<12 hex>.parquet, written by "
            "`mlops logs import` or `mlops logs snapshot`), their .dvc pointers, .gitignore "
            "and .gitkeep belong there"
        )
    return (
        f"move it out of {where}: only window files (<YYYYmmddTHHMMSS>-<12 hex>.parquet), "
        "their .dvc pointers, .gitignore and .gitkeep belong there"
    )
