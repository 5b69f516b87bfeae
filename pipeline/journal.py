"""One undo journal for the commands outside the graph: a change to several files happens whole
or not at all, even when the command is killed half-way.

`mlops release`, `rollback`, `unpin`, `select` and `maintain --apply` each change several files
(release records, bundles and their pointers, pins, params.yaml, feedback data, the ledger).
Every single write is atomic (`pipeline.io`), but a command killed between two of them would
leave a state nobody declared: one target released and the other not, feedback rows written and
missing from the ledger (so never retried). So each runs as a transaction:

* before a path is first changed, its bytes (or its absence) are saved under `.mlops/journal/`
  (git-ignored) and listed in the journal's index, so the saved copy is on disk before the
  change (write-ahead);
* a failure restores every listed path, atomically, newest first (a path that did not exist is
  removed, a directory whole), sweeps the temporaries killed writers left beside them
  (`pipeline.io.temporaries`), then drops the journal;
* success drops the journal: removing the index is the commit;
* a journal found by the next transaction (its command was killed) is rolled back first, so the
  retry runs from the state the killed command started from and completes. `pending` tells
  `mlops verify` that the checkout is in such a mixed state.

One command changes a checkout at a time (a lock beside the journal); a transaction opened
while another is open in the same process (maintain's rollback action) joins it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipeline.errors import MlopsError
from pipeline.io import (
    atomic_write_bytes,
    read_json,
    sweep_temporaries,
    write_json,
)

STATE_DIR = Path(".mlops")  # git-ignored: machine-local state of the commands
JOURNAL_DIR = STATE_DIR / "journal"
INDEX = "index.json"
LOCK = STATE_DIR / "lock"


@dataclass(frozen=True)
class Pending:
    """A journal left by a command that did not finish: what it had started to change."""

    command: str
    paths: list[str]
    changed: list[str] = field(default_factory=list)  # those no longer as they were saved

    @classmethod
    def of(cls, index: dict[str, Any], root: Path | None = None) -> Pending:
        paths = [str(e["path"]) for e in index["entries"]]
        changed = [] if root is None else [p for p in paths if _changed(root, index, p)]
        return cls(str(index.get("command")), paths, changed)

    def describe(self) -> str:
        shown = ", ".join(self.paths) or "nothing yet"
        return f"an interrupted `{self.command}` left its changes half-done ({shown})"


class Journal:
    """The write-ahead record of one transaction (see the module docstring)."""

    def __init__(self, root: Path, command: str) -> None:
        self.root = root.absolute()
        self.command = command
        self.entries: list[dict[str, str | None]] = []
        self._known: set[str] = set()

    @property
    def directory(self) -> Path:
        return self.root / JOURNAL_DIR

    def file(self, path: Path | str) -> Path:
        """Remember `path` (relative to the root, or absolute inside it) as it is now, before
        the caller changes it; returns the absolute path. A path that does not exist yet may
        become a file or a directory: either is removed on restore."""
        absolute = Path(os.path.normpath(self.root / path))
        rel = Path(os.path.relpath(absolute, self.root)).as_posix()
        if rel.startswith("../") or rel in ("..", "."):
            raise ValueError(f"{path}: not inside {self.root}")
        if rel in self._known:
            return absolute
        if absolute.is_dir() and not absolute.is_symlink():
            raise ValueError(f"{rel}: an existing directory cannot be journaled")
        backup = None
        if absolute.exists():
            backup = f"{len(self.entries)}.bak"
            atomic_write_bytes(self.directory / backup, absolute.read_bytes())
        self.entries.append({"path": rel, "backup": backup})
        self._known.add(rel)
        write_json(self.directory / INDEX, {"command": self.command, "entries": self.entries})
        return absolute

    def restore(self) -> None:
        _restore(self.root, self.entries)


_open: dict[Path, Journal] = {}


@contextlib.contextmanager
def transaction(root: Path, command: str) -> Iterator[Journal]:
    """Run a command's changes as one transaction (see the module docstring): the lock is
    taken, a journal an interrupted command left is rolled back, then the body runs; a failure
    (any exception, Ctrl-C included) restores every journaled path."""
    key = root.resolve()
    if key in _open:  # joined: the outer transaction commits or restores everything
        yield _open[key]
        return
    with _locked(root, command):
        rolled_back = recover(root)
        if rolled_back is not None:
            print(
                f"note: {rolled_back.describe()}: rolled back to where it started",
                file=sys.stderr,
            )
        journal = Journal(root, command)
        _open[key] = journal
        try:
            yield journal
        except BaseException:
            journal.restore()
            _drop(root)
            raise
        finally:
            del _open[key]
        _drop(root)


def pending(root: Path) -> Pending | None:
    """The journal an interrupted command left in `root` (with the paths it had already
    changed), None when there is none."""
    doc = _index(root)
    return None if doc is None else Pending.of(doc, root)


def _changed(root: Path, index: dict[str, Any], rel: str) -> bool:
    """Whether `rel` differs from what the journal saved before its command changed it."""
    entry = next(e for e in index["entries"] if e["path"] == rel)
    path = root / rel
    if entry.get("backup") is None:
        return path.exists() or path.is_symlink()
    saved = root / JOURNAL_DIR / str(entry["backup"])
    return not path.is_file() or not saved.is_file() or path.read_bytes() != saved.read_bytes()


def recover(root: Path) -> Pending | None:
    """Roll back what an interrupted command left (see `pending`); None when nothing was."""
    doc = _index(root)
    if doc is not None:
        _restore(root, doc["entries"])
    _drop(root)  # also a journal whose index was already removed (dropped half-way)
    return None if doc is None else Pending.of(doc)


def _index(root: Path) -> dict[str, Any] | None:
    """The journal's index (written atomically, so whole or absent), None when absent."""
    path = root / JOURNAL_DIR / INDEX
    if not path.is_file():
        return None
    doc: dict[str, Any] = read_json(path)
    return doc


def _restore(root: Path, entries: list[dict[str, str | None]]) -> None:
    """Put every journaled path back as it was, newest first; idempotent, so a restore that
    is itself killed is simply done again by the next `recover`."""
    directory = root / JOURNAL_DIR
    for entry in reversed(entries):
        path = root / str(entry["path"])
        backup = entry.get("backup")
        if backup is None:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        else:
            data = (directory / backup).read_bytes()
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            if not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
        sweep_temporaries(path)


def _drop(root: Path) -> None:
    """Remove the journal: its index first (the commit point), then the saved copies."""
    directory = root / JOURNAL_DIR
    index = directory / INDEX
    if index.exists():
        index.unlink()
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _locked(root: Path, command: str) -> Iterator[None]:
    """Hold the checkout's lock: one command outside the graph changes it at a time. The
    kernel drops the lock when its holder dies, so a killed command never blocks the retry."""
    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a+", encoding="utf-8")
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another command"
            raise MlopsError(
                f"{holder} is changing this checkout right now",
                hint="wait for it to finish, then run this command again",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"`{command}` (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
