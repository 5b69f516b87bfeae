"""Append-only JSON-lines logs (predictions, feedback), written by one background thread and
rotated into immutable files.

Layout of a log directory (one per target, `serve.log.dir`)::

    predictions.jsonl                the current file, appended to
    predictions.00000001.jsonl       rotated files: complete, never written again; the number
    predictions.00000002.jsonl       grows, so names sort in write order; the oldest beyond
                                     `keep` are deleted
    feedback.jsonl, feedback.*.jsonl the same for feedback

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

LOG = logging.getLogger("mlops.serve")
SUFFIX = ".jsonl"
PREDICTIONS = "predictions"
FEEDBACK = "feedback"
_STOP = object()
_DRAIN = 4096  # entries written per batch at most
FSYNC_EVERY_S = 1.0


def current_path(directory: Path, stem: str) -> Path:
    return directory / f"{stem}{SUFFIX}"


def rotated_paths(directory: Path, stem: str) -> list[Path]:
    """Rotated (complete) files of one log, oldest first."""
    pattern = re.compile(rf"^{re.escape(stem)}\.(\d{{8,}}){re.escape(SUFFIX)}$")
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = pattern.match(path.name)
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


def iter_lines(path: Path) -> Iterator[str]:
    """Complete lines only: a last line without its newline is still being written (or was cut
    off by a crash) and is not returned."""
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                yield line


def iter_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed entries of one file; a corrupt line (never written by the service) is skipped
    with a warning rather than failing a whole snapshot."""
    for number, line in enumerate(iter_lines(path), 1):
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


def _encode(entry: dict[str, Any]) -> str:
    try:
        return json.dumps(entry, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError:  # a NaN (a missing nullable number): JSON has null for it
        return json.dumps(
            _no_nan(entry), separators=(",", ":"), allow_nan=False, ensure_ascii=False
        )


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
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.index = index
        self.errors = 0  # failed writes (retried)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Backlog = queued - written; each counter has a single writer thread (one producer
        # per log: the model thread for predictions, the event loop for feedback), so plain
        # integers are exact without a lock.
        self._queued = 0
        self._written = 0
        self._thread: threading.Thread | None = None
        self._fh: IO[bytes] | None = None
        self._size = 0
        self._last_fsync = 0.0
        self._dirty = False

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

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open()
        self._thread = threading.Thread(
            target=self._run, name=f"mlops-log-{self.stem}", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, fsync, close. Idempotent."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        if self._fh is not None:
            self._sync()
            self._fh.close()
            self._fh = None

    # --------------------------------------------------------------------------------- writer
    def _open(self) -> None:
        path = current_path(self.directory, self.stem)
        fh = path.open("a+b")
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

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            stop = item is _STOP
            batch: list[dict[str, Any]] = [] if stop else self._items(item)
            while len(batch) < _DRAIN and not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    batch.extend(self._items(item))
            if batch:
                self._write(batch)
            if stop:
                return
            if self._dirty and time.monotonic() - self._last_fsync >= FSYNC_EVERY_S:
                self._sync()

    @staticmethod
    def _items(item: Any) -> list[dict[str, Any]]:
        return item if isinstance(item, list) else [item]

    def _write(self, batch: list[dict[str, Any]]) -> None:
        data = ("\n".join(_encode(entry) for entry in batch) + "\n").encode("utf-8")
        delay = 0.05
        while True:
            try:
                assert self._fh is not None
                self._fh.write(data)
                self._fh.flush()
                break
            except OSError as exc:  # disk full, I/O error: retry, never drop
                self.errors += 1
                LOG.error("%s log: write failed (%s); retrying", self.stem, exc)
                time.sleep(delay)
                delay = min(2.0, delay * 2)
        self._size += len(data)
        self._dirty = True
        if self.index is not None:
            self.index.written(current_path(self.directory, self.stem).name, batch)
        if self._size >= self.rotate_bytes:
            self._rotate()
        self._written += len(batch)  # last: a zero backlog means written *and* rotated

    def _sync(self) -> None:
        if self._fh is not None and self._dirty:
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())
            self._dirty = False
        self._last_fsync = time.monotonic()

    def _rotate(self) -> None:
        """Close the current file and give it its final, never reused name."""
        assert self._fh is not None
        self._sync()
        self._fh.close()
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
            if self.index is not None:
                self.index.deleted(old.name)
            LOG.info("%s: deleted (beyond keep=%d)", old, self.keep)
        self._open()
