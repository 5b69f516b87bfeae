"""Append-only JSON-lines logs (predictions, feedback), written by one background thread and
rotated into immutable files.

Layout of a log directory (one per target, `serve.log.dir`)::

    predictions.jsonl                the current file, appended to
    predictions.00000001.jsonl       rotated files: complete, never written again; the number
    predictions.00000002.jsonl       grows, so names sort in write order; the oldest beyond
                                     `keep` are deleted
    feedback.jsonl, feedback.*.jsonl the same for feedback

Privacy: the directory is created with mode 700 and every log file is mode 600 (files left
with a wider mode by an older version are narrowed at start). With `max_age_days`, a file whose
newest entry is older than that is deleted, at start, on every rotation and every minute; the
current file is rotated once its first entry is a day old (or `max_age_days`, if shorter), so
no entry outlives `max_age_days` by more than a day. Entry times, not file times, decide (a
copied file keeps its age). Personal columns are redacted before entries are queued (see
`pipeline.deploy.service.redact`), so no raw value reaches these files at all.

Why a thread: a request must not wait for the disk. The event loop (or the model thread) puts
entries on a queue and the writer serialises, writes and flushes them in batches.

Crash semantics (documented contract, relied upon by `mlops logs snapshot`):

* Entries reach the OS (write + flush) within milliseconds of being queued. A killed process
  loses only the entries still in the queue (the in-flight buffer, typically less than one
  micro-batch); what was written survives a process crash. The writer fsyncs at most once a
  second and on rotation and shutdown, so a power loss may lose about the last second.
* A crash can leave a partial last line; the writer cuts it off when it reopens the file, and
  readers ignore a last line without its newline.
* A graceful shutdown (SIGTERM/SIGINT, lifespan end) drains the queue, fsyncs and closes: no
  entry is lost.
* Entries are written in the order they were queued; the service queues predictions in the order
  of their timestamps, so every file is sorted by time, and everything up to the last complete
  line of the current file is final. This is what makes snapshots safe while the service writes.
* Nothing is ever dropped: when the disk fails the writer retries, the backlog grows, and the
  service answers 503 once the backlog passes its bound (`backlog` says how far behind it is).
* The writer never dies and never fails silently. Every entry can be encoded (text that is not
  valid Unicode is written escaped; an entry that cannot be encoded at all is replaced by a
  line saying so, with its request id); any failure of a write, a rotation or a bug is logged,
  recorded in `failure` (which makes `/health` unhealthy) and retried with backoff until it
  succeeds, the unwritten batch kept. A write retried after a partial failure may repeat whole
  lines already written; readers deduplicate by request id. A writer thread that is gone anyway
  is restarted by `ensure_running` (the service calls it on every /health and /predict).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

LOG = logging.getLogger("mlops.serve")
SUFFIX = ".jsonl"
PREDICTIONS = "predictions"
FEEDBACK = "feedback"
_STOP = object()
_DRAIN = 4096  # entries written per batch at most
FSYNC_EVERY_S = 1.0
TICK_S = 1.0  # an idle writer wakes this often (fsync, retention)
EXPIRE_EVERY_S = 60.0  # retention by age is checked this often (and at start and rotation)
MAX_FILE_SPAN_S = 86_400.0  # with max_age_days, the current file rotates once this old
FILE_MODE, DIR_MODE = 0o600, 0o700
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 2.0  # backoff of a failing writer


def current_path(directory: Path, stem: str) -> Path:
    return directory / f"{stem}{SUFFIX}"


def rotated_paths(directory: Path, stem: str) -> list[Path]:
    """Rotated (complete) files of one log, oldest first."""
    pattern = re.compile(rf"{re.escape(stem)}\.(\d{{8,}}){re.escape(SUFFIX)}")
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def log_paths(directory: Path, stem: str, *, include_current: bool = True) -> list[Path]:
    """Every file of one log in write order: rotated files, then (optionally) the current one."""
    paths = rotated_paths(directory, stem)
    current = current_path(directory, stem)
    if include_current and current.is_file():
        paths.append(current)
    return paths


def iter_lines(path: Path, handle: IO[bytes] | None = None) -> Iterator[str]:
    """Complete lines only: a last line without its newline is still being written (or was cut
    off by a crash) and is not returned. `handle`: `path` opened earlier, by a reader that must
    read the file it listed even if the writer has rotated it since (the caller closes it)."""
    with contextlib.nullcontext(handle) if handle is not None else path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                yield line


def iter_entries(path: Path, handle: IO[bytes] | None = None) -> Iterator[dict[str, Any]]:
    """Parsed entries of one file (`handle`: see `iter_lines`); a corrupt line (never written
    by the service) is skipped with a warning rather than failing a whole snapshot."""
    for number, line in enumerate(iter_lines(path, handle), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            LOG.warning("%s:%d: not a JSON line; skipped", path, number)
            continue
        if isinstance(entry, dict):
            yield entry


def last_entry(path: Path, window: int = 1 << 16) -> dict[str, Any] | None:
    """The last complete entry of a file, read from its end."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - window))
        tail = fh.read()
    lines = tail.split(b"\n")[:-1]  # whatever follows the last newline is incomplete
    for raw in reversed(lines):
        with contextlib.suppress(ValueError):
            entry = json.loads(raw)
            if isinstance(entry, dict):
                return entry
    return None


def entry_time(entry: dict[str, Any] | None) -> float | None:
    """An entry's `time` (as the service writes it: ISO 8601, `Z`) in epoch seconds."""
    text = None if entry is None else entry.get("time")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def first_entry(path: Path) -> dict[str, Any] | None:
    for entry in iter_entries(path):
        return entry
    return None


def _after_last_newline(fh: IO[bytes], size: int, chunk: int = 1 << 16) -> int:
    """Offset just after the last newline of an open file (0 when it has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        cut = fh.read(pos - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def _encode(entry: dict[str, Any]) -> bytes:
    """One entry as a JSON line's bytes (without the newline). Never raises: a NaN (a missing
    nullable number) becomes null, text that is not valid Unicode is escaped (`\\ud800`: still
    valid JSON and ASCII), and an entry that cannot be encoded at all becomes a line that says
    so and keeps its request id, so one bad entry can never stop the log."""
    try:
        try:
            text = json.dumps(entry, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        except ValueError:  # a NaN: JSON has null for it
            text = json.dumps(
                _no_nan(entry), separators=(",", ":"), allow_nan=False, ensure_ascii=False
            )
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: keep it, escaped
            return json.dumps(_no_nan(entry), separators=(",", ":"), allow_nan=False).encode()
    except Exception as exc:  # noqa: BLE001 - the writer must survive any entry
        LOG.error("log entry could not be encoded (%s); a placeholder line is written", exc)
        rid = entry.get("request_id") if isinstance(entry, dict) else None
        placeholder = {
            "request_id": rid if isinstance(rid, str) else None,
            "error": f"entry could not be encoded: {type(exc).__name__}",
        }
        return json.dumps(placeholder, separators=(",", ":"), ensure_ascii=True).encode()


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


class RequestIndex:
    """Request ids of the predictions still in the log, so feedback for an unknown id is
    reported instead of silently accepted. Ids are grouped by file, so the ids of a deleted
    (rotated-out) file are forgotten with it and memory stays bounded by `keep`; ids scored but
    not yet written are `pending`, so feedback may follow its prediction at once.

    Sets are only ever mutated by single add/discard/assignment operations, which are atomic
    under the GIL: the model thread adds pending ids, the writer thread moves them to files, the
    event loop reads.
    """

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.files: dict[str, set[str]] = {}

    def __contains__(self, request_id: object) -> bool:
        if request_id in self.pending:
            return True
        return any(request_id in ids for ids in list(self.files.values()))

    def __len__(self) -> int:
        return sum(len(ids) for ids in list(self.files.values()))

    def add_pending(self, ids: Sequence[str]) -> None:
        self.pending.update(ids)

    def written(self, name: str, entries: Sequence[dict[str, Any]]) -> None:
        ids = self.files.setdefault(name, set())
        for entry in entries:
            rid = entry.get("request_id")
            if isinstance(rid, str):
                ids.add(rid)
                self.pending.discard(rid)

    def renamed(self, old: str, new: str) -> None:
        self.files[new] = self.files.pop(old, set())

    def deleted(self, name: str) -> None:
        self.files.pop(name, None)

    def load(self, directory: Path, stem: str) -> int:
        """Index the files already on disk (a restart must still accept feedback for them)."""
        prefix = '{"request_id":"'
        for path in log_paths(directory, stem):
            ids = self.files.setdefault(path.name, set())
            for line in iter_lines(path):
                if line.startswith(prefix):
                    end = line.find('"', len(prefix))
                    if end > 0:
                        ids.add(line[len(prefix) : end])
        return len(self)


class JsonLinesLog:
    """One rotated JSON-lines log with its writer thread (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        stem: str,
        *,
        rotate_bytes: int,
        keep: int,
        index: RequestIndex | None = None,
        max_age_days: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.index = index
        self.max_age_s = None if max_age_days is None else max_age_days * 86_400.0
        self.clock = clock  # wall-clock epoch seconds: retention by age (the service only)
        self.errors = 0  # failures so far (each retried)
        self.failure: str | None = None  # the failure being retried now; None when writing
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Backlog = queued - written; each counter has a single writer thread (one producer
        # per log: the model thread for predictions, the event loop for feedback), so plain
        # integers are exact without a lock.
        self._queued = 0
        self._written = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._carry: list[dict[str, Any]] = []  # taken off the queue, not yet written
        self._stopping = False  # the stop marker was taken off the queue
        self._fh: IO[bytes] | None = None
        self._size = 0
        self._last_fsync = 0.0
        self._dirty = False
        self._first_time: float | None = None  # of the current file's first entry
        self._newest: dict[str, float] = {}  # rotated file name -> its newest entry's time
        self._last_expire = 0.0

    # ----------------------------------------------------------------------------- producers
    def append(self, entry: dict[str, Any]) -> None:
        self._queued += 1
        self._queue.put(entry)

    def extend(self, entries: Sequence[dict[str, Any]]) -> None:
        if entries:
            self._queued += len(entries)
            self._queue.put(list(entries))

    @property
    def backlog(self) -> int:
        return max(0, self._queued - self._written)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def problem(self) -> str | None:
        """Why this log is not being written right now (None when it is)."""
        if self._thread is not None and not self._thread.is_alive() and not self._closing:
            return f"{self.stem} log: the writer thread is not running"
        return self.failure

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Open the current file and start the writer. Narrowing old files' modes and
        retention by age are tried here first; a failure of either is reported like any
        writer failure (and retried by the writer), it does not stop the service."""
        self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self._open()
        try:
            for path in log_paths(self.directory, self.stem):
                if path.stat().st_mode & 0o777 != FILE_MODE:
                    path.chmod(FILE_MODE)
            self._expire()
        except OSError as exc:
            self._fail(exc)
        self._spawn()

    def _spawn(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"mlops-log-{self.stem}", daemon=True
        )
        self._thread.start()

    def ensure_running(self) -> None:
        """Restart a writer thread that is gone (it catches everything, so this is the last
        line of defence, not the plan): its queue and unwritten batch are kept."""
        thread = self._thread
        if thread is not None and not thread.is_alive() and not self._closing:
            self.errors += 1
            LOG.error("%s log: the writer thread had stopped; restarted", self.stem)
            self._spawn()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, fsync, close. Idempotent. A writer still failing after
        `timeout` is left to keep trying until the process exits, and what it could not write
        is logged as an error (never dropped silently)."""
        if self._thread is None:
            return
        self.ensure_running()
        self._closing = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            LOG.error(
                "%s log: %d entries not yet written at shutdown (%s)",
                self.stem,
                self.backlog,
                self.failure or "the writer is still busy",
            )
            self._thread = None
            return
        self._thread = None
        if self._fh is not None:
            self._sync()
            self._fh.close()
            self._fh = None

    # --------------------------------------------------------------------------------- writer
    def _open(self) -> None:
        path = current_path(self.directory, self.stem)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # an existing file keeps its mode through os.open
            fh = os.fdopen(fd, "a+b")
        except BaseException:
            os.close(fd)
            raise
        size = fh.seek(0, os.SEEK_END)
        end = _after_last_newline(fh, size)
        if end != size:
            # A crash cut the last line: drop the fragment so the next entry starts on a line
            # of its own (the fragment's entry was lost with the crash anyway).
            fh.truncate(end)
            size = fh.seek(0, os.SEEK_END)
            LOG.warning("%s: cut an incomplete last line left by a crash", path)
        self._fh = fh
        self._size = size
        self._first_time = None
        if size:
            first = entry_time(first_entry(path))
            self._first_time = first if first is not None else path.stat().st_mtime

    def _run(self) -> None:
        """Write batches until the stop marker; every failure is recorded and retried."""
        delay = RETRY_FIRST_S
        while True:
            try:
                if self._step():
                    return
                delay = RETRY_FIRST_S
            except Exception as exc:  # noqa: BLE001 - never die: record, back off, retry
                self._fail(exc)
                time.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)

    def _step(self) -> bool:
        """One batch (or one idle tick); True once everything before the stop marker is
        written. Raises on failure, keeping the batch in `_carry` for the retry."""
        if not self._carry and not self._stopping:
            try:
                item = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                self._tick()
                self._recovered()
                return False
            self._take(item)
        while len(self._carry) < _DRAIN:
            try:
                self._take(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._carry:
            count = len(self._carry)
            self._write(self._carry)
            self._carry = []
            try:
                self._after_write()
            finally:
                self._written += count  # last: a zero backlog means written *and* rotated
        self._recovered()
        if self._stopping and not self._carry:
            return self._queue.empty() or self._step()
        if self._dirty and time.monotonic() - self._last_fsync >= FSYNC_EVERY_S:
            self._sync()
        return False

    def _take(self, item: Any) -> None:
        if item is _STOP:
            self._stopping = True
        else:
            self._carry.extend(item if isinstance(item, list) else [item])

    def _tick(self) -> None:
        """Idle work: a rotation that failed after its write is retried; fsync."""
        self._after_write()
        if self._dirty:
            self._sync()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        data = b"".join(_encode(entry) + b"\n" for entry in batch)
        self._write_bytes(data)
        if self._first_time is None:
            self._first_time = entry_time(batch[0]) or self.clock()
        self._size += len(data)
        self._dirty = True
        if self.index is not None:
            self.index.written(current_path(self.directory, self.stem).name, batch)

    def _write_bytes(self, data: bytes) -> None:
        """Append and flush; on failure the file is closed, so the retry reopens it and cuts
        whatever part of a line the failed write left."""
        try:
            if self._fh is None:
                self._open()
            assert self._fh is not None
            self._fh.write(data)
            self._fh.flush()
        except BaseException:
            fh, self._fh = self._fh, None
            if fh is not None:
                with contextlib.suppress(OSError, ValueError):
                    fh.close()
            raise

    def _after_write(self) -> None:
        rotate = self._size >= self.rotate_bytes
        if rotate:
            self._rotate()
        if self.max_age_s is not None and (
            rotate or self.clock() - self._last_expire >= EXPIRE_EVERY_S
        ):
            self._expire()

    def _expire(self) -> None:
        """Retention by age: rotate the current file once its first entry is old enough, delete
        rotated files whose newest entry is older than `max_age_s`."""
        if self.max_age_s is None:
            return
        now = self.clock()
        self._last_expire = now
        span = min(MAX_FILE_SPAN_S, self.max_age_s)
        if self._size and self._first_time is not None and now - self._first_time >= span:
            self._rotate()
        for path in rotated_paths(self.directory, self.stem):
            newest = self._newest.get(path.name)
            if newest is None:
                newest = entry_time(last_entry(path))
                if newest is None:
                    newest = path.stat().st_mtime
                self._newest[path.name] = newest
            if now - newest > self.max_age_s:
                path.unlink(missing_ok=True)
                self._newest.pop(path.name, None)
                if self.index is not None:
                    self.index.deleted(path.name)
                LOG.info("%s: deleted (older than max_age_days)", path)

    def _fail(self, exc: BaseException) -> None:
        self.errors += 1
        self._last_expire = float("-inf")  # the next tick retries retention too
        first = self.failure is None
        self.failure = f"{self.stem} log: {type(exc).__name__}: {exc} (retrying)"
        if first:
            LOG.error("%s log: writing failed; retrying until it works", self.stem, exc_info=exc)
        else:
            LOG.error("%s", self.failure)

    def _recovered(self) -> None:
        if self.failure is not None:
            LOG.warning("%s log: writing again after %s", self.stem, self.failure)
            self.failure = None

    def _sync(self) -> None:
        if self._fh is not None and self._dirty:
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())
            self._dirty = False
        self._last_fsync = time.monotonic()

    def _rotate(self) -> None:
        """Close the current file and give it its final, never reused name."""
        if self._fh is None:
            self._open()
        assert self._fh is not None
        self._sync()
        self._fh.close()
        self._fh = None
        rotated = rotated_paths(self.directory, self.stem)
        number = 1 + (int(rotated[-1].name.split(".")[-2]) if rotated else 0)
        current = current_path(self.directory, self.stem)
        target = self.directory / f"{self.stem}.{number:08d}{SUFFIX}"
        current.replace(target)
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.index is not None:
            self.index.renamed(current.name, target.name)
        for old in [*rotated, target][: -self.keep] if self.keep else []:
            old.unlink(missing_ok=True)
            self._newest.pop(old.name, None)
            if self.index is not None:
                self.index.deleted(old.name)
            LOG.info("%s: deleted (beyond keep=%d)", old, self.keep)
        self._open()
