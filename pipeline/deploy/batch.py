"""`mlops predict`: score a CSV or Parquet file with a released bundle, chunk by chunk.

The same validation as the service (the bundle's input signature, with `Signature.validate`'s
exact verdicts, computed column-wise by `columns.py`), the same unseen-value policy, and the
same model outputs as `model.predict` / `model.predict_proba`. Bad rows are reported by their
1-based row number in the file (for a CSV, row 1 is the line after the header):

* `on_bad_rows: fail` refuses the whole file and lists every bad row (exit 2), writing nothing;
* `on_bad_rows: skip` scores the other rows and reports the skipped ones.

Columns the model does not use (ids, the label, ...) pass through unchanged; a missing
required column refuses the file. The output is the input columns, `prediction`,
`proba_<class>` per class (classifiers) and `flags` (comma-separated input flags:
out_of_range:<column>, unseen_category:<column>), in the format the output name says
(.csv or .parquet), written atomically: a failed run leaves no partial file.

CSV cells are read as text and numbers parsed per declared column type, so an id like "007"
passes through as written and "abc" in a numeric column is reported, not silently nulled.
Empty cells (and pandas' default NA spellings) are missing values. Columns the dataset declares
as numbers (the model's and, given `declared`, pass-through ones such as a numeric label) are
numbers in a Parquet output of a CSV input (float64), so CSV in / Parquet out keeps types; a
CSV output keeps every cell as written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from pipeline import values as vals
from pipeline.deploy import scoring
from pipeline.deploy.bundle import Bundle, load_bundle
from pipeline.deploy.columns import validate_columns
from pipeline.errors import DataError
from pipeline.io import atomic_open, write_json
from pipeline.params import BatchSettings, ComputeSpec
from pipeline.paths import release_path, released_bundle
from pipeline.release_record import read_record
from pipeline.tables import parquet_parts

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FORMATS = ("csv", "parquet")
MAX_SHOWN = 20


class BadRowsError(DataError):
    """A file refused under `on_bad_rows: fail`; carries every bad row found."""

    def __init__(self, message: str, result: BatchResult, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based data row of the input (of a folder: counted over its files, in order)
    field: str | None
    message: str
    file: str | None = None  # a folder's input: the file the row is in
    file_row: int | None = None  # ... and its 1-based row there

    def render(self) -> str:
        where = f" ({self.file} row {self.file_row})" if self.file else ""
        return f"row {self.row}{where}: {self.field or '(record)'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "field": self.field, "message": self.message}
        if self.file:
            out.update(file=self.file, file_row=self.file_row)
        return out


@dataclass
class BatchResult:
    rows: int = 0
    scored: int = 0
    flagged: int = 0
    bad: list[BadRow] = field(default_factory=list)
    passthrough: list[str] = field(default_factory=list)

    @property
    def bad_rows(self) -> list[int]:
        return sorted({b.row for b in self.bad})

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "scored": self.scored,
            "flagged": self.flagged,
            "skipped_rows": self.bad_rows,
            "bad": [b.to_dict() for b in self.bad],
            "passthrough_columns": self.passthrough,
        }


def load_release(root: Path, target: str, bundle_path: Path | None) -> tuple[Bundle, str | None]:
    """The bundle to score with: the target's release (deploy/<target>.json), or `bundle_path`
    (e.g. models/bundle, the champion) when given."""
    if bundle_path is not None:
        return load_bundle(bundle_path), None
    record = read_record(root / release_path(target), target)
    if record.release is None:
        raise DataError(
            f"{release_path(target)}: nothing has been released to {target} yet",
            hint="run `mlops release`, or score with the champion: --bundle models/bundle",
        )
    bundle = root / released_bundle(str(record.bundle_id))  # = bundle.path (read_record checks)
    return load_bundle(bundle, record.bundle_sha256), record.release


def file_format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; expected .csv or .parquet",
            hint="name a .csv or .parquet file (the format follows the extension)",
        )
    return fmt


# --------------------------------------------------------------------------------- reading
def _chunks(path: Path, chunk_rows: int, bundle: Bundle) -> Iterator[tuple[pa.Table, pd.DataFrame]]:
    """(the chunk as an Arrow table, for pass-through; the model's fields as pandas)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = bundle.signature.names
    if file_format(path) == "parquet":
        try:  # pre_buffer (the default) keeps every chunk read: memory would grow with the file
            reader = pq.ParquetFile(path, pre_buffer=False)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from exc
        present = [n for n in names if n in reader.schema_arrow.names]
        _check_columns(path, bundle, reader.schema_arrow.names)
        for batch in reader.iter_batches(batch_size=chunk_rows):
            table = pa.Table.from_batches([batch])
            yield table, table.select(present).to_pandas()
        return
    try:
        reader_csv = pd.read_csv(
            path, chunksize=chunk_rows, dtype=str, keep_default_na=True, encoding="utf-8"
        )
        first = True
        for chunk in reader_csv:
            if first:
                _check_columns(path, bundle, list(chunk.columns))
                first = False
            schema = pa.schema([(str(c), pa.string()) for c in chunk.columns])
            table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
            yield table, _decode_csv(chunk, bundle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from exc


def _check_columns(path: Path, bundle: Bundle, columns: list[str]) -> None:
    missing = [f.name for f in bundle.signature.fields if not f.nullable and f.name not in columns]
    if missing:
        raise DataError(
            f"{path}: required column(s) missing: {', '.join(missing)}",
            hint="the model needs: " + ", ".join(bundle.signature.names),
        )
    taken = _output_columns(bundle) & set(columns)
    if taken:
        raise DataError(
            f"{path}: column(s) {', '.join(sorted(taken))} would be overwritten by the output",
            hint="rename them in the input file",
        )


def _decode_csv(chunk: pd.DataFrame, bundle: Bundle) -> pd.DataFrame:
    """Text cells to the values a JSON client would send: numbers for numeric fields (a cell
    that is not a number stays text and is reported), text for everything else."""
    import pandas as pd

    out = {}
    for spec in bundle.signature.fields:
        if spec.name not in chunk.columns:
            continue
        text = chunk[spec.name]
        if spec.type in ("float", "int"):
            parsed, bad = vals.parse_column(spec.type, text)
            if bad.any():
                values = parsed.astype(object)
                values[bad] = text.to_numpy(dtype=object)[bad]
                out[spec.name] = pd.Series(values, index=chunk.index, dtype=object)
            else:
                out[spec.name] = pd.Series(parsed, index=chunk.index, dtype=float)
        else:
            out[spec.name] = text.astype(object).where(text.notna(), None)
    return pd.DataFrame(out, index=chunk.index)


# --------------------------------------------------------------------------------- scoring
def _output_columns(bundle: Bundle) -> set[str]:
    classes = bundle.meta["model"].get("classes") or []
    return {scoring.PREDICTION, scoring.FLAGS, *(scoring.proba_column(c) for c in classes)}


def _scored_table(
    table: pa.Table,
    ok: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str] | None,
    flags: np.ndarray,
    task: str,
) -> pa.Table:
    import pyarrow as pa

    kept = table if ok.all() else table.filter(pa.array(ok))
    label_type = pa.string() if task == "classification" else pa.float64()
    kept = kept.append_column(scoring.PREDICTION, pa.array(pred, type=label_type))
    if proba is not None and classes:
        for i, cls in enumerate(classes):
            kept = kept.append_column(scoring.proba_column(cls), pa.array(proba[:, i]))
    return kept.append_column(scoring.FLAGS, pa.array(flags, type=pa.string()))


class _Writer:
    """Streams scored chunks into an already-open (atomic) output file."""

    def __init__(self, fmt: str, fh: IO[Any]) -> None:
        self.fmt, self.fh = fmt, fh
        self.parquet: Any = None
        self.header = True

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.fh, table.schema)  # snappy, as pandas
            self.parquet.write_table(table.cast(self.parquet.schema))
        else:
            text = table.to_pandas().to_csv(index=False, header=self.header, lineterminator="\n")
            self.fh.write(text.encode("utf-8"))
            self.header = False

    def close(self, empty: pa.Table | None) -> None:
        if self.parquet is None and empty is not None:
            self.write(empty)
        if self.parquet is not None:
            self.parquet.close()


def _numeric_columns(bundle: Bundle, declared: Mapping[str, str] | None) -> dict[str, str]:
    """Column -> declared numeric type: the model's fields, then declared pass-through ones."""
    numeric = {f.name: f.type for f in bundle.signature.fields if f.type in ("float", "int")}
    for name, ctype in (declared or {}).items():
        if ctype in ("float", "int") and name not in bundle.signature.names:
            numeric[name] = ctype
    return numeric


def _decode_passthrough(
    table: pa.Table, numeric: Mapping[str, str], names: list[str], typed: bool
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """A CSV chunk (all text) with its declared numeric columns as float64 when `typed` (a
    Parquet output), and the pass-through cells that are not numbers: (row in chunk, column,
    type). The model's own fields are checked by `validate_columns`; their bad rows are never
    written, so their unparsed cells are never seen."""
    import pyarrow as pa

    unreadable: list[tuple[int, str, str]] = []
    for name, ctype in numeric.items():
        if name not in table.column_names:
            continue
        text = table.column(name).to_pandas()
        parsed, invalid = vals.parse_column(ctype, text)
        if name not in names:
            unreadable += [(int(i), name, ctype) for i in np.flatnonzero(invalid)]
        if typed:
            index = table.column_names.index(name)
            column = pa.array(np.where(invalid, np.nan, parsed), type=pa.float64())
            table = table.set_column(index, pa.field(name, pa.float64()), column)
    if typed:  # the pandas metadata of the text chunk would read the numbers back as text
        table = table.replace_schema_metadata(None)
    return table, sorted(unreadable)


def _without(checked: Any, rows: np.ndarray) -> Any:
    """`checked` (ColumnsValidated) with `rows` (a mask over the chunk) made bad too."""
    from dataclasses import replace

    keep = ~rows
    return replace(
        checked,
        ok=checked.ok & keep,
        frame=checked.frame.loc[keep[checked.ok]].reset_index(drop=True),
    )


@dataclass(frozen=True)
class _Scoring:
    """What scoring a chunk needs besides the bundle: the same for every chunk of a file, and
    small enough to send to a Dask worker (which loads the bundle itself: `_worker_bundle`)."""

    task: str
    classes: list[str] | None
    reject: bool
    numeric: Mapping[str, str]
    csv_in: bool
    out_fmt: str


@dataclass
class _Chunk:
    """One chunk's outcome: what `predict_file` adds to its result and writes."""

    rows: int
    columns: list[str]
    bad: list[BadRow]
    scored: pa.Table | None  # None: not scored (the file is already refused)
    n_ok: int
    flagged: int


def _score_chunk(
    bundle: Bundle,
    how: _Scoring,
    table: pa.Table,
    fields: pd.DataFrame,
    offset: int,
    *,
    score: bool = True,
    part: str | None = None,
    base: int = 0,
) -> _Chunk:
    """Validate and (when `score`) score one chunk whose first row is data row `offset` + 1 of
    its file (`part`, a folder's file, whose first row is row `base` + 1 of the folder): the
    one definition of a chunk's output, wherever it runs."""
    import pandas as pd

    def bad_row(index: int, name: str | None, message: str) -> BadRow:
        row = offset + index + 1
        return BadRow(base + row, name, message, part, row if part else None)

    checked = validate_columns(bundle.signature, fields, reject_unseen=how.reject)
    bad = [bad_row(e["index"], e["field"], e["message"]) for e in checked.errors]
    if how.csv_in:
        table, unreadable = _decode_passthrough(
            table, how.numeric, bundle.signature.names, typed=how.out_fmt == "parquet"
        )
        if unreadable:
            rows = np.zeros(table.num_rows, dtype=bool)
            rows[[i for i, _, _ in unreadable]] = True
            checked = _without(checked, rows)
            bad = sorted(
                bad
                + [
                    bad_row(i, name, f"expected a number (declared {ctype})")
                    for i, name, ctype in unreadable
                ],
                key=lambda b: b.row,
            )
    chunk = _Chunk(table.num_rows, list(table.column_names), bad, None, 0, 0)
    if not score:
        return chunk
    classes = how.classes
    n_ok = int(checked.ok.sum())
    if n_ok:
        pred, proba = scoring.predict(bundle.model, checked.frame, how.task)
    else:
        pred, proba = np.empty(0, dtype=object if classes else float), None
        if classes:
            proba = np.empty((0, len(classes)))
    flags = checked.joined_flags()
    chunk.scored = _scored_table(table, checked.ok, pred, proba, classes, flags, how.task)
    chunk.n_ok = n_ok
    chunk.flagged = int(np.count_nonzero(~pd.isna(flags)))
    return chunk


def _local_chunks(
    bundle: Bundle,
    files: list[Path],
    folder: bool,
    how: _Scoring,
    chunk_rows: int,
    failing: list[bool],
) -> Iterator[_Chunk]:
    """The chunks of every file in turn (a file's last chunk may be short: no chunk spans two
    files), scored here."""
    base = 0
    for path in files:
        offset, part = 0, path.name if folder else None
        for table, fields in _chunks(path, chunk_rows, bundle):
            yield _score_chunk(
                bundle, how, table, fields, offset, score=not failing[0], part=part, base=base
            )
            offset += table.num_rows
        base += offset


# ---------------------------------------------------------------------- on a Dask cluster
def _partitions(rows: int, chunk_rows: int, partition_rows: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of whole chunks (the last may be short), about
    `partition_rows` each: chunk boundaries are those of the local run, so the scored chunks,
    and the file written from them, are the same bytes."""
    per = max(1, partition_rows // chunk_rows) * chunk_rows
    return [(start, min(start + per, rows)) for start in range(0, rows, per)]


_BUNDLES: dict[tuple[str, str], Bundle] = {}  # per worker process: loaded (and verified) once


def _worker_bundle(path: str, digest: str) -> Bundle:
    key = (path, digest)
    if key not in _BUNDLES:
        _BUNDLES.clear()
        _BUNDLES[key] = load_bundle(Path(path), digest)
    return _BUNDLES[key]


def _score_partition(
    bundle_path: str,
    digest: str,
    source: str,
    start: int,
    stop: int,
    chunk_rows: int,
    how: _Scoring,
    part: str | None = None,
    base: int = 0,
) -> list[_Chunk]:
    """On a worker: score rows [start, stop) of a Parquet file (`part` of a folder, starting
    at the folder's row `base` + 1) in the local run's chunks, reading only the row groups
    they overlap, a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bundle = _worker_bundle(bundle_path, digest)
    handle = pq.ParquetFile(source, pre_buffer=False)
    meta = handle.metadata
    groups, first, at = [], None, 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if at < stop and at + n > start:
            groups.append(g)
            first = at if first is None else first
        at += n
    present = [n for n in bundle.signature.names if n in handle.schema_arrow.names]
    out: list[_Chunk] = []
    buffer: list[pa.RecordBatch] = []
    held, position, offset = 0, first or 0, start
    for batch in handle.iter_batches(batch_size=chunk_rows, row_groups=groups):
        lo, hi = max(0, start - position), min(batch.num_rows, stop - position)
        position += batch.num_rows
        if hi > lo:
            buffer.append(batch.slice(lo, hi - lo))
            held += hi - lo
        while held >= chunk_rows or (held and position >= stop):
            size = min(held, chunk_rows)
            table = pa.Table.from_batches(buffer).combine_chunks()
            piece = table.slice(0, size)
            buffer, held = table.slice(size).to_batches(), held - size
            fields = piece.select(present).to_pandas()
            out.append(_score_chunk(bundle, how, piece, fields, offset, part=part, base=base))
            offset += size
        if position >= stop:
            break
    return out


def _cluster_chunks(
    client: Any,
    bundle: Bundle,
    files: list[Path],
    folder: bool,
    how: _Scoring,
    chunk_rows: int,
    partition_rows: int,
) -> Iterator[_Chunk]:
    """Every file's partitions (none spans two files), scored on the cluster, in order."""
    import pyarrow.parquet as pq

    from pipeline.compute import ordered_map

    items, base, model = [], 0, (str(bundle.path.resolve()), bundle.digest)
    for path in files:
        rows = pq.ParquetFile(path).metadata.num_rows
        part = path.name if folder else None
        items += [
            (*model, str(path.resolve()), a, b, chunk_rows, how, part, base)
            for a, b in _partitions(rows, chunk_rows, partition_rows)
        ]
        base += rows
    for chunks in ordered_map(client, _score_partition, items, name="mlops-predict"):
        yield from chunks


def predict_file(
    bundle: Bundle,
    source: Path,
    output: Path,
    settings: BatchSettings,
    declared: Mapping[str, str] | None = None,
    compute: ComputeSpec | None = None,
) -> BatchResult:
    """Score `source` into `output` under `settings`; raises DataError (nothing written) when
    `on_bad_rows` is fail and any row is bad. `declared` (column -> type, the dataset's
    declaration) types a CSV's pass-through columns (see the module docstring).

    `source` may be a folder of Parquet files (a partitioned dataset, `tables.parquet_parts`):
    they are scored as one dataset, in name order, into the one `output` file (atomic as for
    a file); every file must have the same schema; a bad row is numbered over the folder and
    also named by its file and row there.

    With `compute` of kind dask, a Parquet source of at least `compute.min_rows` rows is
    scored on the cluster (a smaller one here, without connecting to it): whole chunks in
    partitions of about `compute.partition_rows` rows, each task reading only its row groups;
    the scored chunks come back in file order, a bounded number at a time, and are written
    here exactly as the local run writes them (same file, same bytes). A CSV is scored here."""
    out_fmt = file_format(output)
    folder = source.is_dir()
    csv_in = not folder and file_format(source) == "csv"
    if folder:
        files = _folder_files(source, output, bundle)
    elif not source.is_file():
        state = "is not a file" if source.exists() else "does not exist"
        raise DataError(f"{source}: the file to score {state}", hint="check the input path")
    else:
        files = [source]
    task = bundle.task
    how = _Scoring(
        task=task,
        classes=bundle.meta["model"].get("classes") if task == "classification" else None,
        reject=settings.unseen_policy == "reject",
        numeric=_numeric_columns(bundle, declared),
        csv_in=csv_in,
        out_fmt=out_fmt,
    )
    distributed = compute is not None and compute.kind == "dask" and not csv_in
    if distributed:
        from pipeline.compute import on_cluster

        if not folder:  # a folder's files were checked by _folder_files
            _check_parquet(source, bundle)
        distributed = on_cluster(compute, _parquet_rows(files))
    with contextlib.ExitStack() as stack:
        failing = [False]
        if distributed:
            assert compute is not None and compute.partition_rows is not None
            from pipeline.compute import session

            client = stack.enter_context(session(compute))
            chunks = _cluster_chunks(
                client, bundle, files, folder, how, settings.chunk_rows, compute.partition_rows
            )
        else:
            chunks = _local_chunks(bundle, files, folder, how, settings.chunk_rows, failing)
        return _write_chunks(chunks, source, output, settings, bundle, failing)


def _parquet_rows(files: list[Path]) -> int:
    """Rows of checked Parquet files, from their footers (no data is read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in files)


def _check_parquet(source: Path, bundle: Bundle) -> pa.Schema:
    """What `_chunks` checks before the first chunk, for a file scored on a cluster or in a
    folder; returns the file's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.ParquetFile(source).schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{source}: not a readable Parquet file: {exc}") from exc
    _check_columns(source, bundle, schema.names)
    return schema


def _folder_files(source: Path, output: Path, bundle: Bundle) -> list[Path]:
    """A folder's Parquet files, each checked before any is scored: readable, the columns the
    model needs, and one schema for all (they are one dataset, written as one file)."""
    files = parquet_parts(source)
    if not files:
        raise DataError(
            f"{source}: no .parquet file in the folder to score",
            hint="a folder is scored as one Parquet dataset (its *.parquet files, by name); "
            "score a CSV file by naming it",
        )
    if output.resolve().parent == source.resolve():
        raise DataError(
            f"{output}: the output would be written into the input folder {source}",
            hint="write it outside the folder: the next run would score it as input",
        )
    first = _check_parquet(files[0], bundle)
    for path in files[1:]:
        schema = _check_parquet(path, bundle)
        if not schema.equals(first, check_metadata=False):
            ours = {(f.name, str(f.type)) for f in schema}
            differ = sorted({n for n, _ in ours ^ {(f.name, str(f.type)) for f in first}})
            shown = ", ".join(
                f"{n} ({_type_of(schema, n)} here, {_type_of(first, n)} there)" for n in differ
            )
            raise DataError(
                f"{path}: its columns differ from {files[0].name}'s: "
                + (shown or "the same columns in another order"),
                hint="the files of a folder are scored as one dataset: give them one schema",
            )
    return files


def _type_of(schema: pa.Schema, name: str) -> str:
    index = schema.get_field_index(name)
    return "absent" if index < 0 else str(schema.types[index])


def _write_chunks(
    chunks: Iterator[_Chunk],
    source: Path,
    output: Path,
    settings: BatchSettings,
    bundle: Bundle,
    failing: list[bool],
) -> BatchResult:
    """Add up the chunks, in file order, into the result, and write the scored ones into
    `output` atomically (nothing, on a refused file or any error)."""
    result = BatchResult()
    empty: pa.Table | None = None
    with atomic_open(output, "wb") as fh:
        writer = _Writer(file_format(output), fh)
        for chunk in chunks:
            if not result.passthrough and chunk.columns:
                result.passthrough = [c for c in chunk.columns if c not in bundle.signature.names]
            result.rows += chunk.rows
            result.bad += chunk.bad
            if chunk.bad and settings.on_bad_rows == "fail":
                failing[0] = True
            if failing[0] or chunk.scored is None:
                continue  # keep validating, to list every bad row
            result.scored += chunk.n_ok
            result.flagged += chunk.flagged
            if chunk.n_ok:
                writer.write(chunk.scored)
            elif empty is None:
                empty = chunk.scored
        if failing[0]:
            raise BadRowsError(
                f"{source}: {len(result.bad_rows)} bad row(s) of {result.rows}; nothing "
                "written (on_bad_rows: fail):\n" + render_bad(result.bad),
                result,
                hint="fix the rows, or score the rest with --on-bad-rows skip "
                "(batch.on_bad_rows in conf/deploy/)",
            )
        if result.rows == 0:
            raise DataError(f"{source}: the file has no data rows; nothing written")
        writer.close(empty if result.scored == 0 else None)
    return result


def render_bad(bad: list[BadRow], limit: int = MAX_SHOWN) -> str:
    lines = [f"  {b.render()}" for b in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more problem(s) (--report FILE lists all)")
    return "\n".join(lines)


def write_report(path: Path, result: BatchResult, meta: Mapping[str, Any]) -> None:
    write_json(path, {**meta, **result.to_dict()})
