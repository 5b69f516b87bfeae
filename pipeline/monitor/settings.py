"""The `monitor` params section, typed, and what the monitor stage derives from it.

The section is typed in the params tree (`pipeline.params`: `MonitorSettings` with its
`WindowSpec`, `DriftSettings` and `PerformanceSpec`, built once by `pipeline.config.load_config`
from validated params) and re-exported here. Construction does no checking of its own: the JSON
Schema (`monitor.schema.json`) and the cross-key rules in `pipeline.validation` run first, and
`pipeline.monitor.drift.check_settings` refuses what a schema cannot judge.
"""

from __future__ import annotations

from pipeline.params import MonitorSettings, PerformanceSpec, WindowSpec, span_seconds
from pipeline.validation import LABEL_METRICS  # label-only metrics: windows hold no scores

__all__ = [
    "HEADLINE_METRIC",
    "MonitorSettings",
    "PerformanceSpec",
    "WindowSpec",
    "label_metrics",
    "span_seconds",
]

# The metric plotted in the history trend next to the drift share.
HEADLINE_METRIC = {"classification": "accuracy", "regression": "r2"}


def label_metrics(task: str) -> tuple[str, ...]:
    return LABEL_METRICS[task]
