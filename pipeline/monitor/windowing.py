"""From window files to monitoring windows: pool each source's traffic, then cut it as declared.

Window *files* are how traffic is stored (`pipeline.windows`: immutable, named by their data);
monitoring *windows* are what a verdict is given on, cut from the pooled traffic of one source
(`data/production/` and `data/simulated/` are separate streams and never mixed) in time order:

* `by: rows` - consecutive runs of `rows` rows, counted from the source's first row. Traffic that
  arrives later only extends the last window (which is "insufficient data" until it reaches
  `min_rows`), so earlier windows keep their rows and their ids.
* `by: time` - tumbling spans (`span`: 15min, 6h, 1d, 1w) aligned to the Unix epoch in UTC, so
  a day is a calendar day however the traffic was snapshotted into files.

A window's id is `pipeline.windows.window_id` of its rows: the same rows always give the same
id, so monitoring the same traffic twice changes nothing. A window made of exactly one whole
file keeps that file's id (`write_window` named it from the same rows), so a history row names
its file.

Files whose time ranges overlap (or touch) are pooled together, as one *cluster*: rows repeated
across them (same `__request_id__`) count once, and the cluster reports how many were dropped
on the window holding its first row. Clusters never share a time, so a line's pooled traffic
is its clusters one after the other; `survey` plans the cut from kept file and cluster
summaries (`pipeline.monitor.kept`) and reads only the windows it is asked for, so a window
whose files did not change is recognised without parsing them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import numpy as np

from pipeline.errors import DataError
from pipeline.monitor.kept import parts_of
from pipeline.params import WindowSpec
from pipeline.windows import (
    LABEL,
    PREDICTION,
    RELEASE,
    REQUEST_ID,
    REQUIRED,
    RESERVED,
    SOURCE_FILE,
    TIME,
    Window,
    is_window_name,
    list_windows,
    normalise,
    window_id,
)
from pipeline.windows import unfetched as windows_unfetched

if TYPE_CHECKING:
    import pandas as pd

_FILE = SOURCE_FILE  # helper column: which file a row came from (dropped before ids are taken)


@dataclass(frozen=True)
class MonitorWindow:
    """One monitoring window: its id, its source stream, its rows and the files they came from."""

    id: str
    source: str
    frame: pd.DataFrame
    files: tuple[str, ...]
    duplicates: int = 0  # rows dropped because their request id was already seen


def unfetched(directory: Path) -> list[str]:
    """Partitions (and windows of the earlier layout) DVC tracks that are not in the workspace
    (`pipeline.windows.unfetched`, the owner of the layout)."""
    return windows_unfetched(directory)


def read_files(paths: Sequence[Path | BinaryIO]) -> list[pd.DataFrame]:
    import pandas as pd

    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path))
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet window: {exc}") from exc
    return frames


def pool(frames: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, int]:
    """Every row of `frames`, normalised and in time order, with each row's frame (by index in
    a helper column), and how many rows with an already seen request id were dropped."""
    import pandas as pd

    if not frames:
        return pd.DataFrame(), 0
    frames = [frame.assign(**{_FILE: index}) for index, frame in enumerate(frames)]
    merged = normalise(pd.concat(frames, ignore_index=True))
    duplicates = 0
    ids = merged[REQUEST_ID]
    if len(merged) and ids.notna().all():
        repeated = ids.duplicated(keep="first").to_numpy()
        duplicates = int(repeated.sum())
        if duplicates:
            merged = merged.loc[~repeated].reset_index(drop=True)
    return merged, duplicates


def cut(frame: pd.DataFrame, spec: WindowSpec) -> list[pd.DataFrame]:
    """Consecutive windows of a time-ordered frame, as declared by `spec`."""
    if len(frame) == 0:
        return []
    if spec.by == "rows":
        return [
            frame.iloc[start : start + spec.rows].reset_index(drop=True)
            for start in range(0, len(frame), spec.rows)
        ]
    seconds = frame[TIME].astype("datetime64[ns, UTC]").astype("int64").to_numpy() // 10**9
    bucket = np.floor_divide(seconds, spec.span_seconds)
    bounds = np.flatnonzero(np.diff(bucket)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(frame)]))
    return [frame.iloc[s:e].reset_index(drop=True) for s, e in zip(starts, ends, strict=True)]


# ---------------------------------------------------------------------------- incremental plan
# A source's traffic is cut without parsing a file whose result is already kept: each file is
# summarised once (rows, first and last time, line) under the digest of its bytes, files whose
# time ranges overlap (or touch) form a *cluster* that is pooled as one (its repeated request
# ids dropped, its rows sorted), clusters never overlap, so a line's pooled traffic is its
# clusters' rows one after the other, and a monitoring window is named by the slices of the
# clusters it takes (`WindowPlan.key`): the same files, cut the same way, give the same key
# without being read. Only the clusters of a window whose result is not kept are read.


@dataclass(frozen=True)
class FileInfo:
    """What planning needs of one window file, kept under the digest of its bytes."""

    name: str
    window: Window | None  # where to read it (loose or packed); None: given in memory
    digest: str
    rows: int
    first: int | None  # first and last time, ns since the epoch (None: no rows)
    last: int | None
    line: str  # the line of releases: feature columns and prediction kind
    labelled: Mapping[str, int]  # labelled rows per release that scored them (maintenance)


@dataclass(frozen=True)
class Cluster:
    """Files of one line whose time ranges overlap, pooled as one, with what pooling found."""

    files: tuple[FileInfo, ...]  # in name order (the order they are pooled in)
    rows: int  # after repeated request ids are dropped
    duplicates: int
    buckets: tuple[tuple[int, int], ...]  # by: time - (bucket, rows) of every non-empty bucket

    @property
    def first(self) -> int:
        return min(f.first for f in self.files if f.first is not None)


@dataclass(frozen=True)
class WindowPlan:
    """One monitoring window before it is read: its source, the slices of clusters it takes
    (`(cluster, start, stop)` rows for by: rows, `(cluster, bucket, 0)` for by: time), the
    duplicates reported on it, and the key its rows are kept under."""

    source: str
    clusters: tuple[Cluster, ...]
    slices: tuple[tuple[int, int, int], ...]
    duplicates: int
    key: str


def file_info(name: str, window: Window | None, digest: str, frame: pd.DataFrame) -> FileInfo:
    """Summarise a window file read as `frame` (raises DataError as pooling would)."""
    import pandas as pd

    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:  # as `normalise` says it when the file is pooled
        raise DataError(f"a production window needs the columns {', '.join(missing)}")
    stamps = pd.to_datetime(frame[TIME], utc=True).astype("datetime64[ns, UTC]")
    times = stamps.astype("int64").to_numpy()
    labelled: dict[str, int] = {}
    if LABEL in frame.columns and RELEASE in frame.columns:
        scored = frame.loc[frame[LABEL].notna() & frame[RELEASE].notna(), RELEASE]
        labelled = {str(k): int(v) for k, v in sorted(scored.astype(str).value_counts().items())}
    return FileInfo(
        name=name,
        window=window,
        digest=digest,
        rows=len(frame),
        first=int(times.min()) if len(times) else None,
        last=int(times.max()) if len(times) else None,
        line=_line_key(frame),
        labelled=labelled,
    )


def _line_key(frame: pd.DataFrame) -> str:
    """Feature columns and prediction kind: windows of different lines are never pooled."""
    import pandas as pd

    features = sorted(str(c) for c in frame.columns if c not in RESERVED)
    predictions = frame[PREDICTION] if PREDICTION in frame.columns else pd.Series([])
    numeric = bool(pd.api.types.is_numeric_dtype(predictions.dtype)) and len(predictions) > 0
    return json.dumps([features, numeric])


def clusters_of(files: Sequence[FileInfo]) -> list[list[FileInfo]]:
    """Files of one line grouped by overlapping (or touching) time ranges, oldest first; files
    without rows contribute nothing and are left out."""
    timed = sorted((f for f in files if f.first is not None), key=lambda f: (f.first, f.name))
    groups: list[list[FileInfo]] = []
    last = None
    for info in timed:
        assert info.first is not None and info.last is not None
        if groups and last is not None and info.first <= last:
            groups[-1].append(info)
            last = max(last, info.last)
        else:
            groups.append([info])
            last = info.last
    return [sorted(g, key=lambda f: f.name) for g in groups]


def cluster_key(files: Sequence[FileInfo], spec: WindowSpec) -> str:
    return _digest(["cluster", [[f.name, f.digest] for f in files], _cut_of(spec)])


def _cut_of(spec: WindowSpec) -> list[object]:
    return ["rows", spec.rows] if spec.by == "rows" else ["time", spec.span_seconds]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def pooled_cluster(
    files: Sequence[FileInfo], frames: Sequence[pd.DataFrame], spec: WindowSpec
) -> tuple[pd.DataFrame, Cluster]:
    """A cluster's rows pooled (with the helper column naming each row's file by index) and
    what planning keeps of it."""
    frame, duplicates = pool(frames)
    buckets: tuple[tuple[int, int], ...] = ()
    if spec.by == "time" and len(frame):
        values, numbers = np.unique(_buckets(frame, spec), return_counts=True)
        buckets = tuple((int(b), int(n)) for b, n in zip(values, numbers, strict=True))
    return frame, Cluster(tuple(files), len(frame), duplicates, buckets)


def _buckets(frame: pd.DataFrame, spec: WindowSpec) -> np.ndarray:
    seconds = frame[TIME].astype("datetime64[ns, UTC]").astype("int64").to_numpy() // 10**9
    return np.floor_divide(seconds, spec.span_seconds)


def plan(source: str, clusters: Sequence[Cluster], spec: WindowSpec) -> list[WindowPlan]:
    """The windows of one line's clusters (time-ordered, disjoint), as declared by `spec`."""
    slices: list[list[tuple[int, int, int]]] = []
    if spec.by == "rows":
        total = sum(c.rows for c in clusters)
        offsets = np.cumsum([0, *[c.rows for c in clusters]]).tolist()
        first = 0  # the clusters before it end before this window starts (windows go forward)
        for start in range(0, total, spec.rows):
            stop = min(start + spec.rows, total)
            while offsets[first + 1] <= start:
                first += 1
            parts = []
            index = first  # only the clusters this window overlaps: linear, not windows x clusters
            while index < len(clusters) and offsets[index] < stop:
                lo, hi = max(start, offsets[index]), min(stop, offsets[index + 1])
                if lo < hi:
                    parts.append((index, lo - offsets[index], hi - offsets[index]))
                index += 1
            slices.append(parts)
    else:
        by_bucket: dict[int, list[tuple[int, int, int]]] = {}
        for index, cluster in enumerate(clusters):
            for bucket, _ in cluster.buckets:
                by_bucket.setdefault(bucket, []).append((index, bucket, 0))
        slices = [by_bucket[b] for b in sorted(by_bucket)]
    out = []
    for parts in slices:
        used = sorted({index for index, _, _ in parts})
        firsts = {  # clusters whose first row is in this window: it reports their duplicates
            index
            for index, lo, _ in parts
            if (lo == 0 if spec.by == "rows" else clusters[index].buckets[0][0] == lo)
        }
        key = _digest(
            [
                "window",
                source,
                _cut_of(spec),
                [
                    [[[f.name, f.digest] for f in clusters[index].files], lo, hi]
                    for index, lo, hi in parts
                ],
            ]
        )
        mine = tuple(clusters[i] for i in used)
        local = tuple((used.index(index), lo, hi) for index, lo, hi in parts)
        duplicates = sum(clusters[i].duplicates for i in firsts)
        out.append(WindowPlan(source, mine, local, duplicates, key))
    return out


def materialise(
    window: WindowPlan, pooled: Sequence[pd.DataFrame], spec: WindowSpec
) -> MonitorWindow:
    """The window's rows, from its clusters' pooled frames (in `window.clusters` order)."""
    import pandas as pd

    parts = []
    names: list[str] = []
    sizes: list[int] = []
    for index, lo, hi in window.slices:
        frame = pooled[index]
        rows_mode = spec.by == "rows"
        part = frame.iloc[lo:hi] if rows_mode else frame.loc[_buckets(frame, spec) == lo]
        files = window.clusters[index].files
        part = part.assign(**{_FILE: part[_FILE].to_numpy() + len(names)})
        names += [f.name for f in files]
        sizes += [f.rows for f in files]
        parts.append(part)
    rows_with_file = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    rows_with_file = rows_with_file.reset_index(drop=True)
    indices = sorted(set(rows_with_file[_FILE].tolist()))
    rows = rows_with_file.drop(columns=[_FILE])
    whole_file = len(indices) == 1 and len(rows) == sizes[indices[0]]
    name = Path(names[indices[0]]).name
    return MonitorWindow(
        id=Path(name).stem if whole_file and is_window_name(name) else window_id(rows),
        source=window.source,
        frame=rows,
        files=tuple(sorted(names[i] for i in indices)),
        duplicates=window.duplicates,
    )


# ------------------------------------------------------------------------------------ surveying
class Kept(Protocol):
    """Where summaries of files and clusters are kept between runs (`pipeline.monitor.kept`)."""

    def get(self, kind: str, key: str, parts: tuple[str, ...] = ...) -> dict[str, Any] | None: ...

    def put(
        self, kind: str, key: str, value: Mapping[str, Any], parts: tuple[str, ...] = ...
    ) -> None: ...

    def keep(self, kind: str, key: str, part: str) -> None: ...


class _Nothing:
    def get(self, kind: str, key: str, parts: tuple[str, ...] = ()) -> dict[str, Any] | None:
        return None

    def put(
        self, kind: str, key: str, value: Mapping[str, Any], parts: tuple[str, ...] = ()
    ) -> None:
        return None

    def keep(self, kind: str, key: str, part: str) -> None:
        return None


@dataclass
class Traffic:
    """Every monitoring window of the sources, planned; rows are read only when asked for."""

    plans: list[WindowPlan]
    spec: WindowSpec
    pooled: dict[int, pd.DataFrame]  # id(cluster) -> its pooled rows, once read
    newest: dict[str, str] = field(default_factory=dict)  # source -> its newest window's id

    def labelled_by(self, release: str) -> list[MonitorWindow]:
        """The windows that may hold labelled rows scored by `release` (a file of theirs has
        some), ordered by (id, source) as `collect` orders them: the others hold none, so
        maintenance reads the live release's traffic, not the whole history."""
        wanted = [
            plan
            for plan in self.plans
            if any(f.labelled.get(release) for c in plan.clusters for f in c.files)
        ]
        return sorted(self.read(wanted), key=lambda w: (w.id, w.source))

    def read(self, wanted: Sequence[WindowPlan]) -> list[MonitorWindow]:
        """The windows of `wanted`, reading each cluster they need once."""
        out = []
        for window in wanted:
            frames = [self._pooled(cluster) for cluster in window.clusters]
            out.append(materialise(window, frames, self.spec))
        return out

    def _pooled(self, cluster: Cluster) -> pd.DataFrame:
        if id(cluster) not in self.pooled:
            stored = [f.window for f in cluster.files]
            assert all(w is not None for w in stored)
            frame, _ = pool(read_files([w.source() for w in stored if w is not None]))
            self.pooled[id(cluster)] = frame
        return self.pooled[id(cluster)]


def _info_of(window: Window, digest: str, found: Mapping[str, Any]) -> FileInfo:
    """A file's summary as kept (`survey`)."""
    return FileInfo(
        window.name,
        window,
        digest,
        int(found["rows"]),
        found["first"],
        found["last"],
        str(found["line"]),
        {str(k): int(v) for k, v in found["labelled"].items()},
    )


def survey(
    directories: Mapping[str, Path],
    spec: WindowSpec,
    also: Mapping[str, Iterable[str]] | None = None,
    kept: Kept | None = None,
) -> Traffic:
    """Plan every monitoring window of every source directory (see `collect` for the errors).

    A file is parsed only when its summary (under the digest of its bytes) is not `kept`, a
    cluster pooled only when its summary is not: with everything kept, the cost is reading
    each file's bytes to digest them, never parsing them."""
    import io as _io

    import pandas as pd

    kept = kept or _Nothing()
    plans: list[WindowPlan] = []
    pooled: dict[int, pd.DataFrame] = {}
    newest_of: dict[str, str] = {}
    for source, directory in directories.items():
        windows = list_windows(directory, also=(also or {}).get(source, ()))
        missing = unfetched(directory)
        if missing:
            raise DataError(
                f"{directory}: {len(missing)} tracked window(s) not in the workspace: "
                + ", ".join(missing[:5]),
                hint="run `dvc pull` (or `dvc checkout`) before monitoring",
            )
        infos: list[FileInfo] = []
        frames: dict[str, pd.DataFrame] = {}
        newest = windows[-1].id if windows else None  # list_windows: oldest first
        if newest is not None:
            newest_of[source] = newest
        # A pack's members are summarised together, under the digest of the pack's bytes: a
        # run reads and digests a closed day's or month's pack in one pass and decodes one
        # entry for it, instead of reading, digesting and decoding every member's.
        packs: dict[Path, dict[str, Any] | None] = {}
        summarised: dict[Path, dict[str, Any]] = {}
        for window in windows:
            part = parts_of(window.name, newest)
            pack = None
            if window.member is not None:
                if window.path not in packs:
                    pack_digest = hashlib.sha256(window.path.read_bytes()).hexdigest()
                    packs[window.path] = kept.get("packs", pack_digest, part) or None
                    summarised[window.path] = {"digest": pack_digest, "part": part, "files": {}}
                pack = packs[window.path]
            found = None if pack is None else pack.get(window.name)
            if found is not None:
                infos.append(_info_of(window, str(found["digest"]), found))
                # its own summary stays kept, unread: a new pack of the same member (the
                # month's, when it closes) then costs a decode per member, not a parse
                kept.keep("files", str(found["digest"]), part[0])
                continue
            raw = window.data()  # loose or packed (pipeline.windows owns the layout)
            digest = hashlib.sha256(raw).hexdigest()
            found = kept.get("files", digest, part)
            if found is None:
                try:
                    frame = pd.read_parquet(_io.BytesIO(raw))
                except Exception as exc:
                    where = window.path if window.member is None else f"{window.path}:{window.name}"
                    raise DataError(f"{where}: not a readable Parquet window: {exc}") from exc
                info = file_info(window.name, window, digest, frame)
                frames[window.name] = frame
                kept.put(
                    "files",
                    digest,
                    {
                        "rows": info.rows,
                        "first": info.first,
                        "last": info.last,
                        "line": info.line,
                        "labelled": dict(info.labelled),
                    },
                    part,
                )
            else:
                info = _info_of(window, digest, found)
            infos.append(info)
            if window.member is not None:
                summarised[window.path]["files"][window.name] = {
                    "digest": digest,
                    "rows": info.rows,
                    "first": info.first,
                    "last": info.last,
                    "line": info.line,
                    "labelled": dict(info.labelled),
                }
        for path, found_pack in packs.items():
            if found_pack is None:  # every member was summarised above
                entry = summarised[path]
                kept.put("packs", entry["digest"], entry["files"], entry["part"])
        for line in sorted({i.line for i in infos}):
            clusters = []
            for members in clusters_of([i for i in infos if i.line == line]):
                key = cluster_key(members, spec)
                part = parts_of(members[0].name, newest)
                summary = kept.get("clusters", key, part)
                if summary is None:
                    got = [
                        frames[m.name] if m.name in frames else m.window.read()  # type: ignore[union-attr]
                        for m in members
                    ]
                    frame, cluster = pooled_cluster(members, got, spec)
                    pooled[id(cluster)] = frame
                    kept.put(
                        "clusters",
                        key,
                        {
                            "rows": cluster.rows,
                            "duplicates": cluster.duplicates,
                            "buckets": [list(b) for b in cluster.buckets],
                        },
                        part,
                    )
                else:
                    cluster = Cluster(
                        tuple(members),
                        int(summary["rows"]),
                        int(summary["duplicates"]),
                        tuple((int(b), int(n)) for b, n in summary["buckets"]),
                    )
                clusters.append(cluster)
            plans += plan(source, clusters, spec)
    return Traffic(plans, spec, pooled, newest_of)


def windows_of(
    source: str, frames: Sequence[pd.DataFrame], names: Sequence[str], spec: WindowSpec
) -> list[MonitorWindow]:
    """The monitoring windows of one source stream (its files' frames and names), oldest first.

    Files of different lines of releases (other feature columns, or predictions of another
    kind: labels of a classifier, numbers of a regressor) are pooled and cut separately: after
    a new dataset is selected, `data/production/` holds both lines' traffic, and one window
    must never mix them (monitoring then judges one line and lists the other as not judged).
    The same rules as `survey`, in memory (`mlops monitor --input`)."""
    infos = [file_info(n, None, "", f) for n, f in zip(names, frames, strict=True)]
    by_name = dict(zip(names, frames, strict=True))
    plans: list[WindowPlan] = []
    pooled: dict[int, pd.DataFrame] = {}
    for line in sorted({i.line for i in infos}):
        clusters = []
        for members in clusters_of([i for i in infos if i.line == line]):
            frame, cluster = pooled_cluster(members, [by_name[m.name] for m in members], spec)
            pooled[id(cluster)] = frame
            clusters.append(cluster)
        plans += plan(source, clusters, spec)
    windows = Traffic(plans, spec, pooled).read(plans)
    return sorted(windows, key=lambda w: w.id)


def collect(
    directories: Mapping[str, Path],
    spec: WindowSpec,
    also: Mapping[str, Iterable[str]] | None = None,
    kept: Kept | None = None,
) -> list[MonitorWindow]:
    """Every monitoring window of every source directory, ordered by id (time, then content).

    Raises DataError for a file in a directory that is not a window (`also` names a source's
    other files, e.g. the simulator's manifest) and for a tracked window that was not fetched
    (`dvc pull`): monitoring part of the traffic without saying so would be worse than stopping.
    """
    traffic = survey(directories, spec, also, kept)
    return sorted(traffic.read(traffic.plans), key=lambda w: (w.id, w.source))
