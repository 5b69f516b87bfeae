"""Reading and writing artifacts: every write is atomic, every artifact has a sha256.

A crash (or SIGKILL) in the middle of a write must never leave a half-written file visible: we
write a temporary file in the same directory, fsync it, and rename it over the target, which is
atomic on POSIX. The directory is fsynced too so the rename survives a power loss.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

CHUNK = 1 << 20


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", *, durable: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; rename it into place only on success.

    `durable=False` skips the fsyncs, for files that are recomputed when missing (the rename
    stays atomic: a reader sees the old file or the new one, never part of one)."""
    if mode not in {"wb", "w"}:
        raise ValueError(f"atomic_open supports 'wb' and 'w', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed before its rename leaves its temporary file behind; each target has one
    # writer at a time (a stage, or a command outside the graph), so sweep them here.
    sweep_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as fh:  # type: ignore[call-overload]
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        # mkstemp creates 0600 files; artifacts are ordinary files, so honour the umask.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(target)
        if durable:
            _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """What writers of `target` killed before their rename left beside it: the temporary
    files of `atomic_open` and the temporary directories of a directory written whole
    (`.<name>.<random>.tmp`, hidden, never `target` itself)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def sweep_temporaries(target: str | os.PathLike[str]) -> None:
    """Remove `temporaries(target)`: only one writer of a target runs at a time, so whatever
    is there was left by one that was killed."""
    for stale in temporaries(target):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    with atomic_open(path, "w", durable=durable) as fh:
        fh.write(text)


def dumps_json(obj: Any) -> str:
    """Canonical JSON for artifacts: sorted keys, fixed indent, trailing newline, no NaN."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    with Path(path).open(encoding="utf-8") as fh:
        return json.load(fh)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------- model files
# What a model file may hold is decided by `pipeline.model_types`: exact class names, by the kind
# of skops node that carries them. A file holding anything else is refused before skops builds a
# single object, so a tampered or foreign file cannot run code on load.
MODEL_SUFFIX = ".skops"
_FILE_LOADERS = {"NdArrayNode", "BytesNode", "BytearrayNode", "SparseMatrixNode"}
_EPOCH = (1980, 1, 1, 0, 0, 0)


def verify_manifest(
    directory: Path,
    name: str,
    expected_digest: str | None = None,
    *,
    hint: str,
    required: Collection[str] = (),
) -> tuple[str, dict[str, Any]]:
    """Verify a content-addressed directory (a bundle) and return (digest, manifest).

    The manifest records the sha256 of every other file and its own sha256 is the directory's
    digest, so checking the manifest against the digest a release recorded, then each file
    against the manifest, proves the whole directory is what was released. Deploy and monitor
    both read bundles this way, without importing each other. Without `expected_digest` (e.g.
    `mlops predict --bundle DIR`) the directory is only proven self-consistent; either way every
    file in `required` (what the reader will open) must be one the manifest digests, and every
    listed name must stay inside the directory, so no file is read unverified."""
    from pipeline.errors import ArtifactError

    manifest = directory / name
    if not manifest.is_file():
        raise ArtifactError(f"{directory}: no {name}; not a bundle (or not fetched)", hint=hint)
    digest = sha256_file(manifest)
    if expected_digest is not None and digest != expected_digest:
        raise ArtifactError(
            f"{directory}: bundle digest {digest[:16]} does not match the "
            f"release's {expected_digest[:16]}; refusing a tampered bundle",
            hint="restore it with `dvc checkout` / `dvc pull`",
        )
    meta = read_json(manifest)
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict):
        raise ArtifactError(f"{manifest}: no 'files' entry; not a bundle manifest")
    unlisted = [file for file in required if file not in files]
    if unlisted:
        raise ArtifactError(
            f"{manifest}: lists no sha256 for {', '.join(unlisted)}; refusing a bundle whose "
            "files are not all digested",
            hint=hint,
        )
    for file, sha in files.items():
        relative = PurePosixPath(file)
        if relative.is_absolute() or ".." in relative.parts or "\\" in file or not file:
            raise ArtifactError(
                f"{manifest}: file name {file!r} leaves the bundle directory; refusing it",
                hint=hint,
            )
        path = directory / file
        if not path.is_file() or sha256_file(path) != sha:
            raise ArtifactError(
                f"{path}: missing or changed (sha256 mismatch); refusing a tampered bundle",
                hint="restore it with `dvc checkout` / `dvc pull`",
            )
        if path.suffix == MODEL_SUFFIX:
            # A digest only proves the bytes are the ones released; what they are is checked
            # too, so no path that verifies a bundle (gate, release, verify, sync, monitor)
            # passes a model file that would run code when something loads it.
            audit_model(path.read_bytes(), str(path))
    return digest, meta


def model_bytes(model: Any) -> bytes:
    """Serialize with skops, byte-reproducibly: skops names array entries by `id()` and uuid4
    and stamps the zip with the wall clock, so we renumber ids in traversal order, rename
    entries, and rewrite the zip with sorted entries and a fixed timestamp.

    The bytes are those of `skops.io.dumps` rewritten that way, made faster (every candidate of
    the develop graph pays this, a forest about a second): skops's state is taken without its
    own indented `schema.json` being written and parsed again, and the indented schema is
    written by `dumps_indented` (the same text as `json.dumps(indent=2)`, several times
    faster)."""
    import io as _io
    import zipfile

    schema, files = _skops_state(model)
    ids: dict[Any, int] = {}
    names: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__loader__" in node:
                if "__id__" in node:
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids))
                if node["__loader__"] in _FILE_LOADERS and isinstance(node.get("file"), str):
                    old = node["file"]
                    node["file"] = names.setdefault(old, f"{len(names)}{Path(old).suffix}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    out = _io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        entries = [("schema.json", dumps_indented(schema).encode())]
        entries += sorted((new, files(old)) for old, new in names.items())
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, compresslevel=6)
    return out.getvalue()


def _skops_state(model: Any) -> tuple[Any, Callable[[str], bytes]]:
    """skops's schema of `model`, as `json.loads` of its `schema.json` would give it, and a
    reader of the files skops wrote beside it. What `skops.io.dumps` does (skops 0.16,
    `skops.io._persist._save`) without writing the schema indented and parsing it back: a
    compact dump parses to the same data. Another skops version takes the public path."""
    import io as _io
    import zipfile

    import skops
    import skops.io as sio

    try:
        from skops.io._utils import SaveContext, get_state
    except ImportError:  # pragma: no cover - internals moved: the public path, same result
        raw = zipfile.ZipFile(_io.BytesIO(sio.dumps(model)))
        return json.loads(raw.read("schema.json")), raw.read
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zip_file:
        context = SaveContext(zip_file=zip_file)
        state = get_state(model, context)
        context.clear_memo()
        state["protocol"] = context.protocol
        state["_skops_version"] = skops.__version__
        schema = json.loads(json.dumps(state))
    return schema, zipfile.ZipFile(buffer).read


def _json_float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def dumps_indented(value: Any) -> str:
    """`json.dumps(value, indent=2)` for parsed JSON (dicts with string keys, lists, strings,
    numbers, booleans, None), text for text, without the pure-Python encoder's generators
    (`json` has no C encoder for indented output): several times faster on a model schema."""
    from json.encoder import encode_basestring_ascii as string

    parts: list[str] = []
    add = parts.append

    def encode(item: Any, pad: str) -> None:
        if isinstance(item, str):
            add(string(item))
        elif isinstance(item, dict):
            if not item:
                add("{}")
                return
            inner, opening = pad + "  ", "{"
            for key, child in item.items():
                if not isinstance(key, str):
                    raise TypeError(f"dumps_indented: key {key!r} is not a string")
                add(opening + inner + string(key) + ": ")
                opening = ","
                encode(child, inner)
            add(pad + "}")
        elif isinstance(item, list):
            if not item:
                add("[]")
                return
            inner, opening = pad + "  ", "["
            for child in item:
                add(opening + inner)
                opening = ","
                encode(child, inner)
            add(pad + "]")
        elif item is None:
            add("null")
        elif item is True:
            add("true")
        elif item is False:
            add("false")
        elif isinstance(item, int):
            add(int.__repr__(item))
        elif isinstance(item, float):
            add(_json_float(item))
        else:
            raise TypeError(f"dumps_indented: {type(item).__name__} is not parsed JSON")

    encode(value, "\n")
    return "".join(parts)


def save_model(model: Any, path: str | os.PathLike[str]) -> str:
    """Write a model file atomically; returns its sha256. A model that holds anything the
    loader does not trust (`pipeline.model_types`) is refused here, at training time, rather
    than written and refused by every later load."""
    data = model_bytes(model)
    audit_model(data, str(path), writing=True)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_model(path: str | os.PathLike[str], sha256: str | None = None) -> Any:
    """Load a model file without executing untrusted code, refusing a digest mismatch."""
    from pipeline.errors import ArtifactError

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{path}: model file does not exist",
            hint="run `dvc repro` (or `dvc pull`) to produce it",
        ) from exc
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise ArtifactError(
            f"{path}: sha256 {sha256_bytes(data)[:12]}… does not match the "
            f"recorded {sha256[:12]}…; the file was changed or replaced",
            hint="restore it with `dvc checkout`; never edit model files",
        )
    return loads_model(data, str(path))


def audit_model(data: bytes, source: str = "model", *, writing: bool = False) -> list[str]:
    """Check a skops file's tree without building anything; returns the names it holds.

    Every node must carry an exact name its kind may carry (`pipeline.model_types`); the
    message names the file and every refused type."""
    import io as _io
    import zipfile

    from pipeline import model_types
    from pipeline.errors import ArtifactError

    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as zf:
            entries = [info.filename for info in zf.infolist()]
            if entries.count("schema.json") != 1:
                raise ValueError("expected exactly one schema.json")
            schema = json.loads(zf.read("schema.json"))
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as exc:
        raise ArtifactError(f"{source}: not a readable skops model file: {exc}") from exc
    refused = model_types.refused(schema)
    if refused:
        if writing:
            raise ArtifactError(
                f"{source}: the fitted model holds {', '.join(refused)}, which model files "
                "may not contain; it would be refused on load",
                hint="model files hold only the estimators and preprocessing the factory "
                "builds (pipeline/model_types.py); drop the hyperparameter that adds it, or "
                "trust it in code with pipeline.factory.register",
            )
        raise ArtifactError(
            f"{source}: refused: the model file holds {', '.join(refused)}, not on the "
            "list of trusted types; nothing was loaded",
            hint="model files may only hold the project's own estimators, preprocessing and "
            "numpy arrays (pipeline/model_types.py); never load a model file from elsewhere",
        )
    return model_types.names(schema)


def loads_model(data: bytes, source: str = "model") -> Any:
    """Load a model file's bytes: audited first (`audit_model`), then built by skops, told to
    trust exactly the names the audit passed."""
    import skops.io as sio

    from pipeline.errors import ArtifactError

    trusted = audit_model(data, source)
    try:
        return sio.loads(data, trusted=trusted)
    except Exception as exc:
        raise ArtifactError(f"{source}: model file is corrupt: {exc}") from exc
