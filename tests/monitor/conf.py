"""The committed monitor settings (conf/monitor/default.yaml), typed, for tests that vary one
setting: the code has no defaults of its own, so a test starts from what conf/ declares."""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.params import ColumnOverride, DriftSettings
from pipeline.validation import schema_defaults

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _monitor() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "conf/monitor/default.yaml").read_text())
    return data


def monitor_conf() -> dict[str, Any]:
    """conf/monitor/default.yaml as written (a fresh copy: tests may change it)."""
    return copy.deepcopy(_monitor())


def drift_settings(**changes: Any) -> DriftSettings:
    """The committed drift settings, with `changes` (DriftSettings fields) applied."""
    return replace(DriftSettings.from_params(_monitor()), **changes)


def override(**values: Any) -> ColumnOverride:
    """A per-column drift override; what it leaves out takes the column type's value."""
    return ColumnOverride(**{**schema_defaults("monitor", "$defs", "column"), **values})
