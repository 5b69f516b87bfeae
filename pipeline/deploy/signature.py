"""A model's input signature: a JSON Schema for one record, built from the declared dataset
schema, plus what training saw (observed ranges and categories) for flagging drifted inputs.

Two limits, two behaviours: a value outside the *declared* schema (wrong type, null where not
allowed, outside declared min/max, not a declared category) is a bad request and is refused; a
value inside the declared limits but outside what *training* saw (beyond the observed range, a
category never seen) is accepted and flagged by default, so monitoring sees the drift, or refused
when the target's policy says so.

Validation is compiled to plain per-field checks (not a generic JSON Schema walk per record):
it runs on every request and must cost far less than the prediction itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.settings import DatasetSpec, canonical_category

if TYPE_CHECKING:
    import pandas as pd

OUT_OF_RANGE = "out_of_range"
UNSEEN_CATEGORY = "unseen_category"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # float | int | bool | category | datetime
    nullable: bool
    min: float | None = None  # declared hard limits
    max: float | None = None
    categories: tuple[str, ...] | None = None  # declared closed set, None = open
    observed_min: float | None = None  # what training saw
    observed_max: float | None = None
    observed_categories: tuple[str, ...] | None = None


@dataclass
class Validated:
    """Records that passed, as a frame in model column order, and what was wrong or unusual."""

    frame: pd.DataFrame | None
    errors: list[dict[str, Any]] = field(default_factory=list)  # {index, field, message}
    flags: list[list[str]] = field(default_factory=list)  # per accepted record

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class Checked:
    """`Validated` without the frame: accepted records as rows of values in model column order
    (`Signature.names`). The service checks each request on its event loop and builds one frame
    per micro-batch with `Signature.frame`, because a DataFrame costs about a millisecond to build
    whatever its length; `validate` is `check` then `frame`."""

    rows: list[list[Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)  # {index, field, message}
    flags: list[list[str]] = field(default_factory=list)  # per accepted record

    @property
    def ok(self) -> bool:
        return not self.errors


class Signature:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = dict(schema)
        meta = schema["x-mlops"]
        self.task: str = meta["task"]
        self.target: str = meta["target"]
        self.classes: list[str] | None = meta.get("classes")
        self.fields = [FieldSpec(**{**f, **_tuples(f)}) for f in meta["fields"]]
        self.names = [f.name for f in self.fields]
        self._by_name = {f.name: f for f in self.fields}

    # ------------------------------------------------------------------------------- building
    @classmethod
    def build(
        cls, dataset: DatasetSpec, train: pd.DataFrame, task: str, classes: Sequence[str] | None
    ) -> Signature:
        """From the declared schema and the (typed) training split."""
        fields = []
        for col in dataset.features:
            spec: dict[str, Any] = {"name": col.name, "type": col.type, "nullable": col.nullable}
            values = train[col.name].dropna()
            if col.is_numeric:
                spec["min"] = None if col.min is None else float(col.min)
                spec["max"] = None if col.max is None else float(col.max)
                if len(values):
                    spec["observed_min"] = float(values.min())
                    spec["observed_max"] = float(values.max())
            elif col.is_categorical:
                if col.type == "bool":
                    spec["categories"] = ["false", "true"]
                elif col.categories is not None:
                    spec["categories"] = list(col.categories)
                spec["observed_categories"] = sorted({canonical_category(v) for v in values})
            fields.append(spec)
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"One input record for dataset {dataset.name}",
            "type": "object",
            "additionalProperties": False,
            "required": [f["name"] for f in fields if not f["nullable"]],
            "properties": {f["name"]: _json_schema(f) for f in fields},
            "x-mlops": {
                "task": task,
                "target": dataset.target,
                "classes": list(classes) if classes is not None else None,
                "fields": fields,
            },
        }
        return cls(schema)

    def to_dict(self) -> dict[str, Any]:
        return self.schema

    # ----------------------------------------------------------------------------- validating
    def validate(self, records: Sequence[Any], *, reject_unseen: bool = False) -> Validated:
        """Check every record; errors name the record index and the field. With
        `reject_unseen`, values outside what training saw are errors instead of flags."""
        checked = self.check(records, reject_unseen=reject_unseen)
        if checked.errors:
            return Validated(None, checked.errors, checked.flags)
        return Validated(self.frame(checked.rows), checked.errors, checked.flags)

    def check(self, records: Sequence[Any], *, reject_unseen: bool = False) -> Checked:
        """The checks of `validate`, without building a frame (see `Checked`)."""
        errors: list[dict[str, Any]] = []
        flags: list[list[str]] = []
        rows: list[list[Any]] = []
        names = self.names
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                errors.append(
                    {
                        "index": index,
                        "field": None,
                        "message": "expected an object of feature values",
                    }
                )
                continue
            row, row_errors, row_flags = self._check(record, index, reject_unseen)
            if row_errors:
                errors.extend(row_errors)
                continue
            rows.append([row[name] for name in names])
            flags.append(row_flags)
        return Checked(rows, errors, flags)

    def frame(self, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
        """One frame from checked rows: numbers as float64, everything else as object. An
        all-numeric signature (the common case) becomes a single float block in one call, ~30x
        cheaper than a Series per column."""
        import numpy as np
        import pandas as pd

        names = self.names
        if self._numeric_only:
            block = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
            return pd.DataFrame(block, columns=names, copy=False)
        columns: dict[str, Any] = {}
        by_column = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        for name, values in zip(names, by_column, strict=True):
            if self._dtype(name) == "float64":
                columns[name] = np.array(values, dtype=np.float64)
            else:
                cells = np.empty(len(values), dtype=object)
                cells[:] = values
                columns[name] = pd.Series(cells, dtype=object, copy=False)
        return pd.DataFrame(columns, columns=names, copy=False)

    @property
    def _numeric_only(self) -> bool:
        return all(f.type in ("float", "int") for f in self.fields)

    def _dtype(self, name: str) -> str:
        ftype = self._by_name[name].type
        return "float64" if ftype in ("float", "int") else "object"

    def _check(
        self, record: Mapping[str, Any], index: int, reject_unseen: bool
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
        row: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        row_flags: list[str] = []
        for key in record:
            if key not in self._by_name:
                errors.append(
                    {
                        "index": index,
                        "field": key,
                        "message": "unknown field; expected only the model's input fields",
                    }
                )
        for spec in self.fields:
            if spec.name not in record:
                if spec.nullable:
                    row[spec.name] = _missing(spec)
                    continue
                errors.append(
                    {"index": index, "field": spec.name, "message": "required field is missing"}
                )
                continue
            value, problem, flag = _check_value(spec, record[spec.name])
            if problem:
                errors.append({"index": index, "field": spec.name, "message": problem})
            elif flag and reject_unseen:
                errors.append(
                    {
                        "index": index,
                        "field": spec.name,
                        "message": f"{flag.split(':')[0].replace('_', ' ')}: outside what "
                        "the model was trained on (policy: reject)",
                    }
                )
            else:
                row[spec.name] = value
                if flag:
                    row_flags.append(flag)
        return row, errors, row_flags


def _tuples(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: tuple(spec[k]) for k in ("categories", "observed_categories") if spec.get(k) is not None
    }


def _missing(spec: FieldSpec) -> Any:
    return math.nan if spec.type in ("float", "int") else None


def _check_value(spec: FieldSpec, value: Any) -> tuple[Any, str | None, str | None]:
    """(coerced value, error message, flag) for one field of one record."""
    if value is None:
        if spec.nullable:
            return _missing(spec), None, None
        return None, "null is not allowed for this field", None
    if spec.type in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number, got {type(value).__name__}", None
        number = float(value)
        if not math.isfinite(number):
            return None, "expected a finite number", None
        if spec.type == "int" and not number.is_integer():
            return None, "expected a whole number", None
        if spec.min is not None and number < spec.min:
            return None, f"below the declared minimum {spec.min:g}", None
        if spec.max is not None and number > spec.max:
            return None, f"above the declared maximum {spec.max:g}", None
        lo, hi = spec.observed_min, spec.observed_max
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            return number, None, f"{OUT_OF_RANGE}:{spec.name}"
        return number, None, None
    if spec.type == "datetime":
        if not isinstance(value, str):
            return None, "expected an ISO date/time string", None
        from datetime import datetime

        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None, "expected an ISO date/time string", None
        return value, None, None
    integral_float = isinstance(value, float) and value.is_integer()
    if not (isinstance(value, str | int | bool) or integral_float):
        return None, "expected a category (string)", None
    text = canonical_category(value)
    if spec.type == "bool":
        text = {"1": "true", "0": "false"}.get(text.lower(), text.lower())
    if spec.categories is not None and text not in spec.categories:
        return None, "not a declared category; expected one of " + ", ".join(spec.categories), None
    if spec.observed_categories is not None and text not in spec.observed_categories:
        return text, None, f"{UNSEEN_CATEGORY}:{spec.name}"
    return text, None, None


def _json_schema(spec: Mapping[str, Any]) -> dict[str, Any]:
    nullable = spec["nullable"]
    kind = spec["type"]
    if kind in ("float", "int"):
        out: dict[str, Any] = {"type": ["number", "null"] if nullable else "number"}
        if kind == "int":
            out["type"] = ["integer", "null"] if nullable else "integer"
        if spec.get("min") is not None:
            out["minimum"] = spec["min"]
        if spec.get("max") is not None:
            out["maximum"] = spec["max"]
        return out
    if kind == "datetime":
        return {"type": ["string", "null"] if nullable else "string", "format": "date-time"}
    out = {
        "type": ["string", "integer", "boolean", "null"]
        if nullable
        else ["string", "integer", "boolean"]
    }
    if spec.get("categories") is not None:
        out["x-categories"] = list(spec["categories"])
    return out
