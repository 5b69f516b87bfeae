"""Datasets: read, check against the declared schema, coerce to model-ready types, split.

The declared schema (conf/dataset/*.yaml) is the contract: every violation is listed with its
count and a few example rows, so a broken file is fixed in one pass. Splits are a pure function
of each row (a stable hash of its key, or of the whole row), so appending data never moves an
existing row between train, test and the production pool.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import values
from pipeline.errors import DataError
from pipeline.settings import ColumnSpec, DatasetSpec, SplitSpec
from pipeline.values import canonical_category

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = 5  # example rows shown per violation


# --------------------------------------------------------------------------------------- reading
def read_table(
    path: Path,
    fmt: str | None = None,
    csv: Mapping[str, Any] | None = None,
    *,
    text_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a CSV or Parquet file as it is (no casting: checking types is `check_data`'s job),
    except that `text_columns` of a CSV stay text, so "01234" is not read as 1234."""
    import pandas as pd

    fmt = fmt or path.suffix.lstrip(".").lower()
    if not path.is_file():
        raise DataError(
            f"{path}: data file does not exist",
            hint="check the path; a DVC-tracked file may need `dvc pull` (or `dvc repro`)",
        )
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "csv":
            from pipeline.validation import schema_defaults

            opts = {**schema_defaults("dataset", "$defs", "csv"), **(csv or {})}
            return pd.read_csv(
                path,
                sep=opts["sep"],
                decimal=opts["decimal"],
                encoding=opts["encoding"],
                na_values=opts["na_values"],
                keep_default_na=True,
                dtype=dict.fromkeys(text_columns, "string") or None,
            )
    except Exception as exc:
        raise DataError(
            f"{path}: cannot be read as {fmt}: {exc}",
            hint="check the file and dataset.source.format",
        ) from exc
    raise DataError(
        f"{path}: unsupported format {fmt!r}; expected csv or parquet",
        hint="name a .csv or .parquet file (or fix dataset.source.format)",
    )


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet written atomically and reproducibly (no index, fixed row-group size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io import atomic_open

    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh, row_group_size=1 << 17, compression="zstd")


# -------------------------------------------------------------------------------------- checking
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


# ------------------------------------------------------------------------------------- coercing
def coerce(df: pd.DataFrame, spec: DatasetSpec, *, with_target: bool = True) -> pd.DataFrame:
    """Declared columns in declared order, as the model frame `pipeline.values` defines: numbers
    as float64 (NaN for missing), categories and bools as canonical text (NaN for missing),
    dates as datetime64[ns]. The service and batch scoring build their frames the same way.
    Assumes `check_data` passed."""
    kinds: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for col in spec.columns:
        if col.role == "target" and not with_target:
            continue
        if col.name not in df.columns:
            raise DataError(f"column {col.name!r} is missing", hint="check the data file")
        kinds[col.name] = col.type
        parsed[col.name], _ = values.parse_column(col.type, df[col.name])
    frame = values.model_frame(kinds, parsed)
    frame.index = df.index
    return frame


def drop_missing_target(df: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    mask = df[spec.target].isna().to_numpy()
    return df.loc[~mask].reset_index(drop=True), int(mask.sum())


# ------------------------------------------------------------------------------------- splitting
def _canon(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return canonical_category(value)


def row_keys(df: pd.DataFrame, spec: DatasetSpec) -> list[str]:
    """The text each row is hashed by: the key column, or every declared column in name order
    (so column order in the file does not matter, and identical rows share a key)."""
    if spec.key:
        return [_canon(v) for v in df[spec.key].tolist()]
    names = sorted(c.name for c in spec.columns if c.name in df.columns)
    cols = [df[n].tolist() for n in names]
    return [
        "\x1f".join(f"{n}={_canon(v)}" for n, v in zip(names, row, strict=True))
        for row in zip(*cols, strict=True)
    ]


def stable_unit(keys: Iterable[str], salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per key, from a keyed BLAKE2b: independent of row order, of
    the rest of the data and of the library versions installed."""
    secret = hashlib.blake2b(salt.encode(), digest_size=32).digest()
    ints = [
        int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8, key=secret).digest(), "big")
        for k in keys
    ]
    return np.array(ints, dtype=np.uint64).astype(np.float64) / 2.0**64


def assign_splits(df: pd.DataFrame, spec: DatasetSpec, split: SplitSpec) -> np.ndarray:
    """'train' / 'test' / 'pool' for every row of `df` (missing targets already dropped)."""
    import pandas as pd

    labels = np.full(len(df), "train", dtype=object)
    if split.method == "time":
        assert split.time_column and split.test_from and split.pool_from
        parsed, invalid = values.parse_column("datetime", df[split.time_column])
        times = pd.Series(values.model_column("datetime", parsed))
        if invalid.any() or times.isna().any():
            raise DataError(
                f"split.time_column {split.time_column!r} has missing or unparseable "
                "values; a time split needs a time for every row"
            )
        labels[(times >= pd.Timestamp(split.test_from)).to_numpy()] = "test"
        labels[(times >= pd.Timestamp(split.pool_from)).to_numpy()] = "pool"
        return labels
    if split.method == "group":
        assert split.group_column
        units = stable_unit((_canon(v) for v in df[split.group_column].tolist()), split.salt)
    else:
        units = stable_unit(row_keys(df, spec), split.salt)
    assert split.test_size is not None and split.pool_size is not None  # required but for time
    if split.method == "stratified":
        return _stratified(df[spec.target].map(canonical_category).to_numpy(), units, split)
    labels[units < split.test_size] = "test"
    labels[(units >= split.test_size) & (units < split.test_size + split.pool_size)] = "pool"
    return labels


def _stratified(classes: np.ndarray, units: np.ndarray, split: SplitSpec) -> np.ndarray:
    assert split.test_size is not None and split.pool_size is not None
    labels = np.full(len(units), "train", dtype=object)
    for cls in sorted(set(classes)):
        idx = np.flatnonzero(classes == cls)
        order = idx[np.argsort(units[idx], kind="stable")]
        n_test = round(len(idx) * split.test_size)
        n_pool = round(len(idx) * split.pool_size)
        labels[order[:n_test]] = "test"
        labels[order[n_test : n_test + n_pool]] = "pool"
    return labels
