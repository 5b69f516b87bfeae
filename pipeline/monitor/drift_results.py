"""Drift results: one column's verdict (`ColumnDrift`), the dataset verdict (`DriftReport`)
and the rule that summarises the first into the second (the drift share)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from pipeline.params import DriftSettings
from pipeline.profile.reference import (
    ColumnKind,
)

Status = Literal["ok", "drift", "all_null", "empty", "undefined"]
COUNTED_STATUSES = frozenset({"ok", "drift", "all_null", "undefined"})

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
