"""Checking a table against the declared schema (conf/dataset/*.yaml), the contract of the data.

Every violation is listed with its count and a few example rows, so a broken file is fixed in
one pass; the value rules are `pipeline.values`', which the service and batch scoring apply too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import values
from pipeline.settings import ColumnSpec, DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = 5  # example rows shown per violation


@dataclass
class Violation:
    check: str
    column: str | None
    count: int
    message: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        shown = ", ".join(f"row {e['row']}: {e['value']!r}" for e in self.examples)
        where = f"column {self.column!r}: " if self.column else ""
        return f"{where}{self.message} ({self.count} row(s){'; e.g. ' + shown if shown else ''})"


@dataclass
class DataReport:
    rows: int
    columns: int
    violations: list[Violation]
    missing_target_rows: int
    missing_target_action: str

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "passed" if self.ok else "failed",
            "rows": self.rows,
            "columns": self.columns,
            "missing_target": {
                "rows": self.missing_target_rows,
                "action": self.missing_target_action,
            },
            "violations": [asdict(v) for v in self.violations],
        }


def _examples(df: pd.DataFrame, mask: Any, column: str | None) -> list[dict[str, Any]]:
    rows = np.flatnonzero(np.asarray(mask))[:EXAMPLES]
    out = []
    for i in rows:
        value = df.iloc[i][column] if column is not None else None
        out.append({"row": int(i) + 1, "value": _jsonable(value)})
    return out


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int | float | str | bool):
        return value
    return str(value)


def check_data(df: pd.DataFrame, spec: DatasetSpec) -> DataReport:
    """Every way `df` breaks the declared schema, each with a count and example rows (1-based)."""
    violations: list[Violation] = []
    declared = [c.name for c in spec.columns]
    missing = [c for c in declared if c not in df.columns]
    extra = [c for c in df.columns if c not in declared]
    if len(df) == 0:
        violations.append(Violation("empty", None, 0, "the data has no rows"))
    for name in missing:
        violations.append(Violation("missing_column", name, len(df), "declared column is missing"))
    if extra and spec.extra_columns == "refuse":
        for name in extra:
            violations.append(
                Violation(
                    "extra_column",
                    str(name),
                    len(df),
                    "column is not declared (declare it, or set dataset.extra_columns: drop)",
                )
            )
    target_nulls = 0
    for col in spec.columns:
        if col.name not in df.columns:
            continue
        series = df[col.name]
        null = series.isna().to_numpy()
        if col.role == "target":
            target_nulls = int(null.sum())
            if target_nulls and spec.missing_target == "refuse":
                violations.append(
                    Violation(
                        "null_target",
                        col.name,
                        target_nulls,
                        "the target is missing (dataset.missing_target: refuse)",
                        _examples(df, null, col.name),
                    )
                )
        elif null.any() and not col.nullable:
            violations.append(
                Violation(
                    "null",
                    col.name,
                    int(null.sum()),
                    "null values in a column declared nullable: false",
                    _examples(df, null, col.name),
                )
            )
        violations += _value_violations(df, col, null)
    if spec.key and spec.key in df.columns:
        dup = df[spec.key].duplicated(keep=False).to_numpy()
        if dup.any():
            violations.append(
                Violation(
                    "duplicate_key",
                    spec.key,
                    int(dup.sum()),
                    "key values must be unique",
                    _examples(df, dup, spec.key),
                )
            )
    return DataReport(len(df), len(df.columns), violations, target_nulls, spec.missing_target)


def _value_violations(df: pd.DataFrame, col: ColumnSpec, null: np.ndarray) -> list[Violation]:
    """Type, range and category checks for one column's non-null values, by the rules of
    `pipeline.values` (the service and batch scoring apply the same ones)."""
    parsed, invalid = values.parse_column(col.type, df[col.name])
    out: list[Violation] = []

    def add(check: str, mask: np.ndarray, message: str) -> None:
        if mask.any():
            out.append(
                Violation(check, col.name, int(mask.sum()), message, _examples(df, mask, col.name))
            )

    expected = {
        "float": "expected numbers (type float)",
        "int": "expected numbers (type int)",
        "bool": "expected true/false, yes/no, t/f, y/n or 1/0 (type bool)",
        "category": "expected text or numbers (type category)",
        "datetime": "expected ISO dates/times (type datetime)",
    }[col.type]
    add("type", invalid, expected)
    good = ~null & ~invalid
    if col.is_numeric:
        x = np.asarray(parsed, dtype=float)
        with np.errstate(invalid="ignore"):
            add("type", good & ~np.isfinite(x), f"expected finite numbers (type {col.type})")
            good &= np.isfinite(x)
            if col.type == "int":
                add("type", good & (np.mod(x, 1.0) != 0), "expected whole numbers (type int)")
            if col.min is not None:
                add("range", good & (x < float(col.min)), f"below the declared min {col.min}")
            if col.max is not None:
                add("range", good & (x > float(col.max)), f"above the declared max {col.max}")
    elif col.type == "category" and col.categories is not None:
        known = np.isin(parsed.astype(str), list(col.categories))
        add(
            "category",
            good & ~known,
            "unknown category; expected one of " + ", ".join(col.categories),
        )
    elif col.type == "datetime":
        for bound, word in (("min", "before"), ("max", "after")):
            limit = getattr(col, bound)
            if limit is None:
                continue
            cmp = np.array(
                [
                    ok and values.beyond(v, str(limit), bound)
                    for ok, v in zip(good, parsed, strict=True)
                ],
                dtype=bool,
            )
            add("range", cmp, f"{word} the declared {bound} {limit}")
    return out
