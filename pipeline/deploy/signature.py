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

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline import values as vals
from pipeline.settings import DatasetSpec
from pipeline.values import canonical_category

if TYPE_CHECKING:
    import pandas as pd

OUT_OF_RANGE = "out_of_range"
UNSEEN_CATEGORY = "unseen_category"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # float | int | bool | category | datetime
    nullable: bool
    min: float | str | None = None  # declared hard limits (ISO text for datetimes)
    max: float | str | None = None
    categories: tuple[str, ...] | None = None  # declared closed set, None = open
    observed_min: float | str | None = None  # what training saw
    observed_max: float | str | None = None
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
    # per accepted record: the declared pass-through fields it carried (ids, ...), as sent
    passthrough: list[dict[str, Any]] = field(default_factory=list)

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
        # Declared columns a record may carry besides the model's inputs (ids, ignored
        # columns): accepted, never scored, logged with the prediction so feedback can be
        # joined on them. Anything else is an unknown field.
        self.passthrough: list[str] = list(meta.get("passthrough") or [])
        self._passthrough = frozenset(self.passthrough)
        self._kinds = {f.name: f.type for f in self.fields}

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
            elif col.type == "datetime":
                for bound in ("min", "max"):  # as declared: a date-only max is a whole day
                    limit = getattr(col, bound)
                    if limit is not None:
                        spec[bound] = str(limit)
                if len(values):
                    spec["observed_min"] = vals.timestamp_text(values.min())
                    spec["observed_max"] = vals.timestamp_text(values.max())
            fields.append(spec)
        passthrough = [c.name for c in dataset.columns if c.role in ("id", "ignore")]
        properties = {f["name"]: _json_schema(f) for f in fields}
        for col in dataset.columns:
            if col.name in passthrough:
                properties[col.name] = {
                    "type": ["string", "number", "boolean", "null"],
                    "description": f"declared {col.role} column: accepted and logged, not scored",
                }
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"One input record for dataset {dataset.name}",
            "type": "object",
            "additionalProperties": False,
            "required": [f["name"] for f in fields if not f["nullable"]],
            "properties": properties,
            "x-mlops": {
                "task": task,
                "target": dataset.target,
                "classes": list(classes) if classes is not None else None,
                "fields": fields,
                "passthrough": passthrough,
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
        passthrough: list[dict[str, Any]] = []
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
            if self._passthrough:
                passthrough.append({k: record[k] for k in self.passthrough if k in record})
            else:
                passthrough.append({})
        return Checked(rows, errors, flags, passthrough)

    def frame(self, rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
        """One model frame from checked rows, built by `pipeline.values.model_frame` exactly as
        training's `coerce` builds its frame (so a missing category is NaN here too). An
        all-numeric signature (the common case) becomes a single float block in one call,
        ~30x cheaper than a Series per column, with the same values and dtypes."""
        import numpy as np
        import pandas as pd

        names = self.names
        if self._numeric_only:
            block = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
            return pd.DataFrame(block, columns=names, copy=False)
        by_column = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return vals.model_frame(self._kinds, dict(zip(names, by_column, strict=True)))

    @property
    def _numeric_only(self) -> bool:
        return all(f.type in ("float", "int") for f in self.fields)

    def _check(
        self, record: Mapping[str, Any], index: int, reject_unseen: bool
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
        row: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        row_flags: list[str] = []
        for key in record:
            if key in self._passthrough:
                if not _scalar(record[key]):
                    errors.append(
                        {
                            "index": index,
                            "field": key,
                            "message": "expected text, a number, a bool or null "
                            "(a declared pass-through field)",
                        }
                    )
            elif key not in self._by_name:
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


_EXPECTED = {
    "float": "expected a number",
    "int": "expected a number",
    "bool": "expected true or false (or yes/no, t/f, y/n, 1/0)",
    "category": "expected a category (text or a number)",
    "datetime": "expected an ISO date/time string",
}


def _check_value(spec: FieldSpec, value: Any) -> tuple[Any, str | None, str | None]:
    """(coerced value, error message, flag) for one field of one record. What a value means
    (missing, a number, a bool spelling, a category, a date) is `pipeline.values`' rule, the
    one training's data checks apply."""
    parsed = vals.parse(spec.type, value)
    if parsed is None:
        if spec.nullable:
            return _missing(spec), None, None
        return None, "null is not allowed for this field", None
    if parsed is vals.INVALID:
        got = "" if spec.type not in ("float", "int") else f", got {_kind(value)}"
        return None, _EXPECTED[spec.type] + got, None
    if spec.type in ("float", "int"):
        return _check_number(spec, float(parsed))
    if spec.type == "datetime":
        return _check_datetime(spec, parsed)
    text = str(parsed)
    if spec.categories is not None and text not in spec.categories:
        return None, "not a declared category; expected one of " + ", ".join(spec.categories), None
    if spec.observed_categories is not None and text not in spec.observed_categories:
        return text, None, f"{UNSEEN_CATEGORY}:{spec.name}"
    return text, None, None


def _check_number(spec: FieldSpec, number: float) -> tuple[Any, str | None, str | None]:
    if not math.isfinite(number):
        return None, "expected a finite number", None
    if spec.type == "int" and not number.is_integer():
        return None, "expected a whole number", None
    if spec.min is not None and number < float(spec.min):
        return None, f"below the declared minimum {float(spec.min):g}", None
    if spec.max is not None and number > float(spec.max):
        return None, f"above the declared maximum {float(spec.max):g}", None
    lo, hi = spec.observed_min, spec.observed_max
    if (lo is not None and number < float(lo)) or (hi is not None and number > float(hi)):
        return number, None, f"{OUT_OF_RANGE}:{spec.name}"
    return number, None, None


def _check_datetime(spec: FieldSpec, moment: Any) -> tuple[Any, str | None, str | None]:
    """Declared limits refuse (as `validate` refuses training rows outside them); what
    training saw only flags, as for numbers."""
    text = vals.timestamp_text(moment)
    if spec.min is not None and vals.beyond(moment, str(spec.min), "min"):
        return None, f"before the declared minimum {spec.min}", None
    if spec.max is not None and vals.beyond(moment, str(spec.max), "max"):
        return None, f"after the declared maximum {spec.max}", None
    lo, hi = spec.observed_min, spec.observed_max
    if (lo is not None and moment < _instant(lo)) or (hi is not None and moment > _instant(hi)):
        return text, None, f"{OUT_OF_RANGE}:{spec.name}"
    return text, None, None


@functools.lru_cache(maxsize=1024)
def _instant(text: Any) -> Any:
    """A signature's datetime limit, parsed once (limits are canonical ISO text)."""
    return vals.timestamp(text)


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


def _kind(value: Any) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


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
        out = {"type": ["string", "null"] if nullable else "string", "format": "date-time"}
        for bound in ("min", "max"):
            if spec.get(bound) is not None:
                out[f"x-{bound}imum"] = spec[bound]
        return out
    out = {
        "type": ["string", "integer", "boolean", "null"]
        if nullable
        else ["string", "integer", "boolean"]
    }
    if spec.get("categories") is not None:
        out["x-categories"] = list(spec["categories"])
    return out
