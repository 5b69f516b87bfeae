"""Results a stage keeps between runs, each under the digest of everything it depends on.

Two stages keep what they computed so that a run recomputes only what its inputs changed:
`monitor` (one assessment per production window, `pipeline.monitor.kept`: JSON entries in
packs) and `train` (one fit per candidate, `pipeline.develop.train`: a folder of files per
fit). Both follow the same rules, owned here:

* an entry's key is the digest (`digest`) of a JSON-ready value naming every input it depends
  on, including `code_version`: the digest of the source of the modules that compute it, so
  editing that code can never serve a stale entry;
* an entry is a pure function of its key, so reusing one equals recomputing it;
* a run records which entries it used and prunes the rest (`prune_folder`, `KeptFolders.prune`),
  so the store is a function of the stage's current inputs, not of its history;
* the store is a DVC output declared `persist: true` (left in place across runs, cached and
  pushed); deleting it only forces a full recomputation;
* writes are atomic: a killed run leaves whole entries or none, and at most a hidden temporary
  that the next writer sweeps (`pipeline.io.temporaries`).

develop and monitor may not import each other, so this foundation is what they share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from pipeline.io import _fsync_dir, sweep_temporaries

PACKAGE = Path(__file__).resolve().parent  # pipeline/
_KEY = re.compile(r"^[0-9a-f]{64}$")


def digest(value: object) -> str:
    """The key of a JSON-ready value (sorted keys: the same value, the same key)."""
    text = json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def code_version(tag: str, modules: Iterable[str], root: Path = PACKAGE) -> str:
    """The digest of the code a store's entries are computed by: `tag` (the store's name and
    format version: bump it to discard every entry) and the bytes of each of `modules`
    (paths relative to `root`, the package)."""
    hashed = hashlib.sha256(tag.encode())
    for name in modules:
        hashed.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return hashed.hexdigest()


def remove(path: Path) -> int:
    """Delete a file, a link or a whole folder (not following links); 1."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return 1


def prune_folder(directory: Path, keep: Collection[str]) -> int:
    """Remove everything directly in `directory` whose name is not in `keep` (what a run did
    not use, a stray file, a killed writer's temporary); how many entries were removed."""
    if not directory.is_dir():
        return 0
    return sum(remove(path) for path in sorted(directory.iterdir()) if path.name not in keep)


class KeptFolders:
    """A store of whole folders, one per key (a 64-hex `digest`): `directory/<key>/<file>`.

    `get` returns a kept folder (and marks it used), `put` writes one whole: its files go into
    a hidden temporary folder beside it, are fsynced, and the folder is renamed into place
    (atomic: a reader sees all of its files or no folder), `prune` removes every folder the
    run did not use. DVC walks every file of an output on each `dvc status`: a folder per
    entry suits a store of a few entries (the candidates), not one of thousands."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.used: set[str] = set()

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"a kept folder's key is a sha256 hex digest, not {key!r}")
        return self.directory / key

    def get(self, key: str, files: Collection[str]) -> Path | None:
        """The folder kept under `key` if it holds every one of `files`, else None."""
        folder = self.path(key)
        if not all((folder / name).is_file() for name in files):
            return None
        self.used.add(key)
        return folder

    def put(self, key: str, files: Mapping[str, bytes]) -> Path:
        """Keep `files` (name -> bytes) under `key`, replacing whatever was there."""
        folder = self.path(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=self.directory))
        try:
            for name, data in files.items():
                with (tmp / name).open("wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            if folder.exists():  # an entry that failed its check: replaced whole
                remove(folder)
            tmp.replace(folder)
            _fsync_dir(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.used.add(key)
        return folder

    def prune(self) -> int:
        """Remove every folder (and anything else) the run did not `get` or `put`."""
        return prune_folder(self.directory, self.used)
