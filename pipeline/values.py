"""What a cell value means, for every path a value takes: data checks and coercion, training,
the input signature, the service, batch scoring and monitoring.

A model is only as consistent as the values it is fed. The same row must reach the model as the
same frame whether it came from a CSV, a Parquet file, a JSON request or a production window,
or offline scores and served scores drift apart (a missing category was `NaN` in training and
`None` in the service: the imputer saw the one and not the other). So every rule lives here,
once, and every path calls it:

* **missing**: `None`, `NaN`, `pd.NA`, `NaT` (and an empty CSV cell, which readers turn into one
  of those) all mean "missing", for every column type.
* **numbers** (`float`, `int`): Python and numpy numbers, or text that is a decimal number
  (`"3"`, `"-1.5e3"`); never booleans (a `true` for a number is a client bug, not a 1). Non-finite
  values are refused. An `int` column refuses fractions.
* **booleans**: `true/false`, `t/f`, `yes/no`, `y/n`, `1/0` in any case, Python and numpy bools,
  the numbers 0 and 1; canonically the text `"true"` / `"false"`.
* **categories**: compared as text: `1`, `1.0` and `"1"` name one category, `True` and `"true"`
  too (`canonical_category`). Any finite number or text is a category value.
* **datetimes**: ISO 8601 text (as `datetime.fromisoformat` reads it), `datetime`/`date`,
  `pd.Timestamp` or `numpy.datetime64`; values with a UTC offset are converted to UTC and made
  naive, naive values are taken as they are (so a column mixing both is read as UTC wall time).
  Canonically `datetime64[ns]` in frames and the ISO text of that value in JSON
  (`timestamp_text`), which parses back to the same instant.

In a model frame (`model_frame`, used by training's `coerce` and by the signature's `frame`):
numbers are float64 with NaN for missing; categories and booleans are pandas' `str` columns of
canonical text with NaN for missing (what scikit-learn's imputers call missing, and what the
same column reads back as from Parquet); datetimes are `datetime64[ns]` with `NaT`.

Scalar parsers return `INVALID` for a value of the wrong kind; column parsers return the parsed
column and a mask of invalid (non-missing) cells, and check each distinct value once, with the
scalar parser, so a file and a request can never disagree.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

ColumnKind = str  # float | int | bool | category | datetime

TRUE_SPELLINGS: Final = frozenset({"true", "t", "yes", "y", "1"})
FALSE_SPELLINGS: Final = frozenset({"false", "f", "no", "n", "0"})
NUMERIC_KINDS: Final = frozenset({"float", "int"})
CATEGORICAL_KINDS: Final = frozenset({"category", "bool"})
DATETIME_DTYPE: Final = "datetime64[ns]"


class _Invalid:
    """The marker a scalar parser returns for a value of the wrong kind."""

    _instance: _Invalid | None = None

    def __new__(cls) -> _Invalid:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INVALID"

    def __reduce__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
# Decimal numbers as text: what a CSV cell or a JSON string may hold for a number. Python's
# float() would also take "nan", "inf", "1_000" and surrounding whitespace; none is a number here.
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE_WITH_POINT = re.compile(r"(-?\d+)\.0+")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


# ----------------------------------------------------------------------------------- scalars
def is_missing(value: Any) -> bool:
    """None, NaN (Python or numpy), pd.NA and NaT (pandas or numpy) are all "missing"."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    kind = type(value).__name__
    return kind in ("NAType", "NaTType")


def plain(value: Any) -> Any:
    """A value as a JSON client would send it: None for every kind of missing, numpy scalars as
    Python scalars, datetimes as ISO text (see `timestamp_text`)."""
    if is_missing(value):
        return None
    if isinstance(value, _dt.datetime | _dt.date | np.datetime64):
        parsed = timestamp(value)
        return None if parsed is INVALID or parsed is None else timestamp_text(parsed)
    if isinstance(value, np.generic):
        return value.item()
    return value


def number(value: Any) -> float | _Invalid | None:
    """A number as float (None when missing); INVALID for anything else, booleans included."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return INVALID
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        return float(value)
    return INVALID


def boolean(value: Any) -> str | _Invalid | None:
    """ "true" / "false" (None when missing); INVALID for anything that is not a bool spelling."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        return {1.0: "true", 0.0: "false"}.get(float(value), INVALID)
    if isinstance(value, str):
        text = value.lower()
        if text in TRUE_SPELLINGS:
            return "true"
        if text in FALSE_SPELLINGS:
            return "false"
    return INVALID


def canonical_category(value: Any) -> str:
    """The text a category value is compared by: 1, 1.0, np.int64(1), "1" and "1.0" are one
    category, True and "true" another.

    Text that is a whole number written with a decimal point ("2.0", "-3.00") is the number's
    text: that is how a pandas frame exports a nullable integer column to CSV, and the same
    category must not split in two between a Parquet file (2.0) and its CSV copy ("2.0").
    Other text is kept as written ("007" stays "007", "2.50" stays "2.50")."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        whole = _WHOLE_WITH_POINT.fullmatch(value)
        return whole.group(1) if whole else value
    return str(value)


def category(value: Any) -> str | _Invalid | None:
    """A category value as canonical text (None when missing); INVALID for non-finite numbers
    and anything that is not text, a number or a bool."""
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return INVALID
    if isinstance(value, str | int | float | bool):
        return canonical_category(value)
    return INVALID


def timestamp(value: Any) -> pd.Timestamp | _Invalid | None:
    """A point in time as a naive `pd.Timestamp` (UTC when the value carried an offset; None
    when missing); INVALID for anything that is not ISO 8601 text (as Python's
    `datetime.fromisoformat` reads it) or a date/time object, or outside datetime64[ns]."""
    import pandas as pd

    if is_missing(value):
        return None
    if isinstance(value, str):
        try:
            moment: Any = _dt.datetime.fromisoformat(value)
        except ValueError:
            return INVALID
    elif isinstance(value, _dt.datetime | np.datetime64):
        moment = value
    elif isinstance(value, _dt.date):
        moment = _dt.datetime.combine(value, _dt.time())
    else:
        return INVALID
    try:
        parsed = pd.Timestamp(moment)
        if parsed.tzinfo is not None:
            parsed = parsed.tz_convert("UTC").tz_localize(None)
        return parsed.as_unit("ns")
    except (ValueError, OverflowError):  # outside datetime64[ns]: 1677-2262
        return INVALID


def beyond(moment: pd.Timestamp, limit: str, side: str) -> bool:
    """Whether `moment` lies outside a declared datetime limit: before `min`, after `max`. A
    date-only `max` ("2023-12-31") includes that whole day, as a reader of the declaration
    means it; a limit with a time is exact."""
    edge, whole_day = _limit(limit, side)
    if side == "min":
        return bool(moment < edge)
    return bool(moment >= edge) if whole_day else bool(moment > edge)


@functools.lru_cache(maxsize=256)
def _limit(limit: str, side: str) -> tuple[pd.Timestamp, bool]:
    """(the edge, whether a max is the start of the next day): parsed once per limit."""
    import pandas as pd

    edge = timestamp(limit)
    if edge is None or isinstance(edge, _Invalid):
        raise ValueError(f"not a datetime limit: {limit!r}")
    whole_day = side == "max" and bool(_DATE_ONLY.fullmatch(limit.strip()))
    return (edge + pd.Timedelta(days=1) if whole_day else edge), whole_day


def timestamp_text(value: pd.Timestamp) -> str:
    """The canonical ISO text of a parsed timestamp (parses back to the same value)."""
    return value.isoformat()


def parse(kind: ColumnKind, value: Any) -> Any:
    """The scalar parser of a column type: number, boolean, category or timestamp."""
    return _SCALAR[kind](value)


# ----------------------------------------------------------------------------------- columns
def parse_column(kind: ColumnKind, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(parsed values, invalid mask) for a whole column of any dtype.

    Parsed values are float64 (NaN for missing; infinities and fractions are left for the
    caller to judge, as `number` leaves them) for numbers, canonical text or None (object) for
    categories and booleans, and naive `pd.Timestamp` or None (object) for datetimes; where the
    mask is set the value is garbage. Numeric dtypes take a vectorised path; every other column
    is checked one *distinct* value at a time with the scalar parser, so a column and a record
    always get the same verdict.
    """
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(_object_array(values))
    n = len(series)
    dtype = series.dtype
    if kind in NUMERIC_KINDS:
        if _is_number_dtype(dtype):
            return series.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(n, dtype=bool)
        parsed, invalid = _by_distinct(series, _SCALAR[kind])
        out = np.full(n, np.nan)
        good = ~invalid & np.array([p is not None for p in parsed], dtype=bool)
        out[good] = np.asarray(parsed[good], dtype=np.float64)
        return out, invalid
    if kind == "datetime" and pd.api.types.is_datetime64_any_dtype(dtype):
        column = series
        if getattr(dtype, "tz", None) is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        column = column.astype(DATETIME_DTYPE)
        out = np.empty(n, dtype=object)
        out[:] = [None if v is pd.NaT else v for v in column.tolist()]
        return out, np.zeros(n, dtype=bool)
    return _by_distinct(series, _SCALAR[kind])


def model_column(kind: ColumnKind, parsed: Any) -> Any:
    """A model frame's column, as an array (no index to align), from parsed values (see the
    module docstring for the dtypes)."""
    import pandas as pd

    if kind in NUMERIC_KINDS:
        return np.asarray(parsed, dtype=np.float64)
    if kind == "datetime":  # Timestamps, or their canonical text (a checked request's value)
        cells = [timestamp(v) if isinstance(v, str) else v for v in _object_array(parsed)]
        return np.array(
            [np.datetime64("NaT") if v is None else v for v in cells], dtype=DATETIME_DTYPE
        )
    # Text with NaN for missing, as the same column reads back from Parquet (pandas' "str").
    return pd.array(_object_array(parsed), dtype="str")


def model_frame(kinds: Mapping[str, ColumnKind], columns: Mapping[str, Any]) -> pd.DataFrame:
    """The frame a model sees, in `kinds` order, from parsed column values."""
    import pandas as pd

    data = {name: model_column(kind, columns[name]) for name, kind in kinds.items()}
    return pd.DataFrame(data, columns=list(kinds), copy=False)


def _object_array(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    cells = np.empty(len(values), dtype=object)
    cells[:] = list(values)
    return cells


def _is_number_dtype(dtype: Any) -> bool:
    import pandas as pd

    if pd.api.types.is_bool_dtype(dtype):
        return False
    return bool(pd.api.types.is_float_dtype(dtype) or pd.api.types.is_integer_dtype(dtype))


def _by_distinct(series: pd.Series, parse_one: Any) -> tuple[np.ndarray, np.ndarray]:
    """Parse each distinct value once and broadcast the verdicts to its rows."""
    import pandas as pd

    cells = series.to_numpy(dtype=object, na_value=None)
    text = _all_text(series)
    if text:
        keys: np.ndarray = cells
    else:
        # Factorise Python values with their type: 1, 1.0 and True are equal in Python but
        # not the same value here (1.0 is a number, True is not).
        keys = np.empty(len(cells), dtype=object)
        keys[:] = [None if v is None else (type(v), v) for v in cells]
    try:
        codes, uniques = pd.factorize(keys, use_na_sentinel=True)
        distinct = [u if text else u[1] for u in uniques]
    except TypeError:  # unhashable values (a list or dict in a JSON-decoded column)
        codes, distinct = np.arange(len(cells)), list(cells)
        codes = np.where([v is None for v in cells], -1, codes)
    parsed = [parse_one(v) for v in distinct]
    parsed.append(None)  # code -1: missing
    table = np.empty(len(parsed), dtype=object)
    table[:] = [None if p is INVALID else p for p in parsed]
    bad = np.array([p is INVALID for p in parsed], dtype=bool)
    picks = np.where(codes < 0, len(parsed) - 1, codes)
    return table[picks], bad[picks]


def _all_text(series: pd.Series) -> bool:
    import pandas as pd

    dtype = series.dtype
    if dtype.kind != "O":
        return bool(pd.api.types.is_string_dtype(dtype))
    return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")


_SCALAR: Final = {
    "float": number,
    "int": number,
    "bool": boolean,
    "category": category,
    "datetime": timestamp,
}
