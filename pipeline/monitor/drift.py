"""Per-column drift verdicts and the dataset verdict, reproducing Evidently 0.7's DataDriftPreset.

``compute_drift(reference, current, settings)`` tests every reference column of ``current``:

* the method is the column's override, else its type's method, else Evidently's default rule
  (:func:`default_method`): with more than 1,000 non-null reference values, normed Wasserstein for
  numeric columns with more than 5 distinct values (reference and current together) and
  Jensen-Shannon for the others; with fewer, KS for numeric columns and chi-square for the others,
  the Z-test when there are at most two distinct values;
* the threshold is the column's, else its type's, else the method's default (Evidently applies a
  type-level threshold to whichever method the rule picks);
* each method has its own direction (``>=`` for most distances, ``>`` for energy distance, ``<``
  for most p-values, ``<=`` for KS and Cramér-von Mises): exactly Evidently's comparisons;
* the dataset drifts when the share of drifted columns is ``>= drift_share``.

Evidently drops nulls (and +-inf) before testing, so a column that goes missing is invisible to
it. We add a null-share check per column (current minus reference null share above
``null_share_max_increase``) and give columns whose current values are all null the status
"all_null" (counted as drifted) instead of failing. Other statuses: "ok", "drift", "empty" (the
current data has no rows; not counted) and "undefined" (the test has no value here, e.g. a t-test
of two constant columns or Anderson-Darling on a single distinct value; counted, not drifted, as
Evidently counts a NaN score).

Columns run in a thread pool: sorting, merging and searchsorted release the GIL.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, DataError, Issue
from pipeline.monitor import bounds
from pipeline.monitor import stats as st
from pipeline.params import ColumnOverride as ColumnOverride  # the settings, re-exported
from pipeline.params import DriftSettings
from pipeline.params import MethodChoice as MethodChoice
from pipeline.params import SketchSettings as SketchSettings
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

Status = Literal["ok", "drift", "all_null", "empty", "undefined"]
Direction = Literal[">=", ">", "<", "<="]
NUMERIC: ColumnKind = "numeric"
CATEGORICAL: ColumnKind = "categorical"
COUNTED_STATUSES = frozenset({"ok", "drift", "all_null", "undefined"})


# --------------------------------------------------------------------------------------------
# What a method sees
# --------------------------------------------------------------------------------------------


@dataclass
class ColumnPair:
    """Reference and current data of one column, in the form the methods compute on."""

    name: str
    kind: ColumnKind
    ref: st.Sample | st.Frequencies
    cur: st.Sample | st.Frequencies
    ref_std: float = 0.0
    cur_codes: Callable[[np.ndarray], np.ndarray] | None = None  # row-order codes (TVD)

    def samples(self) -> tuple[st.Sample, st.Sample]:
        assert isinstance(self.ref, st.Sample) and isinstance(self.cur, st.Sample)
        return self.ref, self.cur

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys and both count vectors over the union of keys (values, for a numeric column)."""
        ref, cur = self.ref, self.cur
        if isinstance(ref, st.Sample) and isinstance(cur, st.Sample):
            ref_f, cur_f = st.sample_frequencies(ref), st.sample_frequencies(cur)
            if ref_f is None or cur_f is None:
                raise _NeedsExactDataError("per-value counts")
            ref, cur = ref_f, cur_f
        assert isinstance(ref, st.Frequencies) and isinstance(cur, st.Frequencies)
        return st.align(ref, cur)

    def is_exact(self) -> bool:
        return all(not isinstance(s, st.Sample) or s.exact for s in (self.ref, self.cur))


class _NeedsExactDataError(Exception):
    """A method needs data that a sketch does not keep (raised inside a column computation)."""


@dataclass(frozen=True)
class Score:
    statistic: float
    error_bound: float | None = None  # certified, in sketch mode; None when it cannot be bounded


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A drift method as Evidently registers it, plus what sketch mode can do with it."""

    name: str
    kind: Literal["distance", "p_value"]
    default_threshold: float
    direction: Direction
    column_types: frozenset[str]  # the types a user may choose it for (Evidently's allowed types)
    sketch: bool  # works on sketched high-cardinality numeric data (with an error bound)
    compute: Callable[[ColumnPair], Score]
    description: str

    def drifted(self, statistic: float, threshold: float) -> bool:
        """Evidently's verdict for this method; NaN never drifts (every comparison is False)."""
        return {
            ">=": statistic >= threshold,
            ">": statistic > threshold,
            "<": statistic < threshold,
            "<=": statistic <= threshold,
        }[self.direction]


def _exact_only(pair: ColumnPair, what: str) -> None:
    if not pair.is_exact():
        raise _NeedsExactDataError(what)


def _ks(pair: ColumnPair) -> Score:
    ref, cur = pair.samples()
    if pair.is_exact():
        return Score(st.ks_pvalue(ref, cur), 0.0)
    d = st.ks_statistic(st.merge(ref, cur))
    p = st.ks_pvalue_from_statistic(d, ref.n, cur.n)
    return Score(p, bounds.ks_pvalue_bound(d, p, ref, cur))


def _wasserstein(pair: ColumnPair) -> Score:
    ref, cur = pair.samples()
    norm = max(float(pair.ref_std), 0.001)
    return Score(st.wasserstein(ref, cur) / norm, bounds.wasserstein_bound(ref, cur, norm))


def _energy(pair: ColumnPair) -> Score:
    ref, cur = pair.samples()
    return Score(st.energy_distance(ref, cur), bounds.energy_bound(ref, cur))


def _full_data(func: Callable[[st.Sample, st.Sample], float], what: str) -> Callable:
    def compute(pair: ColumnPair) -> Score:
        _exact_only(pair, what)
        return Score(func(*pair.samples()), 0.0)

    return compute


def _binned(pair: ColumnPair) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data, as counts (shares are taken by each statistic)."""
    if pair.kind == NUMERIC:
        ref, cur = pair.samples()
        try:
            return st.numeric_binned(ref, cur)
        except ValueError as exc:
            raise _NeedsExactDataError("per-value counts") from exc
    _, r, c = pair.counts()
    return r, c


def _binned_score(stat: Callable, bound: Callable | None) -> Callable[[ColumnPair], Score]:
    def compute(pair: ColumnPair) -> Score:
        r, c = _binned(pair)
        value = stat(r, c)
        if pair.is_exact() or pair.kind == CATEGORICAL or st.value_binned(pair.samples()[0]):
            return Score(value, 0.0)  # exact counts: no sketch error
        ref, cur = pair.samples()
        return Score(value, None if bound is None else bound(r, c, ref, cur))

    return compute


def _js_bound(r: np.ndarray, c: np.ndarray, ref: st.Sample, cur: st.Sample) -> float:
    return bounds.jensen_shannon_bound(r.size, ref, cur)


def _hellinger(pair: ColumnPair) -> Score:
    if pair.kind == CATEGORICAL:
        _, r, c = pair.counts()
        return Score(st.hellinger_categorical(r, c), 0.0)
    ref, cur = pair.samples()
    union = st.union_distinct_values(ref, cur)
    if union is None:
        raise _NeedsExactDataError("the distinct values of both sides")
    return Score(st.hellinger_numeric(ref, cur, union), 0.0)


def _chisquare(pair: ColumnPair) -> Score:
    _, r, c = pair.counts()
    return Score(st.chisquare_pvalue(r, c), 0.0)


def _z(pair: ColumnPair) -> Score:
    keys, r, c = pair.counts()
    return Score(st.z_pvalue(keys, r, c), 0.0)


def _tvd(pair: ColumnPair) -> Score:
    keys, r, _ = pair.counts()
    if pair.cur_codes is None:
        raise _NeedsExactDataError("the current rows in order")
    ref_codes = np.repeat(np.arange(keys.size), r)  # reference rows in category order
    return Score(st.tvd_pvalue(ref_codes, pair.cur_codes(keys), keys.size), 0.0)


_BOTH = frozenset({NUMERIC, CATEGORICAL})
_NUM = frozenset({NUMERIC})
_CAT = frozenset({CATEGORICAL})

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", "p_value", 0.05, "<=", _NUM, True, _ks, "Kolmogorov-Smirnov p-value"),
        Method(
            "wasserstein",
            "distance",
            0.1,
            ">=",
            _NUM,
            True,
            _wasserstein,
            "Wasserstein distance normed by max(reference std, 0.001)",
        ),
        Method("ed", "distance", 0.1, ">", _NUM, True, _energy, "energy distance"),
        Method(
            "anderson",
            "p_value",
            0.1,
            "<",
            _NUM,
            False,
            _full_data(st.anderson_pvalue, "the full data"),
            "Anderson-Darling k-sample p-value",
        ),
        Method(
            "cramer_von_mises",
            "p_value",
            0.1,
            "<=",
            _NUM,
            False,
            _full_data(st.cramer_von_mises_pvalue, "the full data"),
            "Cramér-von Mises p-value",
        ),
        Method(
            "mannw",
            "p_value",
            0.05,
            "<",
            _NUM,
            False,
            _full_data(st.mann_whitney_pvalue, "the full data"),
            "Mann-Whitney U p-value (alternative 'less', as in Evidently)",
        ),
        Method(
            "t_test",
            "p_value",
            0.05,
            "<",
            _NUM,
            False,
            _full_data(st.t_test_pvalue, "the full data"),
            "two-sample t-test p-value",
        ),
        Method(
            "jensenshannon",
            "distance",
            0.1,
            ">=",
            _BOTH,
            True,
            _binned_score(st.jensen_shannon, _js_bound),
            "Jensen-Shannon distance",
        ),
        Method(
            "psi",
            "distance",
            0.1,
            ">=",
            _BOTH,
            True,
            _binned_score(st.psi, bounds.psi_bound),
            "population stability index",
        ),
        Method(
            "kl_div",
            "distance",
            0.1,
            ">=",
            _BOTH,
            True,
            _binned_score(st.kl_divergence, bounds.kl_bound),
            "Kullback-Leibler divergence",
        ),
        Method("hellinger", "distance", 0.1, ">=", _BOTH, False, _hellinger, "Hellinger distance"),
        Method("chisquare", "p_value", 0.05, "<", _CAT, True, _chisquare, "chi-square p-value"),
        Method("z", "p_value", 0.05, "<", _CAT, True, _z, "two-proportion Z-test p-value"),
        Method(
            "TVD",
            "p_value",
            0.1,
            "<",
            _CAT,
            False,
            _tvd,
            "total variation distance, permutation-test p-value",
        ),
    )
}
ALIASES = {"energy_distance": "ed", "tvd": "TVD", "cvm": "cramer_von_mises"}


def get_method(name: str) -> Method:
    """The registered method for a name or alias; KeyError for an unknown one."""
    return METHODS[ALIASES.get(name, name)]


def method_names() -> list[str]:
    """Every name a config may use: methods, aliases, and "auto"."""
    return ["auto", *METHODS, *ALIASES]


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def check_settings(settings: DriftSettings, source: str = "params.yaml") -> None:
    """Refuse (ConfigError, every problem at once) drift settings a schema cannot judge: a
    method unfit for its column type or for sketch mode, a p-value threshold above 1."""
    issues = settings_problems(settings, source)
    if issues:
        raise ConfigError(issues, title="monitor configuration refused")


def settings_problems(
    settings: DriftSettings,
    source: str = "settings",
    prefix: str = "monitor",
    kinds: Mapping[str, ColumnKind] | None = None,
) -> list[Issue]:
    """Choices a schema cannot judge: a method unfit for its column type or for sketch mode."""
    issues = []
    for kind, choice in ((NUMERIC, settings.numeric), (CATEGORICAL, settings.categorical)):
        issues += _choice_issues(
            choice.method, choice.threshold, kind, settings.mode, source, f"{prefix}.drift.{kind}"
        )
    for name, over in settings.columns.items():
        column_kind = (kinds or {}).get(name)
        if kinds is not None and column_kind is None:
            issues.append(
                Issue(
                    source,
                    f"{prefix}.drift.columns.{name}",
                    "override for a column the reference does not have",
                )
            )
        elif column_kind is not None and over.method is not None:
            issues += _choice_issues(
                over.method,
                over.threshold,
                column_kind,
                settings.mode,
                source,
                f"{prefix}.drift.columns.{name}",
            )
    return issues


def _choice_issues(
    method: str, threshold: float | None, kind: ColumnKind, mode: str, source: str, key: str
) -> list[Issue]:
    if method == "auto":
        return []
    try:
        m = get_method(method)
    except KeyError:
        return [
            Issue(
                source,
                f"{key}.method",
                f"unknown method; expected one of {', '.join(method_names())}",
                method,
            )
        ]
    issues = []
    if kind not in m.column_types:
        issues.append(
            Issue(
                source,
                f"{key}.method",
                f"method {m.name!r} does not apply to "
                f"{kind} columns (it takes {', '.join(sorted(m.column_types))})",
            )
        )
    if mode == "sketch" and kind == NUMERIC and not m.sketch:
        issues.append(
            Issue(
                source,
                f"{key}.method",
                f"method {m.name!r} needs every value; "
                "sketch mode supports " + ", ".join(_sketch_numeric_methods()),
            )
        )
    if threshold is not None and m.kind == "p_value" and threshold > 1:
        issues.append(
            Issue(source, f"{key}.threshold", "a p-value threshold must be <= 1", threshold)
        )
    return issues


def _sketch_numeric_methods() -> list[str]:
    return [m.name for m in METHODS.values() if m.sketch and NUMERIC in m.column_types]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict for one column; ``to_dict`` is JSON-safe (None instead of NaN).

    ``statistic`` is the method's score (a p-value or a distance) and ``drifted`` Evidently's
    verdict on it, except for status "all_null" (no score; drifted). ``error_bound`` is a certified
    bound on ``|statistic - exact-mode statistic|``: 0.0 whenever the statistic was computed from
    exact data (always in exact mode), None where sketch mode cannot bound it (PSI / KL with a
    possibly empty bin) or no test ran. Null shares count nulls and +-inf, over all rows.
    """

    column: str
    kind: ColumnKind
    status: Status
    method: str | None
    method_kind: str | None
    statistic: float | None
    threshold: float | None
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_null_share: float
    current_null_share: float | None
    null_share_increase: float | None
    null_share_max_increase: float
    null_share_drifted: bool
    error_bound: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_safe(v) for k, v in asdict(self).items()}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_ | np.integer):
        return value.item()
    return value


@dataclass(frozen=True)
class DriftReport:
    """Every column's verdict and the dataset verdict (share of drifted columns >= drift_share)."""

    columns: tuple[ColumnDrift, ...]
    mode: str
    drift_share: float
    count: int  # drifted columns
    total: int  # columns counted (all but "empty")
    share: float | None  # count / total; None when nothing could be tested
    drifted: bool

    @property
    def by_column(self) -> dict[str, ColumnDrift]:
        return {c.column: c for c in self.columns}

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def null_share_alerts(self) -> list[str]:
        return [c.column for c in self.columns if c.null_share_drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "dataset": {
                "drifted": self.drifted,
                "share": _json_safe(self.share),
                "count": self.count,
                "total": self.total,
                "drift_share": self.drift_share,
                "drifted_columns": self.drifted_columns,
                "null_share_alerts": self.null_share_alerts,
            },
            "columns": {c.column: c.to_dict() for c in self.columns},
        }


def summarise(columns: Sequence[ColumnDrift], settings: DriftSettings) -> DriftReport:
    """The dataset verdict over the column verdicts (Evidently's get_dataset_drift)."""
    counted = [c for c in columns if c.status in COUNTED_STATUSES]
    count = sum(1 for c in counted if c.drifted)
    share = count / len(counted) if counted else None
    return DriftReport(
        columns=tuple(columns),
        mode=settings.mode,
        drift_share=settings.drift_share,
        count=count,
        total=len(counted),
        share=share,
        drifted=bool(share is not None and share >= settings.drift_share),
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


# --------------------------------------------------------------------------------------------
# Exact mode on a DataFrame
# --------------------------------------------------------------------------------------------


def compute_drift(
    reference: Reference, current: pd.DataFrame, settings: DriftSettings
) -> DriftReport:
    """Test every reference column of ``current`` for drift (see the module docstring).

    Raises DataError when ``current`` lacks a reference column or a numeric column holds
    non-numbers, ConfigError when a chosen method does not fit a column.
    """
    check_inputs(reference, list(current.columns), settings)
    if settings.mode == "sketch":
        from pipeline.monitor.sketch import compute_drift_frame

        return compute_drift_frame(reference, current, settings)
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
