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

import pandas as pd

from pipeline.monitor.drift_checks import (
    check_settings,
    settings_problems,
)
from pipeline.monitor.drift_evaluation import (
    CurrentColumn,
    check_inputs,
    current_column,
    default_method,
    evaluate_column,
    exact_drift,
    rejudged,
    run_parallel,
    union_distinct,
)
from pipeline.monitor.drift_methods import (
    ALIASES,
    CATEGORICAL,
    METHODS,
    NUMERIC,
    ColumnPair,
    Direction,
    Method,
    Score,
    get_method,
    method_names,
)
from pipeline.monitor.drift_results import (
    COUNTED_STATUSES,
    ColumnDrift,
    DriftReport,
    Status,
    summarise,
)
from pipeline.params import ColumnOverride as ColumnOverride  # the settings, re-exported
from pipeline.params import DriftSettings
from pipeline.params import MethodChoice as MethodChoice
from pipeline.params import SketchSettings as SketchSettings
from pipeline.profile.reference import (
    Reference,
)

__all__ = [
    "ALIASES",
    "CATEGORICAL",
    "COUNTED_STATUSES",
    "METHODS",
    "NUMERIC",
    "ColumnDrift",
    "ColumnOverride",
    "ColumnPair",
    "CurrentColumn",
    "Direction",
    "DriftReport",
    "DriftSettings",
    "Method",
    "MethodChoice",
    "Score",
    "SketchSettings",
    "Status",
    "check_inputs",
    "check_settings",
    "compute_drift",
    "current_column",
    "default_method",
    "evaluate_column",
    "exact_drift",
    "get_method",
    "method_names",
    "rejudged",
    "run_parallel",
    "settings_problems",
    "summarise",
    "union_distinct",
]


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
    return exact_drift(reference, current, settings)
