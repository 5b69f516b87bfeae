"""What monitoring keeps between runs, so a run costs O(1) per new window, not O(history).

Three kinds of entries, each a small JSON file named by the digest of everything it depends on:

* `files` - one window file's summary (rows, first and last time, line), under the digest of
  its bytes: planning the cut (`pipeline.monitor.windowing.survey`) never parses a kept file;
* `packs` - the summaries (and digests) of every member of a pack of windows (a closed day or
  month, `pipeline.windows`), under the digest of the pack's bytes: a run reads a closed
  month in one pass and decodes one entry for it, not one per window;
* `clusters` - what pooling time-overlapping files found (rows, repeated request ids dropped,
  rows per time bucket), under their names, digests and the cut;
* `results` - one monitoring window's full assessment (`pipeline.monitor.assess.assess`),
  under the window's key (the cluster slices it takes: its rows), the digest of the context it
  was judged in (`context_digest`: the monitored bundle with its reference, the settings, the
  declared columns) and the code version (`code_version`);
* `summaries` - the same result without what only a window shown in detail needs (its
  per-column statistics: nine tenths of the bytes; `pipeline.monitor.report.slim`), under the
  same key, kept beside it in the same part. A run decodes the summary of every window and the
  full result only of the windows the reports show in detail, so its cost per old window is a
  small decode, not a 15 kB one. The full results of the other windows are kept unread
  (`keep`); see `prune` for how the two kinds stay in step.

The rules every kept store follows (digests, code version, pruning, a persisted output) are
`pipeline.kept`'s. Every key also carries `code_version()`, the digest of the source of the
modules an entry is computed by, so editing the code cannot serve a stale entry. An entry is
a pure function of its key, so reusing one equals recomputing it; `prune` removes every entry
the run did not use, so the folder is a function of the stage's inputs. The folder is the
`monitor` stage's output `reports/monitor/kept` declared `persist: true` (DVC leaves it in
place across runs, caches it and pushes it), so a fresh CI runner gets it with `dvc pull`;
without it the stage recomputes everything and writes the same entries.
`rm -rf reports/monitor/kept && dvc repro -f monitor` forces a full recomputation.

Entries are kept in packs, one per kind and month of the windows they describe
(`<kind>/<YYYY-MM>.jsonl`, see `KeptStore`), so the folder holds three files a month whatever
the number of windows: DVC walks every file of an output on each `dvc status`. Packs are written
atomically at the end of a run but not fsynced: one lost or torn by a power cut reads as missing
and is computed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline import kept
from pipeline.io import atomic_write_text
from pipeline.kept import PACKAGE, remove
from pipeline.windows import is_window_name, partition_of

KINDS = ("files", "packs", "clusters", "results", "summaries")
# A kind whose entries come with one of another kind under the same keys and parts (the body
# they summarise): `prune` reads and prunes the body's pack only where the summaries changed.
BODY = {"summaries": "results"}
VERSION = 1  # bump to discard every kept entry (a change of format or meaning)
# The modules whose code decides a kept entry: everything monitoring computes a window's
# assessment with. The report writers (report.py, html.py) and the stage are not here: they
# run on every result, kept or not, on every run.
_CODE = (
    "monitor/assess.py",
    "monitor/bounds.py",
    "monitor/compat.py",
    "monitor/drift.py",
    "monitor/drift_checks.py",
    "monitor/drift_evaluation.py",
    "monitor/drift_methods.py",
    "monitor/drift_results.py",
    "monitor/kept.py",
    "monitor/monitored_bundle.py",
    "monitor/sketch.py",
    "monitor/stats.py",
    "monitor/task_metrics.py",
    "monitor/windowing.py",
    "profile/reference.py",
    "profile/layout.py",
    "profile/quantile.py",
    "profile/sample.py",
    "bundle_format.py",
    "floors.py",
    "kept.py",
    "metrics.py",
    "model_types.py",
    "params.py",
    "settings.py",
    "values.py",
    "windows.py",
)


def code_version(root: Path = PACKAGE, modules: Iterable[str] = _CODE) -> str:
    """The digest of the code kept entries are computed by (and of `VERSION`)."""
    return kept.code_version(f"gitops-mlops/monitor-kept/{VERSION}", modules, root)


digest = kept.digest  # the key of a JSON-ready value: the same rule as every kept store


PACK = ".jsonl"  # a pack: one `<name>\t<entry JSON>` line per entry, sorted by name
OTHER = "other"  # the part of entries with no month (a file that is not a window's)


def parts_of(name: str | None, newest: str | None) -> tuple[str, ...]:
    """Where an entry of the window (file) `name` is kept, in a source whose newest window is
    `newest`: the pack to keep it in, then where an earlier run may have kept it.

    A closed month's entries share a month pack (`YYYY-MM`), which stops changing; the current
    month's are kept per day (`YYYY-MM-DD`), so a run rewrites only today's small packs (DVC
    caches every version of a changed file: a month pack rewritten by every hourly run would
    grow the cache by the month's size each time). When a month closes its day packs are read
    once more and their entries moved into the month pack."""
    if name is None or not is_window_name(name):
        return (OTHER,)
    month, day = partition_of(name), f"{partition_of(name)}-{name[6:8]}"
    if newest is not None and name[:6] < newest[:6]:
        return (month, day)
    return (day,)


class KeptStore:
    """A folder of kept entries (see the module docstring), read and written by one run.

    Entries live in packs, `<kind>/<part>.jsonl`, one per kind and closed month of the windows
    they describe and one per kind and day of the current month (`parts_of`): DVC walks,
    stats and hashes every file of the folder on each `dvc status`, so one
    file per entry (three per window) made every pull request pay for the whole history. A
    pack is read once, when an entry of it is first asked for, its entries parsed only when
    asked for, and written back (atomically, sorted) by `save` only if its entries changed.

    `directory=None` keeps nothing: every lookup misses (a full recomputation)."""

    def __init__(
        self, directory: Path | None, code: str | None = None, *, read_only: bool = False
    ) -> None:
        self.directory = directory
        self.read_only = read_only  # a reader of the monitor stage's entries (maintain)
        self.code = code_version() if code is None else code
        self.used: set[tuple[str, str, str]] = set()  # (kind, part, name)
        self.hits = 0
        self.misses = 0
        self._packs: dict[tuple[str, str], dict[str, str]] = {}
        self._changed: set[tuple[str, str]] = set()
        self._found: dict[tuple[str, str], str] = {}  # (kind, name) -> part `get` found it in

    def _name(self, kind: str, key: str) -> str:
        assert kind in KINDS
        return hashlib.sha256(f"{self.code}\0{kind}\0{key}".encode()).hexdigest()

    def pack_path(self, kind: str, part: str) -> Path:
        assert self.directory is not None and kind in KINDS
        return self.directory / kind / f"{part}{PACK}"

    def _pack(self, kind: str, part: str) -> dict[str, str]:
        """The pack's entries (name -> JSON text), read on first use. A line that is not
        `<64 hex>\t<text>` (a pack torn by a power cut: packs are not fsynced) is skipped:
        its entry reads as missing and is computed again."""
        found = self._packs.get((kind, part))
        if found is None:
            found = {}
            try:
                text = self.pack_path(kind, part).read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                name, tab, entry = line.partition("\t")
                if tab and len(name) == 64:
                    found[name] = entry
            self._packs[(kind, part)] = found
        return found

    def get(self, kind: str, key: str, parts: tuple[str, ...] = (OTHER,)) -> dict[str, Any] | None:
        """The entry kept under `key`, looked for in `parts` (`parts_of`); one found in a later
        part is moved into the first (the earlier part loses it when the run is pruned)."""
        if self.directory is None:
            self.misses += 1
            return None
        name = self._name(kind, key)
        for part in parts:
            text = self._pack(kind, part).get(name)
            try:
                value = None if text is None else json.loads(text)
            except ValueError:  # torn by a power cut (packs are not fsynced): computed again
                value = None
            if isinstance(value, dict):
                break
        else:
            self.misses += 1
            return None
        self._found[(kind, name)] = part
        if part != parts[0] and text is not None and not self.read_only:
            self._pack(kind, parts[0])[name] = text
            self._changed.add((kind, parts[0]))
            part = parts[0]
        self.used.add((kind, part, name))
        self.hits += 1
        return dict(value)

    def found_in(self, kind: str, key: str) -> str | None:
        """The part this run's `get` of `key` found it in (before moving it), or None."""
        return self._found.get((kind, self._name(kind, key)))

    def keep(self, kind: str, key: str, part: str) -> None:
        """Keep the entry under `key` in `part` without reading it (its pack is not even
        opened): for an entry this run does not need but must not prune, whose presence in
        `part` its companion entry vouches for (`BODY`). If it is missing after all, nothing
        is lost but the time to compute it again when it is next asked for."""
        if self.directory is None or self.read_only:
            return
        self.used.add((kind, part, self._name(kind, key)))

    def put(
        self, kind: str, key: str, value: Mapping[str, Any], parts: tuple[str, ...] = (OTHER,)
    ) -> None:
        """Keep `value` in the first of `parts` (written by `save`, at the end of the run)."""
        if self.directory is None or self.read_only:
            return
        part = parts[0]
        name = self._name(kind, key)
        # insertion order kept (not sorted): a kept result reads back as the dict it was
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        if "\n" in text:  # never: json.dumps escapes newlines inside strings
            raise ValueError("a kept entry must be one line of JSON")
        pack = self._pack(kind, part)
        if pack.get(name) != text:
            pack[name] = text
            self._changed.add((kind, part))
        self.used.add((kind, part, name))

    def save(self) -> None:
        """Write every pack an entry was added to or changed in (atomically, not fsynced: a
        lost pack is recomputed)."""
        if self.directory is None or self.read_only:
            return
        for kind, part in sorted(self._changed):
            self._write(kind, part)
        self._changed.clear()

    def _write(self, kind: str, part: str) -> None:
        pack = self._packs[(kind, part)]
        path = self.pack_path(kind, part)
        if not pack:
            path.unlink(missing_ok=True)
            return
        body = "".join(f"{name}\t{pack[name]}\n" for name in sorted(pack))
        atomic_write_text(path, body, durable=False)

    def prune(self) -> int:
        """Drop every entry this run did not use (whole packs, and anything else in the
        folder), then `save`; how many entries or stray files were removed."""
        if self.directory is None or self.read_only:
            return 0
        removed = 0
        # A body pack (`BODY`) holds the keys of its summaries pack: where the summaries lost an
        # entry, so does the body, and its pack is read to drop it; where they lost none, the
        # body pack is left as it is, unread.
        for (kind, part), pack in list(self._packs.items()):
            body = BODY.get(kind)
            if body is not None and any((kind, part, n) not in self.used for n in pack):
                self._pack(body, part)
        if self.directory.is_dir():
            used_packs = {(kind, part) for kind, part, _ in self.used}
            for entry in sorted(self.directory.iterdir()):
                if entry.name not in KINDS or not entry.is_dir() or entry.is_symlink():
                    removed += remove(entry)  # nothing else belongs here
                    continue
                for path in sorted(entry.iterdir()):
                    part = path.name[: -len(PACK)]
                    if not path.name.endswith(PACK) or path.is_dir() or not part:
                        removed += remove(path)  # the earlier layout, or a stray file
                    elif (entry.name, part) not in used_packs:
                        removed += len(self._pack(entry.name, part)) or 1
                        path.unlink()
                        self._packs.pop((entry.name, part), None)
                        self._changed.discard((entry.name, part))
        for (kind, part), pack in self._packs.items():
            unused = [n for n in pack if (kind, part, n) not in self.used]
            for name in unused:
                del pack[name]
            if unused:
                removed += len(unused)
                self._changed.add((kind, part))
        self.save()
        return removed
