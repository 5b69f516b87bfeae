"""Drift settings checks: what a JSON Schema cannot judge about the `monitor.drift` settings
(a method unfit for its column type or for sketch mode, a p-value threshold above 1)."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.errors import ConfigError, Issue
from pipeline.monitor.drift_methods import (
    CATEGORICAL,
    METHODS,
    NUMERIC,
    get_method,
    method_names,
)
from pipeline.params import DriftSettings
from pipeline.profile.reference import (
    ColumnKind,
)

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
