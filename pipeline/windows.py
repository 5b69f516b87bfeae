"""Production windows: the immutable Parquet files that monitoring reads.

A window is a batch of scored traffic: the input columns as received plus the reserved columns
below. `mlops logs snapshot` writes them from the service's prediction log (joined with
feedback), the `simulate` stage from the production pool, and users may add their own. A
window's id comes from its data (its first timestamp and a digest of its content), so writing
the same traffic twice yields the same file, and monitoring the same window again is a no-op.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    """A window file: `path` is the file itself, or the pack holding it (`member` then names it
    inside; see "Packs" below). Read it through `read`, `data` or `source`, never `path`."""

    id: str
    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """The window file's name, `<id>.parquet`, wherever it is stored."""
        return f"{self.id}.parquet"

    def data(self) -> bytes:
        """The window file's bytes (the same whether loose or packed)."""
        if self.member is None:
            return self.path.read_bytes()
        return read_member(self.path, self.member)

    def source(self) -> Path | io.BytesIO:
        """Something pandas and pyarrow read as the window's Parquet file."""
        return self.path if self.member is None else io.BytesIO(self.data())

    def read(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.source())


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


def encode_window(frame: pd.DataFrame) -> tuple[str, bytes]:
    """A window's id and file bytes: `<first time, UTC, to the second>-<12 hex of the digest of
    the bytes>`, sortable by time, unique by content."""
    canon = normalise(frame)
    if len(canon) == 0:
        raise DataError("an empty window has no id")
    start = canon[TIME].iloc[0].strftime("%Y%m%dT%H%M%S")
    data = _canonical_parquet(canon)
    return f"{start}-{hashlib.sha256(data).hexdigest()[:12]}", data


def window_id(frame: pd.DataFrame) -> str:
    """The id a window of `frame` gets (`encode_window`)."""
    return encode_window(frame)[0]


# Layout of a window folder (data/production/, data/simulated/), owned here:
#
#   <folder>/<YYYY-MM>/<id>.parquet    a window file, in the partition of its first time's month
#   <folder>/<YYYY-MM>/<YYYYMMDD>.zip  a day pack: the windows of a day, byte for byte
#   <folder>/<YYYY-MM>/<YYYYMM>.zip    a month pack: the windows of a month
#   <folder>/<YYYY-MM>.dvc             the partition's DVC pointer (production: one output a month)
#
# Writers only ever add window files. `mlops windows seal` packs what is closed: every window of a
# month before the newest window's month into that month's pack, every window of a day before the
# newest window's day into that day's pack (no clock: "newest" comes from the data), so a folder
# holds, whatever its history, about one file a month plus one a day of the newest month plus the
# newest day's windows. That is what keeps DVC flat: `dvc status` and a no-op `dvc repro` stat and
# look up every file of a tracked directory (its state cache spares the hashing, not the walk:
# about 0.5 ms a file, measured in bench/bench_history.py), so 10,000 loose windows cost seconds on
# every call however they are tracked, and one pointer each costs more. A pack is uncompressed
# zip with fixed metadata and sorted members: the same windows always give the same bytes, and a
# window keeps its bytes (and so its id) whether loose or packed.
#
# Two branches adding windows to the same month both change its pointer; DVC's merge driver merges
# the two listings (`scripts/git_merge_drivers.sh`, run by `make install`; `.gitattributes`). Seal
# on one branch (the default one, as the monitor workflow does): two branches sealing the same
# day both remove its loose windows, which the driver refuses to merge.
#
# Files of the earlier layout (`<id>.parquet` with its `<id>.parquet.dvc` at the top of the
# folder) are still read; `mlops windows migrate` moves them into partitions.
_PARTITION = re.compile(r"\d{4}-\d{2}")
_PACK = re.compile(r"(\d{6}|\d{8})\.zip")
PACK_TIME = (1980, 1, 1, 0, 0, 0)  # every member's zip timestamp: packs are reproducible


def partition_of(wid: str) -> str:
    """The partition (`YYYY-MM`) of a window id (or window file name): its first time's month."""
    return f"{wid[:4]}-{wid[4:6]}"


def is_partition_name(name: str) -> bool:
    """Whether `name` is a partition folder's name (`YYYY-MM`)."""
    return bool(_PARTITION.fullmatch(name))


def is_pack_name(name: str, partition: str) -> bool:
    """Whether `name` is a day or month pack of `partition` (`YYYYMMDD.zip`, `YYYYMM.zip`)."""
    return bool(_PACK.fullmatch(name)) and name[:6] == partition.replace("-", "")


def window_path(directory: Path, wid: str) -> Path:
    """Where the window `wid` is written under `directory` (loose, in its month's partition)."""
    return directory / partition_of(wid) / f"{wid}.parquet"


def _packs_of(directory: Path, wid: str) -> list[Path]:
    folder = directory / partition_of(wid)
    return [folder / f"{wid[:8]}.zip", folder / f"{wid[:6]}.zip"]


def find_window(directory: Path, wid: str) -> Window | None:
    """The window `wid` under `directory`: loose in its partition, in its day's or month's
    pack, or (earlier layout) at the top; None when it was never written."""
    for path in (window_path(directory, wid), directory / f"{wid}.parquet"):
        if path.is_file():
            return Window(wid, path)
    for pack in _packs_of(directory, wid):
        if pack.is_file() and f"{wid}.parquet" in _members(pack):
            return Window(wid, pack, f"{wid}.parquet")
    return None


def write_window(frame: pd.DataFrame, directory: Path) -> Window:
    """Write a window atomically as `<partition>/<id>.parquet`; an existing window (loose,
    packed, or in the earlier layout) is never rewritten."""
    wid, data = encode_window(frame)
    existing = find_window(directory, wid)
    if existing is not None:
        return existing
    path = window_path(directory, wid)
    atomic_write_bytes(path, data)
    return Window(wid, path)


def partitions(directory: Path) -> list[Path]:
    """The partition folders of a window folder, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and is_partition_name(p.name))


def _window_folders(directory: Path) -> list[Path]:
    return [directory, *partitions(directory)] if directory.is_dir() else []


def _is_partial(name: str) -> bool:
    """A temporary file `pipeline.io.atomic_open` left for a window or pack (`.<name>.*.tmp`)."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    target = name[1:].rsplit(".", 2)[0]
    return is_window_name(target) or bool(_PACK.fullmatch(target))


def sweep_partial_windows(directory: Path) -> None:
    """Remove the temporary files of windows (and packs) whose writer was killed before its
    rename (`pipeline.io.atomic_open`): the window writers (`mlops logs snapshot`, `logs
    import`, `windows seal`) call it before they read the folder, so a retry after a kill
    completes instead of tripping over the leftover (`foreign_files`)."""
    for folder in _window_folders(directory):
        for path in folder.glob(".*.tmp"):
            if path.is_file() and _is_partial(path.name):
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


def _allowed_in(path: Path, partition: str) -> bool:
    if not path.is_file():
        return False
    if is_window_name(path.name):
        return partition_of(path.name) == partition
    return is_pack_name(path.name, partition)


_PACK_HINT = "restore it with `dvc checkout` (packs are written by `mlops windows seal`)"


def _members(pack: Path) -> list[str]:
    return list(_pack_index(pack))


def _pack_index(pack: Path) -> dict[str, zipfile.ZipInfo]:
    """A pack's members, read from its central directory once per version of the file (its
    inode, size and mtime: packs are replaced atomically, never edited in place): opening the
    zip for every member it holds made reading a month of windows quadratic in its length."""
    try:
        stat = pack.stat()
    except OSError as exc:
        raise DataError(f"{pack}: not a readable window pack ({exc})", hint=_PACK_HINT) from exc
    return _index_of(str(pack), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _index_of(path: str, inode: int, size: int, mtime_ns: int) -> dict[str, zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(path) as archive:
            index = {info.filename: info for info in archive.infolist()}
            _COMMENTS[(path, inode, size, mtime_ns)] = archive.comment
            return index
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable window pack ({exc})", hint=_PACK_HINT) from exc


_COMMENTS: dict[tuple[str, int, int, int], bytes] = {}  # beside _index_of's cache


def _pack_newest(pack: Path) -> frozenset[str] | None:
    """The members a pack's comment names as holding its newest row (`write_pack`); None
    when the pack has no such comment (written before it was recorded, or by another tool)."""
    _pack_index(pack)
    stat = pack.stat()
    comment = _COMMENTS.get((str(pack), stat.st_ino, stat.st_size, stat.st_mtime_ns), b"")
    try:
        names = json.loads(comment.decode("utf-8")).get("newest") if comment else None
    except (ValueError, AttributeError):
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return frozenset(names)


def newest_candidates(windows: Sequence[Window]) -> list[Window]:
    """The windows that may hold the newest row of `windows`: every loose one, and of a packed
    one only the members its pack's comment names (the pack's newest, recorded when it was
    written), so finding the newest row reads a few footers, not one per window ever kept."""
    found = []
    for window in windows:
        named = None if window.member is None else _pack_newest(window.path)
        if named is None or window.member in named:
            found.append(window)
    return found


def newest_time(source: Path | io.BytesIO | bytes) -> Any:
    """The newest time of a window file, from its footer's statistics: None for no rows,
    `UNKNOWN` when the footer cannot say (time stored as text or numbers by another writer,
    a row group without statistics): the caller then reads the time column."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(io.BytesIO(source) if isinstance(source, bytes) else source)
    paths = [meta.schema.column(j).path for j in range(meta.num_columns)]  # leaf columns
    if paths.count(TIME) != 1:
        return UNKNOWN
    column = paths.index(TIME)
    if meta.schema.column(column).logical_type.type != "TIMESTAMP":
        return UNKNOWN
    newest = None
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        if group.num_rows == 0:
            continue
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max or stats.null_count:
            return UNKNOWN
        newest = stats.max if newest is None else max(newest, stats.max)
    return newest


UNKNOWN = object()  # `newest_time` cannot tell from the footer


def _newest_members(members: dict[str, bytes]) -> list[str] | None:
    """The members holding a pack's newest time (read from footers, or the time column); None
    when their times do not compare (stored as text by another tool): no member is skipped."""
    import pyarrow.parquet as pq

    times: dict[str, Any] = {}
    for name, data in members.items():
        newest = newest_time(data)
        if newest is UNKNOWN:
            column = pq.read_table(io.BytesIO(data), columns=[TIME]).column(TIME).to_pylist()
            newest = max((t for t in column if t is not None), default=None)
        if newest is not None:
            times[name] = newest
    if not times:
        return []
    try:
        top = max(times.values())
        return sorted(name for name, t in times.items() if t == top)
    except TypeError:
        return None


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra length


def read_member(pack: Path, member: str) -> bytes:
    """One member's bytes, found through the pack's cached index (`_pack_index`) and checked
    against its CRC-32, as `zipfile` would check it. Packs are stored uncompressed
    (`write_pack`); any other member is read through `zipfile` itself."""
    info = _pack_index(pack).get(member)
    if info is None or info.compress_type != zipfile.ZIP_STORED:
        try:
            with zipfile.ZipFile(pack) as archive:
                return archive.read(member)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{pack}:{member}: not readable ({exc})", hint=_PACK_HINT) from exc
    try:
        with pack.open("rb") as fh:
            fh.seek(info.header_offset)
            magic, name_length, extra_length = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
            name = fh.read(name_length)
            fh.seek(extra_length, io.SEEK_CUR)
            data = fh.read(info.compress_size)
    except (OSError, struct.error) as exc:
        raise DataError(f"{pack}:{member}: not readable ({exc})", hint=_PACK_HINT) from exc
    if magic != b"PK\x03\x04" or name != member.encode() or len(data) != info.compress_size:
        raise DataError(f"{pack}:{member}: the pack is damaged (bad local header)", hint=_PACK_HINT)
    if zlib.crc32(data) != info.CRC:
        raise DataError(f"{pack}:{member}: the pack is damaged (CRC mismatch)", hint=_PACK_HINT)
    return data


def _bad_members(pack: Path) -> list[str]:
    period = pack.name[: -len(".zip")]
    return [m for m in _members(pack) if not (is_window_name(m) and m.startswith(period))]


def foreign_files(directory: Path, also: Iterable[str] = ()) -> list[Path]:
    """Everything in a window folder that is not a partition of window files and packs, a DVC
    pointer, a git file or one of the names in `also` (files the folder's writer owns, e.g. the
    simulator's manifest): monitoring must never skip traffic silently, so these are errors. A
    window or pack in another month's partition is foreign too (its partition names its month),
    and so is a pack holding anything but windows of its day or month (`pack.zip:member`)."""
    allowed = {*GIT_FILES, *also}
    if not directory.is_dir():
        return []
    foreign = [p for p in directory.iterdir() if not _allowed_top(p, allowed)]
    for folder in partitions(directory):
        for path in folder.iterdir():
            if not _allowed_in(path, folder.name):
                foreign.append(path)
            elif path.suffix == ".zip":
                foreign += [path.with_name(f"{path.name}:{m}") for m in _bad_members(path)]
    return sorted(foreign)


def list_windows(*directories: Path, also: Iterable[str] = ()) -> list[Window]:
    """Every window under the given directories (loose or packed in their partitions, or at
    the top in the earlier layout), oldest first (ids sort by time).

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
            for pack in folder.glob("*.zip"):
                found += [Window(m[: -len(".parquet")], pack, m) for m in _members(pack)]
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


HINT_PLACE = (
    "only window files (<YYYYmmddTHHMMSS>-<12 hex>.parquet) and their packs (written by "
    "`mlops windows seal`) in their month's folder (<YYYY-MM>/), the folders' .dvc pointers, "
    ".gitignore and .gitkeep belong there"
)


def _foreign_hint(foreign: list[Path]) -> str:
    data = [p for p in foreign if p.suffix.lower() in (".csv", ".parquet")]
    where = foreign[0].parent
    if data:
        return (
            f"turn a file of traffic into windows with `mlops logs import {data[0]} "
            "--time-column ...` (it writes windows where they belong) and move the original "
            f"out of {where}; {HINT_PLACE}"
        )
    return f"move it out of {where}: {HINT_PLACE}"


# Packs and tracking: the commands outside the graph that change how or which windows are stored
# (seal, retention, migration) rewrite whole partitions through `_Undo`, so a failure leaves every
# file as it was, and record the change in the partitions' DVC pointers, so what they did is a
# reviewable diff of `<YYYY-MM>.dvc` files. DVC is imported here only, lazily: stages never call
# these.


def container_of(wid: str, newest: str) -> str | None:
    """Where a sealed folder whose newest window is `newest` keeps window `wid`: its month's
    pack for an earlier month, its day's pack for an earlier day, else loose (None)."""
    if wid[:6] < newest[:6]:
        return f"{wid[:6]}.zip"
    if wid[:8] < newest[:8]:
        return f"{wid[:8]}.zip"
    return None


def write_pack(path: Path, members: dict[str, bytes]) -> None:
    """A pack, atomically: uncompressed zip (Parquet is compressed already), members sorted,
    fixed timestamps and modes, so the same windows always make the same bytes. Its comment
    names the members holding its newest row (`newest_candidates`: `mlops logs snapshot`'s
    watermark then reads their footers only)."""
    from pipeline.io import atomic_open

    comment = json.dumps({"newest": _newest_members(members)}, separators=(",", ":"))
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as pack:
        pack.comment = comment.encode()
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=PACK_TIME)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            pack.writestr(info, members[name])


class _Undo:
    """The bytes of every file a command is about to change, to put back on failure."""

    def __init__(self) -> None:
        self.saved: dict[Path, bytes | None] = {}

    def save(self, path: Path) -> None:
        if path not in self.saved:
            self.saved[path] = path.read_bytes() if path.is_file() else None

    def restore(self) -> None:
        for path, data in self.saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_bytes(path, data)
        for path in self.saved:
            folder = path.parent
            if is_partition_name(folder.name) and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _current(folder: Path) -> dict[str | None, set[str]]:
    """A partition's containers: loose window ids (None) and each pack's window ids."""
    out: dict[str | None, set[str]] = {None: set()}
    if not folder.is_dir():
        return out
    out[None] = {p.stem for p in folder.glob("*.parquet")}
    for pack in folder.glob("*.zip"):
        out[pack.name] = {m[: -len(".parquet")] for m in _members(pack)}
    return out


def _rewrite(folder: Path, target: dict[str | None, set[str]], data: dict[str, bytes]) -> bool:
    """Make partition `folder` hold exactly `target` (container -> window ids; None: loose),
    writing what differs; whether anything changed. The caller's `_Undo` has saved every file."""
    current = _current(folder)
    target = {k: v for k, v in target.items() if v or k is None}
    changed = False
    for name, ids in target.items():
        if name is not None and current.get(name) != ids:
            write_pack(folder / name, {f"{i}.parquet": data[i] for i in ids})
            changed = True
    for wid in target.get(None, set()) - current[None]:
        atomic_write_bytes(folder / f"{wid}.parquet", data[wid])
        changed = True
    for wid in current[None] - target.get(None, set()):
        (folder / f"{wid}.parquet").unlink()
        changed = True
    for name in set(current) - set(target):
        if name is not None:
            (folder / name).unlink()
            changed = True
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return changed


def _saved(folder: Path, undo: _Undo, *, content: bool) -> None:
    """Save what a change of `folder` may touch: its files when it is rewritten (`content`),
    always its pointer and the .gitignore beside it (`dvc add` writes both)."""
    if content and folder.is_dir():
        for path in folder.iterdir():
            undo.save(path)
    pointer = folder.with_name(folder.name + POINTER)
    undo.save(pointer)
    undo.save(folder.parent / ".gitignore")


def track_partitions(folders: Sequence[Path]) -> None:
    """Record each partition folder's content in its DVC pointer (`dvc add`); a partition left
    without windows loses its pointer (`dvc remove`), so no pointer names an empty month."""
    if not folders:
        return
    from pipeline import vcs  # the one way DVC is run (a process of its own: its logging and
    #                           state never outlive the call inside a long-lived process)

    keep = [f for f in folders if f.is_dir() and any(f.iterdir())]
    gone = [f for f in folders if f not in keep]
    where = folders[0].parent
    if keep:
        vcs.dvc(where, "add", "--quiet", *(str(f.resolve()) for f in keep))
    pointers = [f.with_name(f.name + POINTER) for f in gone]
    pointers = [p for p in pointers if p.exists()]
    if pointers:
        vcs.dvc(where, "remove", *(str(p.resolve()) for p in pointers))


def _change(
    directory: Path,
    targets: dict[Path, dict[str | None, set[str]]],
    track: Sequence[Path] | None = None,
) -> list[Path]:
    """Rewrite the partitions in `targets` (reading only their windows) and `dvc add` them and
    the partitions in `track` (None: track nothing), all or nothing."""
    sweep_partial_windows(directory)
    data = {w.id: w.data() for w in list_windows(directory) if w.path.parent in targets}
    undo = _Undo()
    for folder in {*targets, *(track or ())}:
        _saved(folder, undo, content=folder in targets)
    try:
        changed = [f for f, target in targets.items() if _rewrite(f, target, data)]
        if track is not None:
            track_partitions(sorted({*changed, *(f for f in [*targets, *track] if f.is_dir())}))
    except BaseException:
        undo.restore()
        raise
    return changed


@dataclass
class Seal:
    """What `mlops windows seal` does: per partition, the containers it will hold."""

    directory: Path
    targets: dict[Path, dict[str | None, set[str]]]

    @property
    def changes(self) -> dict[Path, dict[str | None, set[str]]]:
        return {f: t for f, t in self.targets.items() if _current(f) != _normal(t)}


def _normal(target: dict[str | None, set[str]]) -> dict[str | None, set[str]]:
    return {k: v for k, v in target.items() if v or k is None}


def plan_seal(directory: Path) -> Seal:
    """The sealed layout of `directory` (`container_of` each window, the newest window's id as
    the clock). Windows of the earlier layout are left to `mlops windows migrate`."""
    windows = [w for w in list_windows(directory) if w.path.parent != directory]
    targets: dict[Path, dict[str | None, set[str]]] = {}
    if windows:
        newest = windows[-1].id
        for w in windows:
            folder = directory / partition_of(w.id)
            target = targets.setdefault(folder, {None: set()})
            target.setdefault(container_of(w.id, newest), set()).add(w.id)
    return Seal(directory, targets)


def apply_seal(plan: Seal, *, track: bool = True) -> list[Path]:
    """Carry out `plan` and `dvc add` every partition (new windows included); returns the
    partitions rewritten. On failure every window, pack, pointer and .gitignore is restored.
    Only the partitions that change are read and written: sealing costs the new windows, not
    the history."""
    every = partitions(plan.directory) if track else None
    return _change(plan.directory, plan.changes, every)


def remove_windows(windows: Iterable[Window | Path]) -> list[Path]:
    """Remove windows (loose files, or members of packs, which are rewritten without them) and
    update their partitions' DVC pointers: a reviewable diff of `<YYYY-MM>.dvc` files (commit
    them). Returns the partitions changed. Refuses anything that is not a window in its
    partition (DataError, nothing removed); on failure every file is as it was."""
    chosen: list[Window] = []
    for item in windows:
        window = item if isinstance(item, Window) else Window(Path(item).stem, Path(item))
        folder = window.path.parent
        if not (
            is_window_name(window.name)
            and is_partition_name(folder.name)
            and partition_of(window.id) == folder.name
            and (window.path.is_file() if window.member is None else True)
        ):
            raise DataError(
                f"{window.path}: not a window in its partition",
                hint="pass windows that `list_windows` returns (<folder>/<YYYY-MM>/...)",
            )
        chosen.append(window)
    if not chosen:
        return []
    directory = chosen[0].path.parent.parent
    targets: dict[Path, dict[str | None, set[str]]] = {}
    for window in chosen:
        folder = window.path.parent
        if folder not in targets:
            targets[folder] = _current(folder)
        ids = targets[folder].get(window.member and window.path.name)
        if ids is None or window.id not in ids:
            raise DataError(f"{window.path}: no window {window.id} there", hint="list them again")
        ids.discard(window.id)
    return _change(directory, targets, [])


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
