"""The metrics monitoring reports for a task: the label metrics a window can be judged on, and
the headline one the history trend plots.

The `monitor` params section itself is typed in the params tree (`pipeline.params`:
`MonitorSettings` with its `WindowSpec`, `DriftSettings` and `PerformanceSpec`, built once by
`pipeline.config.load_config` from validated params). Construction does no checking of its own:
the JSON Schema (`monitor.schema.json`) and the cross-key rules in `pipeline.validation` run
first, and `pipeline.monitor.drift.check_settings` refuses what a schema cannot judge.
"""

from __future__ import annotations

from pipeline.validation import LABEL_METRICS  # label-only metrics: windows hold no scores

# The metric plotted in the history trend next to the drift share.
HEADLINE_METRIC = {"classification": "accuracy", "regression": "r2"}


def label_metrics(task: str) -> tuple[str, ...]:
    return LABEL_METRICS[task]
