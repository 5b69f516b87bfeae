"""Column-wise input validation for batch scoring, with exactly `Signature.validate`'s results.

`Signature.validate` checks one record at a time (right for a service request of a few
records); a file of a million rows needs whole-column operations. This module gives the same
verdict, the same messages, the same flags and the same accepted frame for the records a file
decodes to (one record per row; null, NaN and NA all mean "missing"), by:

* numbers in numeric columns: numpy masks, in the precedence `_check_value` applies
  (null → type → finite → whole number → declared min → declared max → observed range);
* text, categories, booleans, dates: each *distinct* value is checked once with the same scalar
  function the service uses (`signature._check_value`), and the verdict broadcast to its rows;
* anything else (an object column mixing numbers and text): the scalar function per value.

A test checks both validators agree on every kind of good and bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import values as vals
from pipeline.deploy.signature import (
    OUT_OF_RANGE,
    UNSEEN_CATEGORY,
    FieldSpec,
    Signature,
    _check_value,
)

if TYPE_CHECKING:
    import pandas as pd

UNKNOWN_FIELD = "unknown field; expected only the model's input fields"
REQUIRED_MISSING = "required field is missing"


@dataclass
class ColumnsValidated:
    """Per-row verdicts for a frame: which rows passed, their model frame, errors and flags."""

    ok: np.ndarray  # bool per input row
    frame: pd.DataFrame  # accepted rows only, model column order, validate()'s dtypes
    errors: list[dict[str, Any]] = field(default_factory=list)  # {index, field, message}
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # flag -> mask over input rows

    def row_flags(self) -> list[list[str]]:
        """Flags per accepted row, in field order (as `Signature.validate` lists them)."""
        out: list[list[str]] = [[] for _ in range(int(self.ok.sum()))]
        accepted = np.cumsum(self.ok) - 1
        for flag, mask in self.flags.items():
            for i in np.flatnonzero(mask & self.ok):
                out[accepted[i]].append(flag)
        return out

    def joined_flags(self) -> np.ndarray:
        """Comma-joined flags per accepted row (None when a row has none), vectorised."""
        joined = np.full(len(self.ok), None, dtype=object)
        for flag, mask in self.flags.items():
            rows = np.flatnonzero(mask)
            if len(rows):
                current = joined[rows]
                joined[rows] = [flag if c is None else f"{c},{flag}" for c in current]
        return joined[self.ok]


@dataclass
class _FieldResult:
    """One column's verdicts: problem codes (0 = none) index `messages`, so a clean numeric
    column of a million rows never touches a Python object."""

    values: Any  # coerced values for every row (garbage where the row failed)
    code: np.ndarray  # uint16 per row: 0 = no problem, k = messages[k]
    messages: list[str | None]
    flag: np.ndarray  # bool per row: outside what training saw (and no problem)

    def with_code(self, mask: np.ndarray, message: str) -> None:
        """Give `message` to the rows in `mask` that have no problem yet."""
        target = mask & (self.code == 0)
        if target.any():
            self.messages.append(message)
            self.code[target] = len(self.messages) - 1


def validate_columns(
    signature: Signature, frame: pd.DataFrame, *, reject_unseen: bool = False
) -> ColumnsValidated:
    """Validate every row of `frame` as `signature.validate` validates the row's record."""

    n = len(frame)
    # (position in a record's error list, field, verdicts); unknown fields come first
    found: list[tuple[int, str, _FieldResult]] = []
    names = set(signature.names)
    names |= set(signature.passthrough)
    unknown = [str(c) for c in frame.columns if c not in names]
    for position, column in enumerate(unknown):
        found.append((position, column, _constant(n, UNKNOWN_FIELD)))
    values: dict[str, Any] = {}
    flags: dict[str, np.ndarray] = {}
    for i, spec in enumerate(signature.fields):
        position = len(unknown) + i
        numeric = spec.type in ("float", "int")
        if spec.name not in frame.columns:
            if spec.nullable:
                values[spec.name] = np.full(n, np.nan if numeric else None)
            else:
                found.append((position, spec.name, _constant(n, REQUIRED_MISSING)))
            continue
        result = _validate_field(spec, frame[spec.name])
        if reject_unseen:
            kind = "out of range" if numeric else "unseen category"
            result.with_code(
                result.flag, f"{kind}: outside what the model was trained on (policy: reject)"
            )
        else:
            flag = result.flag & (result.code == 0)
            if flag.any():
                flags[f"{OUT_OF_RANGE if numeric else UNSEEN_CATEGORY}:{spec.name}"] = flag
        found.append((position, spec.name, result))
        values[spec.name] = result.values
    bad = np.zeros(n, dtype=bool)
    for _, _, result in found:
        bad |= result.code != 0
    errors = _errors(found) if bad.any() else []
    ok = ~bad
    if (
        ok.all()
        and list(frame.columns) == signature.names
        and all(dtype == np.float64 for dtype in frame.dtypes)
    ):  # all numbers, all good: the frame as it is (what the loop below would rebuild)
        return ColumnsValidated(ok, frame, errors, flags)
    parsed: dict[str, Any] = {}
    for spec in signature.fields:
        numeric = spec.type in ("float", "int")
        if spec.name in values:  # else a required column is missing: no row is accepted
            cells = np.asarray(values[spec.name], dtype=float if numeric else object)
            parsed[spec.name] = cells if ok.all() else cells[ok]
        else:
            parsed[spec.name] = np.empty(0, dtype=float if numeric else object)
    kinds = {spec.name: spec.type for spec in signature.fields}
    accepted = vals.model_frame(kinds, parsed)
    return ColumnsValidated(ok, accepted, errors, flags)


def _constant(n: int, message: str) -> _FieldResult:
    return _FieldResult(None, np.ones(n, dtype=np.uint16), [None, message], np.zeros(n, bool))


def _errors(found: list[tuple[int, str, _FieldResult]]) -> list[dict[str, Any]]:
    """Every problem as {index, field, message}, ordered by row, then as a record lists them."""
    rows, order, fields, messages = [], [], [], []
    for position, name, result in found:
        idx = np.flatnonzero(result.code)
        if not len(idx):
            continue
        rows.append(idx)
        order.append(np.full(len(idx), position))
        fields.extend([name] * len(idx))
        table = np.array(result.messages, dtype=object)
        messages.append(table[result.code[idx]])
    all_rows = np.concatenate(rows)
    all_messages = np.concatenate(messages)
    sort = np.lexsort((np.concatenate(order), all_rows))
    return [
        {"index": int(all_rows[k]), "field": fields[k], "message": str(all_messages[k])}
        for k in sort
    ]


def _validate_field(spec: FieldSpec, series: pd.Series) -> _FieldResult:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):  # a client sends ISO strings
        series = pd.Series([None if pd.isna(v) else v.isoformat() for v in series], dtype=object)
    dtype = series.dtype
    is_bool = pd.api.types.is_bool_dtype(dtype)
    is_number = not is_bool and (
        pd.api.types.is_float_dtype(dtype) or pd.api.types.is_integer_dtype(dtype)
    )
    if spec.type in ("float", "int"):
        if is_number:
            return _numeric(spec, series.to_numpy(dtype=float, na_value=np.nan))
        return _per_value(spec, series)
    if is_number or is_bool or _all_text(series):
        return _by_distinct_value(spec, series)
    return _per_value(spec, series)


def _all_text(series: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return True
    return series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in (
        "string",
        "empty",
    )


def _numeric(spec: FieldSpec, x: np.ndarray) -> _FieldResult:
    """`_check_value` for a float column, as masks in the same precedence.

    Most columns are clean: one pass for the extremes and one for nulls prove it, and the
    per-row masks are only computed for a column whose extremes cross a limit."""
    n = len(x)
    result = _FieldResult(x, np.zeros(n, dtype=np.uint16), [None], np.zeros(n, dtype=bool))
    if n and _clean(spec, x):
        return result
    null = np.isnan(x)
    if not spec.nullable and null.any():
        result.with_code(null, "null is not allowed for this field")
    finite = np.isfinite(x)
    if not (finite | null).all():
        result.with_code(~null & ~finite, "expected a finite number")
    with np.errstate(invalid="ignore"):
        if spec.type == "int":
            result.with_code(finite & (np.mod(x, 1.0) != 0), "expected a whole number")
        if spec.min is not None:
            result.with_code(finite & (x < spec.min), f"below the declared minimum {spec.min:g}")
        if spec.max is not None:
            result.with_code(finite & (x > spec.max), f"above the declared maximum {spec.max:g}")
        if spec.observed_min is not None:
            result.flag |= finite & (x < spec.observed_min)
        if spec.observed_max is not None:
            result.flag |= finite & (x > spec.observed_max)
    result.flag &= result.code == 0
    return result


def _clean(spec: FieldSpec, x: np.ndarray) -> bool:
    """True when no value of `x` has a problem or a flag (NaN-aware extremes)."""
    lo, hi = float(np.fmin.reduce(x)), float(np.fmax.reduce(x))
    if lo != lo:  # every value is missing
        return spec.nullable
    floor = max((float(b) for b in (spec.min, spec.observed_min) if b is not None), default=-np.inf)
    ceiling = min(
        (float(b) for b in (spec.max, spec.observed_max) if b is not None), default=np.inf
    )
    if not (np.isfinite(lo) and np.isfinite(hi) and floor <= lo and hi <= ceiling):
        return False
    if spec.type == "int" and bool((np.mod(x, 1.0) > 0).any()):  # NaN compares False
        return False
    return spec.nullable or not bool(np.isnan(x).any())


def _scalar(spec: FieldSpec, value: Any) -> tuple[Any, str | None, bool]:
    coerced, problem, flag = _check_value(spec, value)
    return coerced, problem, flag is not None


def _by_distinct_value(spec: FieldSpec, series: pd.Series) -> _FieldResult:
    """Check each distinct value once. Only for single-type columns (text, numbers, booleans):
    factorising an object column that mixes 1, 1.0 and True would merge values the scalar
    check tells apart."""
    import pandas as pd

    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    checked = [_scalar(spec, v) for v in _plain_list(uniques)]
    checked.append(_scalar(spec, None))  # the verdict on missing values, picked by code -1
    table = _table(checked)
    picks = np.where(codes < 0, len(checked) - 1, codes)
    return _FieldResult(table.values[picks], table.code[picks], table.messages, table.flag[picks])


def _table(checked: list[tuple[Any, str | None, bool]]) -> _FieldResult:
    """Verdicts of the scalar check as a _FieldResult (one row per checked value)."""
    messages: list[str | None] = [None]
    index: dict[str, int] = {}
    code = np.zeros(len(checked), dtype=np.uint16)
    for i, (_, problem, _) in enumerate(checked):
        if problem is not None:
            code[i] = index.setdefault(problem, len(index) + 1)
            if code[i] == len(messages):
                messages.append(problem)
    values = np.empty(len(checked), dtype=object)
    values[:] = [c[0] for c in checked]
    flag = np.array([c[2] for c in checked], dtype=bool) & (code == 0)
    return _FieldResult(values, code, messages, flag)


def _plain_list(values: Any) -> list[Any]:
    out = values.tolist() if hasattr(values, "tolist") else list(values)
    return [v.item() if isinstance(v, np.generic) else v for v in out]


def _per_value(spec: FieldSpec, series: pd.Series) -> _FieldResult:
    """The scalar check on every value: for object columns that mix types."""
    return _table([_scalar(spec, v) for v in _plain_list(series.to_numpy(dtype=object))])
