"""Typed views of the `monitor` params section beyond the drift statistics.

`DriftSettings.from_config` reads `monitor.drift` and `monitor.null_share`; this module reads the
rest (target, windows, prediction drift, performance) and bundles them with the drift settings.
The JSON Schema (`monitor.schema.json`) and the cross-key rules in `pipeline.validation` run
once, in `load_params`, before any of this; the only check made here is the one that needs the
drift method registry (`DriftSettings.problems`: a method unfit for its column type or for
sketch mode), once, as the settings are built. Whatever receives a `MonitorSettings` receives
validated settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.monitor.drift import DriftSettings, MethodChoice
from pipeline.settings import Amount
from pipeline.validation import LABEL_METRICS  # label-only metrics: windows hold no scores

# The metric plotted in the history trend next to the drift share.
HEADLINE_METRIC = {"classification": "accuracy", "regression": "r2"}
_SPAN = re.compile(r"([1-9][0-9]*)(s|min|h|d|w)")  # matched whole (fullmatch)
_SPAN_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}


def label_metrics(task: str) -> tuple[str, ...]:
    return LABEL_METRICS[task]


def span_seconds(text: str) -> int:
    """Seconds in a span such as `15min`, `6h`, `1d`, `1w` (ValueError for anything else)."""
    match = _SPAN.fullmatch(text)
    if not match:
        raise ValueError(f"not a time span: {text!r} (expected e.g. 30min, 6h, 1d, 1w)")
    return int(match.group(1)) * _SPAN_SECONDS[match.group(2)]


@dataclass(frozen=True)
class WindowSpec:
    """How pooled traffic is cut into monitoring windows (see `pipeline.monitor.windowing`)."""

    by: Literal["rows", "time"] = "rows"
    rows: int = 100
    span: str = "1d"
    min_rows: int = 50

    @property
    def span_seconds(self) -> int:
        return span_seconds(self.span)


@dataclass(frozen=True)
class PerformanceSpec:
    """Checks on labelled rows against floors and against the bundle's test metrics."""

    min_labelled: int = 30
    floors: Mapping[str, float] = field(default_factory=dict)
    baseline: Mapping[str, Amount] = field(default_factory=dict)  # beat the bundle's baseline by
    max_drop: float | None = 0.1  # relative to the test value; None: no relative check
    max_drop_by_metric: Mapping[str, float] = field(default_factory=dict)  # absolute, per metric

    def allowed_drop(self, metric: str, test_value: float) -> float | None:
        """How much `metric` may worsen from its test value (None: not checked)."""
        if metric in self.max_drop_by_metric:
            return float(self.max_drop_by_metric[metric])
        if self.max_drop is None:
            return None
        return float(self.max_drop) * abs(test_value)


@dataclass(frozen=True)
class MonitorSettings:
    """Everything the `monitor` stage decides with, built from validated params."""

    target: str
    task: str
    windows: WindowSpec
    drift: DriftSettings
    prediction: MethodChoice
    performance: PerformanceSpec

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, source: str = "params.yaml"
    ) -> MonitorSettings:
        monitor = params["monitor"]
        perf = monitor["performance"]
        pred = monitor["prediction"]
        return cls(
            target=monitor["target"],
            task=params["task"],
            windows=WindowSpec(**monitor["windows"]),
            drift=DriftSettings.from_config(monitor, source=source),
            prediction=MethodChoice(method=pred["method"], threshold=pred["threshold"]),
            performance=PerformanceSpec(
                min_labelled=int(perf["min_labelled"]),
                floors={k: float(v) for k, v in (perf.get("floors") or {}).items()},
                baseline={k: Amount.parse(v) for k, v in (perf.get("baseline") or {}).items()},
                max_drop=None if perf["max_drop"] is None else float(perf["max_drop"]),
                max_drop_by_metric={
                    k: float(v) for k, v in (perf.get("max_drop_by_metric") or {}).items()
                },
            ),
        )
