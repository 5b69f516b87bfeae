"""Sketch mode: drift on data too large to hold, in bounded memory.

The current data is read in batches (``pyarrow.parquet.ParquetFile.iter_batches`` for files) and
folded into one summary per column:

* numeric: row and null counts, a :class:`~pipeline.monitor.quantile.QuantileSketch` (certified
  rank error, exact extremes) and exact per-value counts while the column has at most
  ``distinct_limit`` distinct values;
* categorical: exact category counts.

Memory is the batch (``batch_rows`` x columns) plus about ``k * log2(n/k)`` floats per numeric
column, whatever the number of rows. The statistics are then computed by the same methods as in
exact mode. Category counts and low-cardinality values are exact, so those verdicts equal exact
mode's; for sketched high-cardinality numeric columns every result carries ``error_bound``, a
certified bound on its distance from the exact-mode value (see :mod:`pipeline.monitor.bounds`).
Methods that need every value (Anderson-Darling, Cramér-von Mises, Mann-Whitney, t-test, numeric
Hellinger, TVD) are refused for numeric columns in sketch mode by the settings check.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import DataError
from pipeline.monitor import stats as st
from pipeline.monitor.drift_evaluation import (
    CurrentColumn,
    check_inputs,
    evaluate_column,
    exact_drift,
)
from pipeline.monitor.drift_results import DriftReport, summarise
from pipeline.params import ComputeSpec, DriftSettings
from pipeline.profile.quantile import QuantileSketch
from pipeline.profile.reference import (
    ColumnReference,
    Reference,
    category_counts,
    category_label,
    numeric_values,
)
from pipeline.profile.sample import run_lengths
from pipeline.tables import parquet_parts


class NumericSummary:
    """Streaming summary of one numeric column: counts, quantile sketch, small value counts."""

    def __init__(self, name: str, settings: DriftSettings) -> None:
        self.name = name
        self.rows = 0
        self.nulls = 0
        self.integer = True
        self.sketch = QuantileSketch(k=settings.sketch.k, tail=settings.sketch.tail)
        self.limit = settings.sketch.distinct_limit
        self.distinct: dict[float, int] | None = {}

    def update(self, finite: np.ndarray, rows: int, integer: bool) -> None:
        """Fold in one batch: its finite values (any order, a private copy) and its row count."""
        self.rows += rows
        self.nulls += rows - int(finite.size)
        self.integer = self.integer and integer
        if finite.size == 0:
            return
        finite.sort()
        self._count_values(finite)
        self.sketch.update(finite, is_sorted=True)

    def merge(self, other: NumericSummary) -> None:
        """Fold in the summary of another partition: counts add up, the sketches merge
        (`QuantileSketch.merge`: their certified errors add up), and the exact value counts
        are kept while the union stays within the limit."""
        self.rows += other.rows
        self.nulls += other.nulls
        self.integer = self.integer and other.integer
        self.sketch.merge(other.sketch)
        if self.distinct is None or other.distinct is None:
            self.distinct = None
            return
        for value, count in other.distinct.items():
            self.distinct[value] = self.distinct.get(value, 0) + count
        if len(self.distinct) > self.limit:
            self.distinct = None

    def _count_values(self, sorted_values: np.ndarray) -> None:
        if self.distinct is None:
            return
        values, counts = run_lengths(sorted_values)
        if values.size > self.limit:
            self.distinct = None
            return
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self.distinct[value] = self.distinct.get(value, 0) + count
        if len(self.distinct) > self.limit:
            self.distinct = None

    def current(self) -> CurrentColumn:
        """The summary as the current side of the column (exact when the values are few)."""
        if self.rows == self.nulls:
            return CurrentColumn(rows=self.rows, nulls=self.nulls, data=None)
        if self.distinct is not None:
            keys = np.asarray(sorted(self.distinct), dtype=np.float64)
            counts = np.asarray([self.distinct[k] for k in keys.tolist()], dtype=np.int64)
            sample = st.Sample(
                keys,
                weights=counts,
                integer=self.integer,
                known_distinct=(keys, counts),
                distinct_count=int(keys.size),
            )
        else:
            sample = self.sketch.to_sample(integer=self.integer)
        return CurrentColumn(rows=self.rows, nulls=self.nulls, data=sample)


class CategoricalSummary:
    """Streaming summary of one categorical column: exact counts per category label."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows = 0
        self.counts: dict[str, int] = {}

    def add(self, labels: Any, counts: Any, rows: int) -> None:
        self.rows += rows
        for label, count in zip(labels, counts, strict=True):
            self.counts[label] = self.counts.get(label, 0) + int(count)

    def current(self) -> CurrentColumn:
        total = sum(self.counts.values())
        keys = np.asarray(sorted(self.counts), dtype=str)
        data = None
        if total:
            data = st.Frequencies(
                keys=keys, counts=np.asarray([self.counts[k] for k in keys], dtype=np.int64)
            )
        return CurrentColumn(rows=self.rows, nulls=self.rows - total, data=data)


Summary = NumericSummary | CategoricalSummary


def _summaries(reference: Reference, settings: DriftSettings) -> dict[str, Summary]:
    return {
        name: NumericSummary(name, settings) if ref.kind == "numeric" else CategoricalSummary(name)
        for name, ref in reference.columns.items()
    }


# --------------------------------------------------------------------------------------------
# Feeding batches
# --------------------------------------------------------------------------------------------


def _feed_pandas(summary: Summary, series: pd.Series) -> None:
    if isinstance(summary, NumericSummary):
        finite, _, integer = numeric_values(series, summary.name, "current")
        summary.update(finite, int(series.size), integer)
    else:
        labels, counts, _ = category_counts(series)
        summary.add(labels.tolist(), counts.tolist(), int(series.size))


def _feed_arrow(summary: Summary, array: pa.Array) -> None:
    if isinstance(summary, NumericSummary):
        if not (
            pa.types.is_integer(array.type)
            or pa.types.is_floating(array.type)
            or pa.types.is_decimal(array.type)
            or pa.types.is_null(array.type)
        ):
            raise DataError(f"current column {summary.name!r} must be numeric, got {array.type}")
        raw = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        finite = raw[np.isfinite(raw)]
        summary.update(finite, len(array), pa.types.is_integer(array.type))
        return
    counted = pc.value_counts(array)
    labels, counts = [], []
    for value, count in zip(
        counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
    ):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        labels.append(category_label(value))
        counts.append(count)
    summary.add(labels, counts, len(array))


def _finish(
    reference: Reference,
    summaries: dict[str, Summary],
    settings: DriftSettings,
    pool: ThreadPoolExecutor | None,
) -> DriftReport:
    def one(name: str) -> Any:
        ref: ColumnReference = reference.columns[name]
        return evaluate_column(ref, summaries[name].current(), settings)

    names = list(reference.columns)
    results = list(pool.map(one, names)) if pool else [one(n) for n in names]
    return summarise(results, settings)


def _pool(settings: DriftSettings, n_columns: int) -> ThreadPoolExecutor | None:
    import os

    workers = min(n_columns, settings.workers or min(os.cpu_count() or 1, 4))
    return (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sketch")
        if workers > 1
        else None
    )


def compute_drift_frame(
    reference: Reference, current: pd.DataFrame, settings: DriftSettings
) -> DriftReport:
    """Sketch mode over an in-memory frame, batch by batch (same results as from Parquet)."""
    check_inputs(reference, list(current.columns), settings)
    summaries = _summaries(reference, settings)
    step = settings.sketch.batch_rows
    pool = _pool(settings, len(summaries))
    try:
        with st.quiet_scipy_warnings():
            for start in range(0, max(len(current), 1), step):
                chunk = current.iloc[start : start + step]
                _map(pool, lambda n, chunk=chunk: _feed_pandas(summaries[n], chunk[n]), summaries)
            return _finish(reference, summaries, settings, pool)
    finally:
        if pool:
            pool.shutdown()


def compute_drift_parquet(
    reference: Reference,
    path: str | Path,
    settings: DriftSettings,
    *,
    batch_rows: int | None = None,
    compute: ComputeSpec | None = None,
) -> DriftReport:
    """Drift of a Parquet file, or of a folder of Parquet files (a partitioned dataset, read
    in name order as one table), against the reference.

    In sketch mode each file is streamed in batches of ``batch_rows`` rows (default: the
    settings' ``sketch.batch_rows``), so memory stays bounded whatever the file size, into one
    summary per column; the files' summaries are then merged in name order (`merge_summaries`:
    the quantile sketches' own merge, counts added). A file is the unit whatever runs it: with
    `compute` of kind dask each file is summarised on a worker and only its summaries come
    back, so the verdicts and certified bounds are the same numbers as with `compute: local`,
    for any number of workers. In exact mode the reference columns are read whole and handed
    to :func:`pipeline.monitor.drift_evaluation.exact_drift`.
    """
    files = _parquet_files(Path(path))
    names = list(reference.columns)
    handles = [_open(f) for f in files]
    for handle in handles:
        check_inputs(reference, handle.schema_arrow.names, settings)
    if settings.mode == "exact":
        frame = pd.concat(
            [_open(f).read(columns=names).to_pandas() for f in files], ignore_index=True
        )
        return exact_drift(reference, frame, settings)
    rows = batch_rows or settings.sketch.batch_rows
    from pipeline.compute import on_cluster, ordered_map, session

    total = sum(handle.metadata.num_rows for handle in handles)
    summaries: dict[str, Summary] | None = None
    where = compute if compute is not None and on_cluster(compute, total) else _LOCAL
    with session(where) as client:
        # the reference (its sketches: megabytes) goes to each worker once, not with each task
        ref = reference if client is None else client.scatter(reference, broadcast=True, hash=False)
        items = [(ref, str(f), settings, rows) for f in files]
        for part in ordered_map(client, summarise_file, items, name="mlops-sketch"):
            summaries = part if summaries is None else merge_summaries(summaries, part)
    assert summaries is not None
    pool = _pool(settings, len(summaries))
    try:
        with st.quiet_scipy_warnings():
            return _finish(reference, summaries, settings, pool)
    finally:
        if pool:
            pool.shutdown()


_LOCAL = ComputeSpec("local", None, 0.0, None, None, 0)


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = parquet_parts(path)
        if not files:
            raise DataError(f"cannot read current data {path}: no .parquet file in the folder")
        return files
    return [path]


def _open(path: Path | str) -> pq.ParquetFile:
    try:
        # pre_buffer would cache every column chunk read so far: memory would grow with the file
        return pq.ParquetFile(path, pre_buffer=False)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read current data {path}: {exc}") from exc


def summarise_file(
    reference: Reference, path: str, settings: DriftSettings, batch_rows: int
) -> dict[str, Summary]:
    """One summary per reference column of one Parquet file, streamed in batches (on a Dask
    worker, or here)."""
    handle = _open(path)
    summaries = _summaries(reference, settings)
    pool = _pool(settings, len(summaries))
    try:
        with st.quiet_scipy_warnings():
            for batch in handle.iter_batches(batch_size=batch_rows, columns=list(summaries)):
                _map(pool, lambda n, b=batch: _feed_arrow(summaries[n], b.column(n)), summaries)
    finally:
        if pool:
            pool.shutdown()
    return summaries


def merge_summaries(into: dict[str, Summary], other: dict[str, Summary]) -> dict[str, Summary]:
    """Fold `other` (the summaries of a later partition) into `into`, column by column."""
    for name, summary in other.items():
        target = into[name]
        if isinstance(target, NumericSummary):
            assert isinstance(summary, NumericSummary)
            target.merge(summary)
        else:
            assert isinstance(summary, CategoricalSummary)
            target.add(list(summary.counts), list(summary.counts.values()), summary.rows)
    return into


def _map(pool: ThreadPoolExecutor | None, func: Any, names: Any) -> None:
    if pool is None:
        for name in names:
            func(name)
    else:
        for _ in pool.map(func, names):
            pass
