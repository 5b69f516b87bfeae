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
its file. Rows repeated across files (same `__request_id__`) count once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from pipeline.errors import DataError
from pipeline.params import WindowSpec
from pipeline.windows import (
    PREDICTION,
    REQUEST_ID,
    RESERVED,
    SOURCE_FILE,
    TIME,
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


def windows_of(
    source: str, frames: Sequence[pd.DataFrame], names: Sequence[str], spec: WindowSpec
) -> list[MonitorWindow]:
    """The monitoring windows of one source stream (its files' frames and names), oldest first.

    Files of different lines of releases (other feature columns, or predictions of another
    kind: labels of a classifier, numbers of a regressor) are pooled and cut separately: after
    a new dataset is selected, `data/production/` holds both lines' traffic, and one window
    must never mix them (monitoring then judges one line and lists the other as not judged)."""
    out: list[MonitorWindow] = []
    for members in _lines(frames):
        out += _windows(source, [frames[i] for i in members], [names[i] for i in members], spec)
    return sorted(out, key=lambda w: w.id)


def _lines(frames: Sequence[pd.DataFrame]) -> list[list[int]]:
    """Indices of `frames` grouped by line (feature columns and prediction kind), in order."""
    import pandas as pd

    groups: dict[tuple[object, ...], list[int]] = {}
    for index, frame in enumerate(frames):
        features = tuple(sorted(str(c) for c in frame.columns if c not in RESERVED))
        predictions = frame[PREDICTION] if PREDICTION in frame.columns else pd.Series([])
        numeric = bool(pd.api.types.is_numeric_dtype(predictions.dtype)) and len(predictions) > 0
        groups.setdefault((features, numeric), []).append(index)
    return list(groups.values())


def _windows(
    source: str, frames: Sequence[pd.DataFrame], names: Sequence[str], spec: WindowSpec
) -> list[MonitorWindow]:
    frame, duplicates = pool(frames)
    out = []
    for number, part in enumerate(cut(frame, spec)):
        indices = sorted(set(part[_FILE].tolist()))
        rows = part.drop(columns=[_FILE])
        whole_file = len(indices) == 1 and len(rows) == len(frames[indices[0]])
        name = Path(names[indices[0]]).name
        out.append(
            MonitorWindow(
                id=Path(name).stem if whole_file and is_window_name(name) else window_id(rows),
                source=source,
                frame=rows,
                files=tuple(sorted(names[i] for i in indices)),
                duplicates=duplicates if number == 0 else 0,
            )
        )
    return out


def collect(
    directories: Mapping[str, Path],
    spec: WindowSpec,
    also: Mapping[str, Iterable[str]] | None = None,
) -> list[MonitorWindow]:
    """Every monitoring window of every source directory, ordered by id (time, then content).

    Raises DataError for a file in a directory that is not a window (`also` names a source's
    other files, e.g. the simulator's manifest) and for a tracked window that was not fetched
    (`dvc pull`): monitoring part of the traffic without saying so would be worse than stopping.
    """
    found: list[MonitorWindow] = []
    for source, directory in directories.items():
        windows = list_windows(directory, also=(also or {}).get(source, ()))
        missing = unfetched(directory)
        if missing:
            raise DataError(
                f"{directory}: {len(missing)} tracked window(s) not in the workspace: "
                + ", ".join(missing[:5]),
                hint="run `dvc pull` (or `dvc checkout`) before monitoring",
            )
        frames = read_files([w.source() for w in windows])  # loose or packed (pipeline.windows)
        found.extend(windows_of(source, frames, [w.name for w in windows], spec))
    return sorted(found, key=lambda w: (w.id, w.source))
