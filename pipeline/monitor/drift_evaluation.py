"""Drift evaluation: one column's verdict (method, threshold, null share, status), the
exact mode over a DataFrame, and what sketch mode shares with it (`check_inputs`,
`run_parallel`). `pipeline.monitor.drift.compute_drift` picks exact or sketch mode."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, DataError
from pipeline.monitor import stats as st
from pipeline.monitor.drift_checks import (
    settings_problems,
)
from pipeline.monitor.drift_methods import (
    CATEGORICAL,
    NUMERIC,
    ColumnPair,
    Method,
    _NeedsExactDataError,
    get_method,
)
from pipeline.monitor.drift_results import (
    ColumnDrift,
    DriftReport,
    Status,
    summarise,
)
from pipeline.params import DriftSettings
from pipeline.profile.reference import (
    CategoricalReference,
    ColumnKind,
    ColumnReference,
    NumericReference,
    Reference,
    category_counts,
    category_label,
    numeric_values,
)

# --------------------------------------------------------------------------------------------
# One column
# --------------------------------------------------------------------------------------------


@dataclass
class CurrentColumn:
    """The current side of a column: row counts plus the data, exact or sketched."""

    rows: int
    nulls: int
    data: st.Sample | st.Frequencies | None  # None when there is no non-null value
    codes: Callable[[np.ndarray], np.ndarray] | None = None


def default_method(kind: ColumnKind, ref_count: int, n_values: int, settings: DriftSettings) -> str:
    """Evidently's ``_get_default_stattest`` with our two thresholds as settings."""
    low = n_values <= settings.numeric_low_cardinality
    if ref_count <= settings.small_reference_rows:
        if kind == NUMERIC and not low:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == NUMERIC and not low:
        return "wasserstein"
    return "jensenshannon"


def union_distinct(ref: ColumnReference, cur: st.Sample | st.Frequencies, limit: int) -> int:
    """Distinct values of reference and current together, exact up to ``limit`` (then limit+1)."""
    if isinstance(ref, CategoricalReference):
        assert isinstance(cur, st.Frequencies)
        return int(np.union1d(ref.categories, cur.keys).size)
    if ref.distinct > limit or ref.small_values is None:
        return max(ref.distinct, limit + 1)
    assert isinstance(cur, st.Sample)
    known = cur.distinct()
    if known is None:
        return limit + 1
    return int(np.union1d(ref.small_values[0], known[0]).size)


def evaluate_column(
    ref: ColumnReference, cur: CurrentColumn, settings: DriftSettings
) -> ColumnDrift:
    """Run the column's drift test and the null-share check; never raises for odd data."""
    method_name, threshold, limit = settings.choice_for(ref.name, ref.kind)
    ref_null = ref.nulls / ref.rows if ref.rows else 0.0
    base: dict[str, Any] = dict(
        column=ref.name,
        kind=ref.kind,
        reference_rows=ref.rows,
        current_rows=cur.rows,
        reference_null_share=ref_null,
        null_share_max_increase=limit,
    )
    if cur.rows == 0:
        base.update(current_null_share=None, null_share_increase=None, null_share_drifted=False)
        return _untested(base, "empty", drifted=False, note="the current data has no rows")
    cur_null = cur.nulls / cur.rows
    increase = cur_null - ref_null
    base.update(
        current_null_share=cur_null,
        null_share_increase=increase,
        null_share_drifted=bool(increase > limit),
    )
    if cur.data is None:
        return _untested(
            base, "all_null", drifted=True, note="every current value is null (or infinite)"
        )
    if method_name == "auto":
        n_values = union_distinct(ref, cur.data, settings.numeric_low_cardinality)
        method_name = default_method(ref.kind, ref.count, n_values, settings)
    method = get_method(method_name)
    threshold = method.default_threshold if threshold is None else threshold
    return _run_method(method, threshold, _pair(ref, cur), base)


def _untested(base: dict[str, Any], status: Status, *, drifted: bool, note: str) -> ColumnDrift:
    """The verdict on a column no method could test (no current rows, or no current value)."""
    return ColumnDrift(
        **base,
        status=status,
        method=None,
        method_kind=None,
        statistic=None,
        threshold=None,
        drifted=drifted,
        note=note,
    )


def _pair(ref: ColumnReference, cur: CurrentColumn) -> ColumnPair:
    if isinstance(ref, NumericReference):
        return ColumnPair(ref.name, NUMERIC, ref.sample, cur.data, ref_std=ref.std)  # type: ignore[arg-type]
    return ColumnPair(
        ref.name,
        CATEGORICAL,
        ref.frequencies(),
        cur.data,  # type: ignore[arg-type]
        cur_codes=cur.codes,
    )


def _run_method(
    method: Method, threshold: float, pair: ColumnPair, base: dict[str, Any]
) -> ColumnDrift:
    common = dict(base, method=method.name, method_kind=method.kind, threshold=threshold)
    try:
        score = method.compute(pair)
    except _NeedsExactDataError as exc:
        raise DataError(
            f"column {pair.name!r}: method {method.name!r} needs {exc}, which sketch "
            "mode does not keep; use exact mode or another method"
        ) from exc
    except (ValueError, ZeroDivisionError, FloatingPointError) as exc:
        return ColumnDrift(
            **common,
            status="undefined",
            statistic=None,
            drifted=False,
            note=f"{method.name} is undefined here: {exc}",
        )
    value = float(score.statistic)
    if not math.isfinite(value):
        return ColumnDrift(
            **common,
            status="undefined",
            statistic=None,
            drifted=False,
            note=f"{method.name} gave no finite value for this data",
        )
    drifted = bool(method.drifted(value, threshold))
    return ColumnDrift(
        **common,
        status="drift" if drifted else "ok",
        statistic=value,
        drifted=drifted,
        error_bound=score.error_bound,
    )


def rejudged(column: ColumnDrift, settings: DriftSettings) -> ColumnDrift:
    """`column`'s verdict again under `settings`' thresholds, from its kept statistic: the
    statistic depends on the method and the data, never on a threshold, so this equals
    evaluating the column again with the same method (`evaluate_column`: the same rules)."""
    _, threshold, limit = settings.choice_for(column.column, column.kind)
    increase = column.null_share_increase
    changes: dict[str, Any] = dict(
        null_share_max_increase=limit,
        null_share_drifted=False if increase is None else bool(increase > limit),
    )
    if column.method is not None:  # a method ran: its threshold, and its verdict on a value
        method = get_method(column.method)
        threshold = method.default_threshold if threshold is None else threshold
        changes["threshold"] = threshold
        if column.status in ("ok", "drift") and column.statistic is not None:
            drifted = bool(method.drifted(float(column.statistic), threshold))
            changes.update(drifted=drifted, status="drift" if drifted else "ok")
    return dataclasses.replace(column, **changes)


# --------------------------------------------------------------------------------------------
# Exact mode on a DataFrame; what sketch mode shares
# --------------------------------------------------------------------------------------------


def exact_drift(
    reference: Reference, current: pd.DataFrame, settings: DriftSettings
) -> DriftReport:
    """Exact mode: every reference column of ``current`` evaluated on its full values (the
    columns and methods already checked by :func:`check_inputs`)."""
    if reference.mode != "exact":
        raise ConfigError(
            "the drift reference was built in sketch mode (no full values); exact "
            "mode needs a reference built with mode='exact'"
        )
    tasks = [(ref, current[name]) for name, ref in reference.columns.items()]
    with st.quiet_scipy_warnings():
        results = run_parallel(
            lambda t: evaluate_column(t[0], current_column(t[0], t[1]), settings),
            tasks,
            settings.workers,
        )
    return summarise(results, settings)


def check_inputs(reference: Reference, available: Sequence[str], settings: DriftSettings) -> None:
    """Refuse missing columns (DataError) and methods unfit for a column (ConfigError)."""
    missing = [name for name in reference.columns if name not in set(available)]
    if missing:
        raise DataError(f"current data lacks reference column(s): {', '.join(map(repr, missing))}")
    issues = settings_problems(settings, kinds=reference.kinds)
    if issues:
        raise ConfigError(issues, title="drift settings do not fit the reference columns")


def current_column(ref: ColumnReference, series: pd.Series) -> CurrentColumn:
    """The current side of one column in exact mode (sorted values or category counts)."""
    if isinstance(ref, NumericReference):
        finite, nulls, integer = numeric_values(series, ref.name, "current")
        if finite.size == 0:
            return CurrentColumn(rows=int(series.size), nulls=nulls, data=None)
        finite.sort()
        return CurrentColumn(
            rows=int(series.size), nulls=nulls, data=st.Sample(finite, integer=integer)
        )
    labels, counts, nulls = category_counts(series)
    data = st.Frequencies(keys=labels, counts=counts) if counts.sum() else None
    return CurrentColumn(
        rows=int(series.size), nulls=nulls, data=data, codes=lambda keys: _row_codes(series, keys)
    )


def _row_codes(series: pd.Series, keys: np.ndarray) -> np.ndarray:
    """Current non-null rows, in order, as indices into the sorted union of category labels."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    lookup = np.asarray(
        [
            -1
            if isinstance(v, float | np.floating) and math.isinf(v)
            else int(np.searchsorted(keys, category_label(v)))
            for v in uniques
        ],
        dtype=np.int64,
    )
    mapped = lookup[codes[codes >= 0]] if lookup.size else np.zeros(0, np.int64)
    return mapped[mapped >= 0]


def run_parallel(func: Callable[[Any], Any], items: Sequence[Any], workers: int | None) -> list:
    """Map ``func`` over items in a thread pool (numpy and scipy release the GIL), in order."""
    n = min(len(items), workers or min(os.cpu_count() or 1, 4))
    if n <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="drift") as pool:
        return list(pool.map(func, items))
