"""`mlops logs snapshot`: the prediction log, joined with feedback, cut into production windows.

Idempotent and safe while the service writes, without any state file:

* The **watermark** is the newest (time, request id) already in a window under `out`. Only
  records after it are considered, so running twice writes nothing new, and two runs at once
  write the same (content-addressed) files.
* The log is sorted by time and append-only, and everything up to the last complete line of the
  current file is final (see `predlog`), so reading the current file while the service appends
  is safe: a record not yet written has a later time than every record read. `--rotated-only`
  restricts a snapshot to rotated files anyway.
* Only **complete** windows are written: `rows` records in row mode; in minutes mode a window
  whose end the log has passed (a later record exists). The incomplete rest waits for the next
  run, unless `flush` (e.g. when a target is retired).
* Feedback is joined by request id, the latest label winning. A label that arrives after its
  record's window was written does not change that window (windows are immutable); it stays in
  the feedback log. `label_wait_minutes` holds back records younger (in log time, not wall-clock
  time, so the result is a function of the logs) than that, giving labels time to arrive.

Window columns: the input fields as the service received and checked them (numbers as float,
categories as text, null for missing), the declared pass-through fields (ids) the requests
carried, plus `pipeline.windows.RESERVED`. Columns the dataset marks personal are as the service
logged them (`pipeline.deploy.service.redact`): absent when dropped, hex digests when hashed.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.deploy.service.predlog import (
    FEEDBACK,
    PREDICTIONS,
    current_path,
    iter_entries,
    last_entry,
    log_paths,
)
from pipeline.errors import DataError
from pipeline.windows import (
    FLAGS,
    LABEL,
    PREDICTION,
    RELEASE,
    REQUEST_ID,
    TIME,
    UNKNOWN,
    Window,
    list_windows,
    newest_candidates,
    newest_time,
    sweep_partial_windows,
    write_window,
)

if TYPE_CHECKING:
    import pandas as pd

Key = tuple[str, str]  # (ISO time as the service writes it, request id): sorts in log order
LOG = logging.getLogger("mlops.snapshot")


@dataclass
class SnapshotResult:
    written: list[Window] = field(default_factory=list)  # new files
    existing: list[Window] = field(default_factory=list)  # cut again, already there
    held: int = 0  # records waiting for their window to complete
    labelled: int = 0  # records in new windows that carry a label
    watermark: Key | None = None


def snapshot(
    log_dir: Path,
    out: Path,
    *,
    rows: int | None = None,
    minutes: float | None = None,
    include_current: bool = True,
    flush: bool = False,
    label_wait_minutes: float = 0.0,
) -> SnapshotResult:
    """Write the complete windows after the watermark (see the module docstring)."""
    if (rows is None) == (minutes is None):
        raise ValueError("give exactly one of rows and minutes")
    if not log_dir.is_dir():
        raise DataError(
            f"{log_dir}: no prediction log directory",
            hint="start the service (`mlops serve`) or check deploy.targets.<name>.serve.log.dir",
        )
    sweep_partial_windows(out)  # what a snapshot killed half-way left
    result = SnapshotResult(watermark=watermark(out))
    present = {w.id for w in list_windows(out)}
    cut = _Cut(rows, minutes, flush, label_wait_minutes)
    stream = _Stream(log_dir, result.watermark, include_current)
    labels: dict[str, Any] | None = None
    try:
        for chunk in cut.chunks(stream):
            labels = feedback_labels(log_dir) if labels is None else labels
            _write(chunk, labels, out, present, result)
        result.held = stream.count - cut.taken
        return result
    except _UnorderedError as exc:
        # The log is not in the order the service writes it (a clock stepped back, a time in
        # another format): cut it as a whole, sorted in memory, as the windows must be the
        # same whatever the order. Windows this run wrote from the stream go first.
        LOG.warning("%s: %s; sorting the whole log in memory", log_dir, exc)
        for window in result.written:
            window.path.unlink(missing_ok=True)  # written loose by this run
            present.discard(window.id)
    result = SnapshotResult(watermark=result.watermark)
    records, horizon = _new_records(log_dir, result.watermark, include_current)
    if not records:
        return result
    labels = feedback_labels(log_dir)
    if label_wait_minutes > 0 and not flush:
        cutoff = _iso(_parse(horizon) - timedelta(minutes=label_wait_minutes))
        eligible = [r for r in records if r["time"] <= cutoff]
    else:
        eligible = records
    chunks = (
        _by_rows(eligible, rows, flush)
        if rows is not None
        else _by_minutes(eligible, float(minutes or 0), horizon, flush)
    )
    taken = 0
    for chunk in chunks:
        taken += len(chunk)
        _write(chunk, labels, out, present, result)
    result.held = len(records) - taken
    return result


def _write(
    chunk: Sequence[dict[str, Any]],
    labels: Mapping[str, Any],
    out: Path,
    present: set[str],
    result: SnapshotResult,
) -> None:
    frame = window_frame(chunk, labels)
    window = write_window(frame, out)
    (result.existing if window.id in present else result.written).append(window)
    present.add(window.id)
    result.labelled += int(frame[LABEL].notna().sum())


class _UnorderedError(Exception):
    """The log breaks the order the streaming cut relies on (see `_Stream`)."""


# The service's time format (`_iso`): in it, text order is time order.
_SERVICE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class _Stream:
    """The records after the watermark, deduplicated by request id (the first one read wins),
    in (time, request id) order, read file by file without holding the log in memory; and the
    horizon so far, the newest time read (complete windows end before it).

    The service writes every file sorted by time in one format (`predlog`), so sorting the
    records of one time by request id is the whole sort. A record older than one already
    passed on, or a time in another format, raises `_UnorderedError` (the caller falls back to the
    in-memory sort of `_new_records`); request ids are remembered for the deduplication, as in
    `_new_records`, but not the records."""

    def __init__(self, log_dir: Path, mark: Key | None, include_current: bool) -> None:
        self.log_dir, self.mark, self.include_current = log_dir, mark, include_current
        self.horizon = ""
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        log_dir = self.log_dir
        seen: set[str] = set()
        group: list[dict[str, Any]] = []
        current = current_path(log_dir, PREDICTIONS)
        with contextlib.ExitStack() as stack:
            # Every file opened now: the service may rotate the current file while windows are
            # cut, and its records must still be read (the listed file, under its new name).
            files = [
                (path, stack.enter_context(path.open("rb")))
                for path in log_paths(log_dir, PREDICTIONS, include_current=self.include_current)
            ]
            yield from self._read(files, current, seen, group)
        if not self.include_current and current.is_file():
            first = next(iter_entries(current), None)
            if first is not None and isinstance(first.get("time"), str):
                self.horizon = max(self.horizon, _checked(first["time"], current))
        group.sort(key=_key)
        yield from group

    def _read(
        self,
        files: list[tuple[Path, Any]],
        current: Path,
        seen: set[str],
        group: list[dict[str, Any]],
    ) -> Iterator[dict[str, Any]]:
        mark = self.mark
        for path, handle in files:
            if mark is not None and path != current:
                last = last_entry(path)
                if last is not None and _key(last) <= mark:
                    self.horizon = max(self.horizon, _checked(last.get("time", ""), path))
                    continue  # a whole rotated file already in windows
            for entry in iter_entries(path, handle):
                time = entry.get("time")
                if not isinstance(time, str) or not isinstance(entry.get("inputs"), dict):
                    continue
                _checked(time, path)
                rid = entry.get("request_id")
                if (mark is not None and _key(entry) <= mark) or rid in seen:
                    self.horizon = max(self.horizon, time)
                    continue
                seen.add(str(rid))
                self.count += 1
                if group and time != group[0]["time"]:
                    if time < group[0]["time"]:
                        raise _UnorderedError(f"{path}: time {time} after {group[0]['time']}")
                    group.sort(key=_key)
                    yield from group
                    group.clear()
                group.append(entry)
                self.horizon = max(self.horizon, time)  # after the group it closes


def _checked(time: Any, path: Path) -> str:
    """`time` as text, when it is in the service's format (where text order is time order)."""
    text = str(time)
    if not _SERVICE_TIME.fullmatch(text):
        raise _UnorderedError(f"{path}: time {text!r} is not in the service's format")
    return text


class _Cut:
    """`_by_rows` / `_by_minutes` over the records as they stream, after the label wait: a
    window is cut as soon as it is complete, so only the records of the windows still open
    (and those younger than the label wait) are held. The decisions are the in-memory ones,
    taken once they can no longer change: the horizon only grows."""

    def __init__(
        self, rows: int | None, minutes: float | None, flush: bool, label_wait: float
    ) -> None:
        self.rows, self.flush = rows, flush
        self.width = float(minutes or 0) * 60.0
        self.wait = label_wait if label_wait > 0 and not flush else 0.0
        self.taken = 0

    def _cutoff(self, horizon: str) -> str | None:
        if not horizon:
            return None
        return _iso(_parse(horizon) - timedelta(minutes=self.wait))

    def chunks(self, stream: _Stream) -> Iterator[list[dict[str, Any]]]:
        waiting: deque[dict[str, Any]] = deque()  # sorted; not yet known to be eligible
        open_: list[dict[str, Any]] = []  # the window being filled (rows mode)
        buckets: deque[tuple[int, list[dict[str, Any]]]] = deque()  # minutes mode, in order
        for record in stream:
            waiting.append(record)
            if self.wait:
                cutoff = self._cutoff(stream.horizon)
                if cutoff is None:
                    continue
                while waiting and waiting[0]["time"] <= cutoff:
                    yield from self._add(waiting.popleft(), open_, buckets, stream.horizon)
            else:
                yield from self._add(waiting.popleft(), open_, buckets, stream.horizon)
        if waiting:  # the horizon is final now
            cutoff = self._cutoff(stream.horizon) if self.wait else None
            for record in waiting:
                if cutoff is None or record["time"] <= cutoff:
                    yield from self._add(record, open_, buckets, stream.horizon)
        if self.rows is not None:
            if open_ and self.flush:
                self.taken += len(open_)
                yield open_
            return
        end_of_log = _parse(stream.horizon).timestamp() if buckets else 0.0
        for bucket, chunk in buckets:
            if self.flush or end_of_log >= (bucket + 1) * self.width:
                self.taken += len(chunk)
                yield chunk

    def _add(
        self,
        record: dict[str, Any],
        open_: list[dict[str, Any]],
        buckets: deque[tuple[int, list[dict[str, Any]]]],
        horizon: str,
    ) -> Iterator[list[dict[str, Any]]]:
        if self.rows is not None:
            open_.append(record)
            if len(open_) == self.rows:
                self.taken += len(open_)
                yield list(open_)
                open_.clear()
            return
        bucket = int(_parse(record["time"]).timestamp() // self.width)
        if buckets and buckets[-1][0] == bucket:
            buckets[-1][1].append(record)
        else:
            buckets.append((bucket, [record]))
        # every bucket before the newest is complete: a later record exists
        end_of_log = _parse(horizon).timestamp()
        while len(buckets) > 1 and end_of_log >= (buckets[0][0] + 1) * self.width:
            chunk = buckets.popleft()[1]
            self.taken += len(chunk)
            yield chunk


def watermark(out: Path) -> Key | None:
    """The newest (time, request id) in the windows under `out`.

    Each window's newest time comes from its Parquet footer (the time column's statistics), so
    only the footers are read, and the data of the windows holding the newest time (usually
    one); a window whose footer has no statistics (written by other tools) is read whole. Of a
    sealed pack only the members its comment names as its newest are read
    (`pipeline.windows.newest_candidates`): the footers read are the current day's windows
    and one or two per pack, not one per window ever cut."""
    import pyarrow.parquet as pq

    windows = list_windows(out)
    if not windows:
        return None
    latest: list[tuple[Any, Window]] = []
    for window in newest_candidates(windows):  # a pack names its newest members
        newest = newest_time(window.source())
        if newest is UNKNOWN:
            times = pq.read_table(window.source(), columns=[TIME]).column(TIME)
            newest = max(times.to_pylist()) if len(times) else None
        if newest is not None:
            latest.append((newest, window))
    if not latest:
        return None
    newest = max(t for t, _ in latest)
    ids = [""]
    for t, window in latest:
        if t == newest:
            table = pq.read_table(window.source(), columns=[TIME, REQUEST_ID]).to_pylist()
            ids += [row[REQUEST_ID] or "" for row in table if row[TIME] == newest]
    return _iso(newest), max(ids)


def _new_records(
    log_dir: Path, mark: Key | None, include_current: bool
) -> tuple[list[dict[str, Any]], str]:
    """Records after the watermark in log order, deduplicated by request id; and the horizon,
    the newest time the log shows (complete windows end before it)."""
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    horizon = ""
    for path in log_paths(log_dir, PREDICTIONS, include_current=include_current):
        if mark is not None and path != current_path(log_dir, PREDICTIONS):
            last = last_entry(path)
            if last is not None and _key(last) <= mark:
                horizon = max(horizon, str(last.get("time", "")))
                continue  # a whole rotated file already in windows
        for entry in iter_entries(path):
            if not isinstance(entry.get("time"), str) or not isinstance(entry.get("inputs"), dict):
                continue
            horizon = max(horizon, entry["time"])
            rid = entry.get("request_id")
            if (mark is not None and _key(entry) <= mark) or rid in seen:
                continue
            seen.add(str(rid))
            records.append(entry)
    if not include_current:
        current = current_path(log_dir, PREDICTIONS)
        if current.is_file():
            first = next(iter_entries(current), None)
            if first is not None and isinstance(first.get("time"), str):
                horizon = max(horizon, first["time"])
    records.sort(key=_key)
    return records, horizon


def feedback_labels(log_dir: Path) -> dict[str, Any]:
    """request id -> label, the latest feedback winning (files are in write order)."""
    labels: dict[str, Any] = {}
    for path in log_paths(log_dir, FEEDBACK):
        for entry in iter_entries(path):
            rid = entry.get("request_id")
            if isinstance(rid, str) and "label" in entry:
                labels[rid] = entry["label"]
    return labels


def _by_rows(records: Sequence[dict[str, Any]], rows: int, flush: bool) -> list[list[Any]]:
    chunks = [list(records[i : i + rows]) for i in range(0, len(records), rows)]
    if chunks and len(chunks[-1]) < rows and not flush:
        chunks.pop()
    return chunks


def _by_minutes(
    records: Sequence[dict[str, Any]], minutes: float, horizon: str, flush: bool
) -> list[list[Any]]:
    """Windows aligned to multiples of `minutes` since the epoch (stable from run to run)."""
    width = minutes * 60.0
    end_of_log = _parse(horizon).timestamp()
    buckets: dict[int, list[Any]] = {}
    for record in records:
        buckets.setdefault(int(_parse(record["time"]).timestamp() // width), []).append(record)
    return [
        chunk
        for bucket, chunk in sorted(buckets.items())
        if flush or end_of_log >= (bucket + 1) * width
    ]


def window_frame(records: Sequence[dict[str, Any]], labels: Mapping[str, Any]) -> pd.DataFrame:
    """One window's frame: input columns (numbers as float64, the rest as text/None) and the
    reserved columns."""
    import numpy as np
    import pandas as pd

    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record["inputs"]))
        names.update(dict.fromkeys(_passthrough(record)))
    columns: dict[str, Any] = {}
    for name in names:
        columns[name] = _column([r["inputs"].get(name, _passthrough(r).get(name)) for r in records])
    predictions = [r.get("prediction") for r in records]
    numeric = _numeric(predictions)
    columns[REQUEST_ID] = _objects([str(r["request_id"]) for r in records])
    columns[TIME] = pd.to_datetime([r["time"] for r in records], utc=True, format="ISO8601")
    columns[RELEASE] = _objects([r.get("release") for r in records])
    label_values = [labels.get(str(r["request_id"])) for r in records]
    if numeric:
        columns[PREDICTION] = np.array(predictions, dtype=np.float64)
        columns[LABEL] = np.array(
            [np.nan if v is None else float(v) for v in label_values], dtype=np.float64
        )
    else:
        columns[PREDICTION] = _objects([None if p is None else str(p) for p in predictions])
        columns[LABEL] = _objects([None if v is None else str(v) for v in label_values])
    columns[FLAGS] = _objects([",".join(r.get("flags") or []) or None for r in records])
    return pd.DataFrame(columns)


def _passthrough(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The declared pass-through fields (ids, ...) a record carried: window columns too, so
    labels that arrive by id can be joined to the traffic."""
    extra = record.get("passthrough")
    return extra if isinstance(extra, Mapping) else {}


def _numeric(values: Iterable[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )


def _column(values: list[Any]) -> Any:
    import numpy as np

    if _numeric(values):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return _objects([None if v is None else str(v) for v in values])


def _objects(values: Sequence[Any]) -> Any:
    import pandas as pd

    return pd.Series(list(values), dtype=object)


def _key(entry: Mapping[str, Any]) -> Key:
    return str(entry.get("time", "")), str(entry.get("request_id") or "")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: Any) -> str:
    """The service's time format: microseconds, `Z`."""
    if not isinstance(moment, datetime):
        moment = moment.to_pydatetime()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
