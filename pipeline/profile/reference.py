"""The drift reference: everything monitoring needs to know about a release's training data.

A release carries what it takes to judge it later: `package` summarises the champion's training
split with :func:`training_reference` and writes the result into the bundle (``reference/``,
digested in ``bundle.json`` like every other file), and monitoring reads it from the bundle it
monitors, whatever has been trained since. Hence a foundation module: the deploy layer builds it,
the monitor layer reads it, neither imports the other.

Per numeric column it keeps the sorted non-null values (float64), counts, distinct count, mean
and std; per categorical column the category counts. In sketch mode (``build_reference(...,
mode="sketch")``, for data too large to keep) a numeric column keeps a weighted quantile sketch
instead of every value; bundles always carry the exact reference (see `training_reference`).
Both modes keep a small fixed histogram per numeric column (reference quantile bins) for reports.

On disk a reference is a directory::

    reference.json   manifest: columns, statistics, category counts, array offsets, sha256s
    values.npy       float64, every numeric column's sorted values, concatenated (exact mode)
    sketch.npy       float64, the sketches' values, concatenated (sketch mode)
    weights.npy      int64, the sketches' weights, aligned with sketch.npy (sketch mode)

Saving is byte-reproducible (canonical JSON, no timestamps) and atomic per file; loading never
unpickles (``allow_pickle=False``), memory-maps the arrays and checks their sha256.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.io import atomic_write_bytes, read_json, sha256_bytes, sha256_file, write_json
from pipeline.profile.layout import MANIFEST
from pipeline.profile.quantile import DEFAULT_TAIL, QuantileSketch
from pipeline.profile.sample import BINNED_MIN_DISTINCT, Frequencies, Sample, run_lengths
from pipeline.settings import DatasetSpec

ColumnKind = Literal["numeric", "categorical"]
Mode = Literal["exact", "sketch"]
FORMAT = "gitops-mlops/drift-reference"
VERSION = 1
REFERENCE_SKETCH_K = 65_536  # reference sketches are built once from full data: make them fine
HISTOGRAM_QUANTILES = np.linspace(0.05, 0.95, 19)  # interior edges of the fixed histogram


# --------------------------------------------------------------------------------------------
# Column conversion, shared with the drift computation for current data
# --------------------------------------------------------------------------------------------


def numeric_values(series: pd.Series, name: str, side: str) -> tuple[np.ndarray, int, bool]:
    """The finite values of a numeric column (a fresh array), its null+inf count, integer dtype.

    Evidently replaces +-inf by NaN and drops every null before testing, so do we; infinities
    count as nulls in the null share.
    """
    if not (pd.api.types.is_numeric_dtype(series.dtype) or series.dtype == object):
        raise DataError(f"{side} column {name!r} must be numeric, got dtype {series.dtype}")
    try:
        raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{side} column {name!r} must hold numbers only: {exc}") from exc
    finite = raw[np.isfinite(raw)]
    integer = bool(pd.api.types.is_integer_dtype(series.dtype))
    return finite, int(raw.size - finite.size), integer


def category_label(value: Any) -> str:
    """One canonical string per category, so 1, 1.0 and np.int64(1) are the same category."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def category_counts(series: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted category labels, their counts and the number of nulls (+-inf count as null)."""
    counts = series.value_counts(dropna=True, sort=False)
    merged: dict[str, int] = {}
    for value, count in zip(counts.index, counts.to_numpy(), strict=True):
        if count == 0 or (isinstance(value, float | np.floating) and math.isinf(value)):
            continue  # unobserved levels of a pandas Categorical are no category here
        label = category_label(value)
        merged[label] = merged.get(label, 0) + int(count)
    labels = np.asarray(sorted(merged), dtype=str)
    values = np.asarray([merged[label] for label in labels], dtype=np.int64)
    return labels, values, int(series.size - values.sum())


def pandas_std(values: np.ndarray) -> float:
    """Population std computed as pandas computes ``Series.std(ddof=0)`` (Evidently's np.std)."""
    if values.size == 0:
        return 0.0
    mean = values.sum() / values.size
    return float(np.sqrt(((mean - values) ** 2).sum() / values.size))


def fixed_histogram(sample: Sample, edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e0), [e0, e1), ..., [e_last, inf): the report's fixed bins."""
    inner = sample.count_below(edges, "left")
    return np.diff(np.concatenate(([0], inner, [sample.n])))


# --------------------------------------------------------------------------------------------
# The reference
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericReference:
    """A numeric reference column: full sorted values (exact mode) or a sketch (sketch mode)."""

    name: str
    rows: int
    nulls: int
    distinct: int
    mean: float
    std: float
    minimum: float
    maximum: float
    integer: bool
    values: np.ndarray | None  # sorted finite values (exact mode)
    sketch: Sample | None  # weighted sketch (sketch mode)
    small_values: tuple[np.ndarray, np.ndarray] | None  # distinct values+counts if <= 20 of them
    histogram_edges: np.ndarray
    histogram_counts: np.ndarray
    kind: Literal["numeric"] = "numeric"

    @property
    def count(self) -> int:
        """Non-null values."""
        return self.rows - self.nulls

    @functools.cached_property
    def sample(self) -> Sample:
        """The column as a Sample (built once): exact values when kept, else the sketch."""
        if self.values is not None:
            return Sample(
                self.values,
                integer=self.integer,
                known_distinct=self.small_values,
                distinct_count=self.distinct,
            )
        assert self.sketch is not None
        return self.sketch


@dataclass(frozen=True)
class CategoricalReference:
    """A categorical reference column: sorted category labels and their counts."""

    name: str
    rows: int
    nulls: int
    categories: np.ndarray  # str, sorted
    counts: np.ndarray  # int64
    kind: Literal["categorical"] = "categorical"

    @property
    def count(self) -> int:
        return self.rows - self.nulls

    @property
    def distinct(self) -> int:
        return int(self.categories.size)

    def frequencies(self) -> Frequencies:
        return Frequencies(keys=self.categories, counts=self.counts)


ColumnReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class Reference:
    """What monitoring compares against; build with :func:`build_reference`."""

    mode: Mode
    rows: int
    columns: Mapping[str, ColumnReference]

    @property
    def kinds(self) -> dict[str, ColumnKind]:
        return {name: col.kind for name, col in self.columns.items()}

    def save(self, directory: str | Path) -> None:
        """Write the manifest and arrays (byte-reproducible; each file replaced atomically)."""
        _save(self, Path(directory))

    @classmethod
    def load(cls, directory: str | Path, *, verify: bool = True) -> Reference:
        """Read a saved reference; arrays are memory-mapped, never unpickled."""
        return _load(Path(directory), verify=verify)


def monitored_columns(dataset: DatasetSpec) -> dict[str, ColumnKind]:
    """The columns monitoring compares with the reference, with their kind.

    Feature columns only: the target arrives later (as `__label__`, judged by the performance
    checks), id and ignore columns carry no distribution. Numeric types (float, int) are numeric
    columns (the drift rule still tests low-cardinality ones as categories); category and bool
    are categorical. Datetime features are left out on purpose: under a time-based split every
    production date lies after every training date, so a test on them would flag every window;
    their time is already the window's own axis (`__time__`).
    """
    kinds: dict[str, ColumnKind] = {}
    for col in dataset.features:
        if col.is_numeric:
            kinds[col.name] = "numeric"
        elif col.is_categorical:
            kinds[col.name] = "categorical"
    return kinds


def training_reference(train: pd.DataFrame, dataset: DatasetSpec) -> Reference:
    """The reference a bundle carries: its training split's monitored columns, exact mode.

    Always exact, whatever `monitor.drift.mode` says: the exact reference holds every value, so
    a release can later be judged in either mode (sketch mode sketches the current side and reads
    the reference's memory-mapped values), and a monitoring setting never changes a bundle's id.
    """
    return build_reference(train, monitored_columns(dataset), mode="exact")


def build_reference(
    data: pd.DataFrame | pd.Series | np.ndarray,
    columns: Mapping[str, ColumnKind],
    *,
    mode: Mode = "exact",
    sketch_k: int = REFERENCE_SKETCH_K,
    sketch_tail: int = DEFAULT_TAIL,
) -> Reference:
    """Summarise the reference data once (package time) for later drift checks.

    ``data`` may be a single column (e.g. a model's reference predictions) when ``columns`` names
    exactly one column. Raises DataError for a missing column, a non-numeric "numeric" column or a
    column without any non-null value (no distribution to compare against).
    """
    frame = _as_frame(data, columns)
    if mode not in ("exact", "sketch"):
        raise DataError(f"reference mode must be 'exact' or 'sketch', got {mode!r}")
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise DataError(f"reference data lacks declared column(s): {', '.join(map(repr, missing))}")
    built: dict[str, ColumnReference] = {}
    for name, kind in columns.items():
        if kind == "numeric":
            built[name] = _numeric_reference(frame[name], name, mode, sketch_k, sketch_tail)
        elif kind == "categorical":
            built[name] = _categorical_reference(frame[name], name)
        else:
            raise DataError(
                f"column {name!r}: kind must be 'numeric' or 'categorical', got {kind!r}"
            )
    return Reference(mode=mode, rows=len(frame), columns=built)


def _as_frame(data: Any, columns: Mapping[str, ColumnKind]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if len(columns) != 1:
        raise DataError("a single column of reference data needs exactly one declared column")
    (name,) = columns
    return pd.DataFrame(
        {name: np.asarray(data) if not isinstance(data, pd.Series) else data.values}
    )


def _numeric_reference(
    series: pd.Series, name: str, mode: Mode, k: int, tail: int
) -> NumericReference:
    finite, nulls, integer = numeric_values(series, name, "reference")
    if finite.size == 0:
        raise DataError(
            f"reference column {name!r} has no non-null finite value to compare against"
        )
    std = pandas_std(finite)
    mean = float(finite.sum() / finite.size)
    finite.sort()
    distinct_values, distinct_counts = run_lengths(finite)
    small = (
        (distinct_values, distinct_counts) if distinct_values.size <= BINNED_MIN_DISTINCT else None
    )
    exact = Sample(
        finite, integer=integer, known_distinct=small, distinct_count=distinct_values.size
    )
    edges = np.unique(np.quantile(finite, HISTOGRAM_QUANTILES))
    sketch = None
    if mode == "sketch":
        qs = QuantileSketch(k=k, tail=tail)
        qs.update(finite, is_sorted=True)
        sketch = qs.to_sample(integer=integer, distinct=small, distinct_count=distinct_values.size)
    return NumericReference(
        name=name,
        rows=int(series.size),
        nulls=nulls,
        distinct=int(distinct_values.size),
        mean=mean,
        std=std,
        minimum=float(finite[0]),
        maximum=float(finite[-1]),
        integer=integer,
        values=finite if mode == "exact" else None,
        sketch=sketch,
        small_values=small,
        histogram_edges=edges,
        histogram_counts=fixed_histogram(exact, edges),
    )


def _categorical_reference(series: pd.Series, name: str) -> CategoricalReference:
    labels, counts, nulls = category_counts(series)
    if counts.sum() == 0:
        raise DataError(f"reference column {name!r} has no non-null value to compare against")
    return CategoricalReference(
        name=name, rows=int(series.size), nulls=nulls, categories=labels, counts=counts
    )


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------


class _Arrays:
    """Concatenates column arrays into one file per dtype, remembering offsets."""

    def __init__(self, dtype: type) -> None:
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self.length = 0

    def add(self, array: np.ndarray) -> dict[str, int]:
        slot = {"offset": self.length, "length": int(array.size)}
        self.parts.append(np.ascontiguousarray(array, dtype=self.dtype))
        self.length += int(array.size)
        return slot

    def write(self, path: Path) -> dict[str, Any]:
        buffer = io.BytesIO()
        np.save(
            buffer,
            np.concatenate(self.parts) if self.parts else np.zeros(0, self.dtype),
            allow_pickle=False,
        )
        data = buffer.getvalue()
        atomic_write_bytes(path, data)
        return {"file": path.name, "sha256": sha256_bytes(data), "length": self.length}


def _save(reference: Reference, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "values": _Arrays(np.float64),
        "sketch": _Arrays(np.float64),
        "weights": _Arrays(np.int64),
    }
    columns = [_column_manifest(col, arrays) for col in reference.columns.values()]
    files = {}
    for key, store in arrays.items():
        if store.parts:
            files[key] = store.write(directory / f"{key}.npy")
        else:
            (directory / f"{key}.npy").unlink(missing_ok=True)
    write_json(
        directory / MANIFEST,
        {
            "format": FORMAT,
            "version": VERSION,
            "mode": reference.mode,
            "rows": reference.rows,
            "arrays": files,
            "columns": columns,
        },
    )


def _column_manifest(col: ColumnReference, arrays: dict[str, _Arrays]) -> dict[str, Any]:
    if isinstance(col, CategoricalReference):
        return {
            "name": col.name,
            "kind": col.kind,
            "rows": col.rows,
            "nulls": col.nulls,
            "categories": col.categories.tolist(),
            "counts": col.counts.tolist(),
        }
    entry: dict[str, Any] = {
        "name": col.name,
        "kind": col.kind,
        "rows": col.rows,
        "nulls": col.nulls,
        "distinct": col.distinct,
        "mean": col.mean,
        "std": col.std,
        "min": col.minimum,
        "max": col.maximum,
        "integer": col.integer,
        "histogram": {
            "edges": col.histogram_edges.tolist(),
            "counts": col.histogram_counts.tolist(),
        },
        "small_values": None
        if col.small_values is None
        else {"values": col.small_values[0].tolist(), "counts": col.small_values[1].tolist()},
    }
    if col.values is not None:
        entry["values"] = arrays["values"].add(col.values)
    if col.sketch is not None:
        s = col.sketch
        assert s.weights is not None
        entry["sketch"] = {
            **arrays["sketch"].add(s.values),
            "rank_error": s.rank_error,
            "lo": _finite_or_none(s.lo),
            "hi": _finite_or_none(s.hi),
        }
        arrays["weights"].add(s.weights)
    return entry


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _load(directory: Path, *, verify: bool) -> Reference:
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"no drift reference at {directory} (missing {MANIFEST})")
    manifest = read_json(manifest_path)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(f"{manifest_path}: not a {FORMAT} version {VERSION} manifest")
    arrays = {
        key: _load_array(directory, key, spec, verify) for key, spec in manifest["arrays"].items()
    }
    columns: dict[str, ColumnReference] = {}
    for entry in manifest["columns"]:
        columns[entry["name"]] = _column_from_manifest(entry, arrays)
    return Reference(mode=manifest["mode"], rows=int(manifest["rows"]), columns=columns)


def _load_array(directory: Path, key: str, spec: Mapping[str, Any], verify: bool) -> np.ndarray:
    path = directory / spec["file"]
    if not path.is_file():
        raise DataError(f"drift reference {directory}: missing array file {spec['file']}")
    if verify and sha256_file(path) != spec["sha256"]:
        raise DataError(f"drift reference {directory}: {spec['file']} does not match its sha256")
    try:
        array = np.load(path, mmap_mode="r" if spec["length"] else None, allow_pickle=False)
    except ValueError as exc:  # e.g. an object array, which would need unpickling
        raise DataError(
            f"drift reference {directory}: {spec['file']} is not a plain array: {exc}"
        ) from exc
    expected = np.int64 if key == "weights" else np.float64
    if array.dtype != expected:
        raise DataError(
            f"drift reference {directory}: {spec['file']} holds {array.dtype}, "
            f"expected {np.dtype(expected)}"
        )
    if array.ndim != 1 or array.size != spec["length"]:
        raise DataError(f"drift reference {directory}: {spec['file']} has an unexpected shape")
    return array


def _column_from_manifest(
    entry: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> ColumnReference:
    if entry["kind"] == "categorical":
        return CategoricalReference(
            name=entry["name"],
            rows=entry["rows"],
            nulls=entry["nulls"],
            categories=np.asarray(entry["categories"], dtype=str),
            counts=np.asarray(entry["counts"], dtype=np.int64),
        )
    small = entry["small_values"]
    small_values = (
        None
        if small is None
        else (
            np.asarray(small["values"], dtype=np.float64),
            np.asarray(small["counts"], dtype=np.int64),
        )
    )
    values = _slice(arrays, "values", entry.get("values"))
    sketch = None
    if "sketch" in entry:
        spec = entry["sketch"]
        sketch = Sample(
            values=_slice(arrays, "sketch", spec),
            weights=_slice(arrays, "weights", spec),
            integer=entry["integer"],
            rank_error=spec["rank_error"],
            lo=-math.inf if spec["lo"] is None else spec["lo"],
            hi=math.inf if spec["hi"] is None else spec["hi"],
            known_distinct=small_values,
            distinct_count=entry["distinct"],
        )
    return NumericReference(
        name=entry["name"],
        rows=entry["rows"],
        nulls=entry["nulls"],
        distinct=entry["distinct"],
        mean=entry["mean"],
        std=entry["std"],
        minimum=entry["min"],
        maximum=entry["max"],
        integer=entry["integer"],
        values=values,
        sketch=sketch,
        small_values=small_values,
        histogram_edges=np.asarray(entry["histogram"]["edges"], dtype=np.float64),
        histogram_counts=np.asarray(entry["histogram"]["counts"], dtype=np.int64),
    )


def _slice(arrays: Mapping[str, np.ndarray], key: str, spec: Mapping[str, Any] | None) -> Any:
    if spec is None:
        return None
    start = spec["offset"]
    return arrays[key][start : start + spec["length"]]
