"""Prediction logs from the serving machine to CI: `mlops logs ship` and `mlops logs fetch`.

The service writes its prediction and feedback logs into `serve.log.dir` (see
`pipeline.deploy.service.predlog`): rotated files are complete and never written again; the
current file grows, and only its complete lines are final.

`ship` (on the serving machine, e.g. from cron) copies the log to a *ship location*, any URL a
DVC remote can be (s3://, gs://, azure://, ssh://, a path, ...) or a DVC remote by name
(credentials in .dvc/config.local):

* every rotated file, under its own name; one already there with the same digest is skipped
  (idempotent: shipping twice uploads nothing), one with other bytes is refused (rotated files
  are immutable: two services shipping to one location would mix their logs);
* the current file's complete lines as `<log>.current.jsonl`, replaced on every ship;
* last, `manifest.json`: the target, and each file's name, size and sha256. Readers trust only
  the manifest, so a ship interrupted half-way shows the previous complete state, and a
  location without listings (plain https) works.

`fetch` (in CI) reads the manifest and downloads the files it names into the target's log
directory, verifying every digest, so `mlops logs snapshot` cuts windows from exactly what was
shipped. Its errors name the real cause: nothing shipped there yet (no manifest: e.g. the URL
is a web server's index page, not a ship location), an unreachable location, a manifest for
another target, a file that does not match its digest.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.deploy.service.predlog import FEEDBACK, PREDICTIONS, current_path, rotated_paths
from pipeline.errors import MlopsError
from pipeline.io import atomic_write_bytes, dumps_json, sha256_bytes

MANIFEST = "manifest.json"
FORMAT = "gitops-mlops/prediction-logs"
VERSION = 1
CURRENT = ".current.jsonl"
NAME = re.compile(rf"({PREDICTIONS}|{FEEDBACK})(\.\d{{8,}}|\.current)?\.jsonl")  # fullmatch
SHIP_HINT = "run `mlops logs ship --target T --url URL` on the serving machine (e.g. from cron)"


@dataclass
class Location:
    """A ship location: a DVC filesystem and the directory path on it."""

    fs: Any
    path: str
    shown: str  # for messages: the URL or "remote NAME"

    def join(self, name: str) -> str:
        return str(self.fs.join(self.path, name))


def location(root: Path, *, url: str | None = None, remote: str | None = None) -> Location:
    """The filesystem for `url` or the DVC remote `remote` (config and credentials from
    root/.dvc), as DVC itself would open it."""
    from dvc.config import Config, ConfigError
    from dvc.fs import get_cloud_fs

    if (url is None) == (remote is None):
        raise MlopsError("give exactly one of a URL and a DVC remote name")
    shown = url if url is not None else f"DVC remote {remote!r}"
    try:
        config = Config(dvc_dir=str(root / ".dvc"))
        kwargs = {"url": url} if url is not None else {"name": remote}
        cls, conf, path = get_cloud_fs(config, **kwargs)
        fs = cls(**conf)
    except (ConfigError, ImportError, ValueError) as exc:
        raise MlopsError(
            f"{shown}: DVC cannot open it: {exc}",
            hint="check the URL (or `dvc remote list`); s3/gs/azure/ssh need their plugin: "
            "`make install-remote-<type>`",
        ) from exc
    except Exception as exc:
        raise MlopsError(f"{shown}: DVC cannot open it: {exc}") from exc
    return Location(fs, path, shown)


def _complete_lines(path: Path) -> bytes:
    """The current file up to its last newline (a partial last line is not final yet)."""
    data = path.read_bytes()
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else b""


def local_files(log_dir: Path) -> Iterator[tuple[str, bytes, bool]]:
    """(name on the ship location, bytes, immutable) of every file to ship, in write order."""
    for stem in (PREDICTIONS, FEEDBACK):
        for path in rotated_paths(log_dir, stem):
            yield path.name, path.read_bytes(), True
        current = current_path(log_dir, stem)
        if current.is_file():
            yield f"{stem}{CURRENT}", _complete_lines(current), False


def _read(loc: Location, name: str) -> bytes | None:
    """A file's bytes on the location, None when it is not there."""
    target = loc.join(name)
    try:
        if not loc.fs.exists(target):
            return None
        with loc.fs.open(target, mode="rb") as handle:
            data: bytes = handle.read()
            return data
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MlopsError(
            f"{loc.shown}: cannot read {name}: {exc}",
            hint="check the location's URL, the credentials and the network",
        ) from exc


def read_manifest(loc: Location) -> dict[str, Any] | None:
    data = _read(loc, MANIFEST)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise MlopsError(
            f"{loc.shown}/{MANIFEST} is not JSON: {exc}",
            hint="this location is written only by `mlops logs ship`: is the URL right?",
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise MlopsError(
            f"{loc.shown}/{MANIFEST} is not a prediction-log manifest (format {FORMAT!r})",
            hint="this location is written only by `mlops logs ship`: is the URL right?",
        )
    if doc.get("version") != VERSION:
        raise MlopsError(
            f"{loc.shown}/{MANIFEST}: version {doc.get('version')!r}, this reads {VERSION}",
            hint="ship and fetch with the same version of gitops-mlops",
        )
    return doc


@dataclass
class Shipped:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _put(loc: Location, name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / name
        local.write_bytes(data)
        try:
            loc.fs.makedirs(loc.path, exist_ok=True)
            loc.fs.put_file(str(local), loc.join(name))
        except OSError as exc:
            raise MlopsError(
                f"{loc.shown}: cannot write {name}: {exc}",
                hint="check the location's URL, the credentials and that they allow writing",
            ) from exc


def ship(log_dir: Path, loc: Location, target: str) -> Shipped:
    """Copy the log in `log_dir` to `loc` (see the module docstring)."""
    if not log_dir.is_dir():
        raise MlopsError(
            f"{log_dir}: no prediction log directory",
            hint="run this where `mlops serve` runs, or check deploy.targets.<name>.serve.log.dir",
        )
    manifest = read_manifest(loc)
    if manifest is not None and manifest.get("target") != target:
        raise MlopsError(
            f"{loc.shown} holds the logs of target {manifest.get('target')!r}, not {target!r}",
            hint="give every target its own ship location",
        )
    known = {f["name"]: f for f in (manifest or {}).get("files", [])}
    result = Shipped()
    files = []
    for name, data, immutable in local_files(log_dir):
        digest = sha256_bytes(data)
        entry = {"name": name, "bytes": len(data), "sha256": digest}
        files.append(entry)
        before = known.get(name)
        if before is not None and before["sha256"] == digest:
            result.unchanged.append(name)
            continue
        if before is not None and immutable:
            raise MlopsError(
                f"{loc.shown}/{name} exists with other content (sha256 {before['sha256'][:12]}, "
                f"here {digest[:12]}); rotated log files never change",
                hint="another service ships to this location: give every service its own",
            )
        _put(loc, name, data)
        result.uploaded.append(name)
    # files shipped earlier whose local copy was deleted (`keep`) stay listed
    names = {f["name"] for f in files}
    kept = [f for f in known.values() if f["name"] not in names and not f["name"].endswith(CURRENT)]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "target": target,
        "files": sorted([*kept, *files], key=lambda f: f["name"]),
    }
    if manifest != doc:
        _put(loc, MANIFEST, dumps_json(doc).encode())
    return result


def fetch(loc: Location, log_dir: Path, target: str) -> list[str]:
    """Download what `loc`'s manifest names into `log_dir`; returns the names written."""
    manifest = read_manifest(loc)
    if manifest is None:
        raise MlopsError(
            f"{loc.shown}: no {MANIFEST}: no prediction log was shipped there",
            hint=f"{SHIP_HINT}; the location must be the directory it ships to (a web "
            "server's index page is not one)",
        )
    if manifest.get("target") != target:
        raise MlopsError(
            f"{loc.shown} holds the logs of target {manifest.get('target')!r}, not {target!r}",
            hint="point the URL at this target's ship location, or pass --target",
        )
    log_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in manifest.get("files", []):
        name = str(entry.get("name"))
        if not NAME.fullmatch(name):
            raise MlopsError(
                f"{loc.shown}/{MANIFEST} names {name!r}, not a prediction or feedback log file",
                hint="this location is written only by `mlops logs ship`",
            )
        local = log_dir / (name.replace(".current", "") if name.endswith(CURRENT) else name)
        if local.is_file() and sha256_bytes(local.read_bytes()) == entry.get("sha256"):
            continue
        data = _read(loc, name)
        if data is None:
            raise MlopsError(
                f"{loc.shown}/{name} is named by the manifest but missing",
                hint="ship again: `mlops logs ship` uploads files before the manifest",
            )
        if sha256_bytes(data) != entry.get("sha256"):
            raise MlopsError(
                f"{loc.shown}/{name}: its sha256 is not the one the manifest records",
                hint="the file changed after it was shipped; ship again",
            )
        atomic_write_bytes(local, data)
        written.append(local.name)
    return written
