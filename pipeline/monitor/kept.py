"""What monitoring keeps between runs, so a run costs O(1) per new window, not O(history).

Three kinds of entries, each a small JSON file named by the digest of everything it depends on:

* `files` - one window file's summary (rows, first and last time, line), under the digest of
  its bytes: planning the cut (`pipeline.monitor.windowing.survey`) never parses a kept file;
* `clusters` - what pooling time-overlapping files found (rows, repeated request ids dropped,
  rows per time bucket), under their names, digests and the cut;
* `results` - one monitoring window's full assessment (`pipeline.monitor.assess.assess`),
  under the window's key (the cluster slices it takes: its rows), the digest of the context it
  was judged in (`context_digest`: the monitored bundle with its reference, the settings, the
  declared columns) and the code version (`code_version`).

Every key also carries `code_version()`, the digest of the source of the modules an entry is
computed by, so editing the code cannot serve a stale entry. An entry is a pure function of its
key, so reusing one equals recomputing it; `prune` removes every entry the run did not use,
so the folder is a function of the stage's inputs. The folder is the `monitor` stage's output
`reports/monitor/kept` declared `persist: true` (DVC leaves it in place across runs, caches it
and pushes it), so a fresh CI runner gets it with `dvc pull`; without it the stage recomputes
everything and writes the same entries. `rm -rf reports/monitor/kept && dvc repro -f monitor`
forces a full recomputation.

Entries are written atomically but not fsynced (thousands of them in a first run): one lost
or torn by a power cut reads as missing and is computed again. They are spread over 256
sub-folders (two hex digits) so that no folder grows past a few dozen files per thousand
windows: every atomic write lists its folder for stale temporaries.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.io import atomic_write_text

KINDS = ("files", "clusters", "results")
VERSION = 1  # bump to discard every kept entry (a change of format or meaning)
_PACKAGE = Path(__file__).resolve().parent.parent  # pipeline/
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
    "metrics.py",
    "model_types.py",
    "params.py",
    "settings.py",
    "values.py",
    "windows.py",
)


def code_version(root: Path = _PACKAGE, modules: Iterable[str] = _CODE) -> str:
    """The digest of the code kept entries are computed by (and of `VERSION`)."""
    digest = hashlib.sha256(f"gitops-mlops/monitor-kept/{VERSION}".encode())
    for name in modules:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def digest(value: object) -> str:
    """The key of a JSON-ready value (sorted keys: the same value, the same key)."""
    text = json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class KeptStore:
    """A folder of kept entries (see the module docstring), read and written by one run.

    `directory=None` keeps nothing: every lookup misses (a full recomputation)."""

    def __init__(
        self, directory: Path | None, code: str | None = None, *, read_only: bool = False
    ) -> None:
        self.directory = directory
        self.read_only = read_only  # a reader of the monitor stage's entries (maintain)
        self.code = code_version() if code is None else code
        self.used: set[Path] = set()
        self.hits = 0
        self.misses = 0

    def _path(self, kind: str, key: str) -> Path:
        assert self.directory is not None and kind in KINDS
        name = hashlib.sha256(f"{self.code}\0{kind}\0{key}".encode()).hexdigest()
        return self.directory / kind / name[:2] / f"{name}.json"

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        if self.directory is None:
            self.misses += 1
            return None
        path = self._path(kind, key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            value = json.loads(text)
        except ValueError:  # torn by a power cut (entries are not fsynced): computed again
            value = None
        if not isinstance(value, dict):
            self.misses += 1
            return None
        self.used.add(path)
        self.hits += 1
        return dict(value)

    def put(self, kind: str, key: str, value: Mapping[str, Any]) -> None:
        if self.directory is None or self.read_only:
            return
        path = self._path(kind, key)
        # insertion order kept (not sorted): a kept result reads back as the dict it was
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text, durable=False)  # a lost entry is recomputed
        self.used.add(path)

    def prune(self) -> int:
        """Remove every entry this run did not use (and emptied sub-folders); how many."""
        if self.directory is None or self.read_only or not self.directory.is_dir():
            return 0
        removed = 0
        for entry in sorted(self.directory.iterdir()):
            if entry.name not in KINDS:  # nothing else belongs here
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
                continue
            for sub in sorted(p for p in entry.iterdir()):
                if not sub.is_dir():
                    sub.unlink()
                    removed += 1
                    continue
                for path in sub.iterdir():
                    if path not in self.used:
                        path.unlink()
                        removed += 1
                if not any(sub.iterdir()):
                    sub.rmdir()
        return removed
