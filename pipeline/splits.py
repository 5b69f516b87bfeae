"""Splitting rows into train, test and the production pool.

A split is a pure function of each row (a stable hash of its key, of its group, or of the whole
row; or its time), so appending data never moves an existing row between train, test and the
pool, and maintenance appending feedback rows keys them the same way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline import values
from pipeline.errors import DataError
from pipeline.settings import DatasetSpec, SplitSpec
from pipeline.values import canonical_category

if TYPE_CHECKING:
    import pandas as pd


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
    (so column order in the file does not matter, and identical rows share a key).

    Built column by column (`_canon_column`), then joined row by row in C: the text is exactly
    `_canon` of each cell, which used to be one Python call per cell and per row."""
    if spec.key:
        return _canon_column(df[spec.key])
    names = sorted(c.name for c in spec.columns if c.name in df.columns)
    if not names:
        return [""] * len(df)
    cols = [_canon_column(df[n], f"{n}=") for n in names]
    if len(cols) == 1:
        return cols[0]
    return list(map("\x1f".join, zip(*cols, strict=True)))


def _canon_column(series: pd.Series, prefix: str = "") -> list[str]:
    """`[prefix + _canon(v) for v in series.tolist()]`, computed by dtype where that is exact:

    * floats (numpy): `repr` of each value, "" for NaN (no factorizing: -0.0 and 0.0 differ);
    * ints and bools (numpy): `str`, "true" / "false";
    * text (every present value a `str`) and datetimes (one dtype, so one time zone): each
      distinct value canonicalised once, then taken per row; missing cells (NaN, None, pd.NA or
      NaT, each with its own text) one by one;
    * anything else (mixed objects, nullable and categorical dtypes): one `_canon` per cell.
    """
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        if dtype.kind == "f":
            return _float_texts(series.to_numpy(), prefix)
        cells = series.to_numpy().tolist()
        if dtype.kind == "b":
            yes, no = prefix + "true", prefix + "false"
            return [yes if v else no for v in cells]
        return list(map(prefix.__add__, map(str, cells)))
    text = (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype)
    times = isinstance(dtype, pd.DatetimeTZDtype) or (
        isinstance(dtype, np.dtype) and dtype.kind == "M"
    )
    if times or (text and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        canon = np.array([*(prefix + _canon(v) for v in uniques.tolist()), ""], dtype=object)
        out = canon[codes]  # code -1 (missing) picks the placeholder, replaced below
        missing = np.flatnonzero(codes < 0)
        if len(missing):
            out[missing] = [prefix + _canon(v) for v in series.iloc[missing].tolist()]
        result: list[str] = out.tolist()
        return result
    return [prefix + _canon(v) for v in series.tolist()]


def _float_texts(values: np.ndarray, prefix: str) -> list[str]:
    """`prefix + repr(v)` per value ("" for NaN), each distinct value formatted once.

    Values are told apart by their bits (so -0.0 and 0.0 stay two texts; every NaN is ""):
    `repr` costs about 0.5 us a cell, and real columns (ages, counts, prices stored as floats)
    repeat values, while factorizing costs a few tens of nanoseconds a cell."""
    import pandas as pd

    wide = values.astype(np.float64, copy=False)  # the Python float `tolist` gave, exactly
    codes, uniques = pd.factorize(wide.view(np.int64))
    if len(uniques) * 2 > len(wide):  # mostly distinct: format each cell, no table
        return [prefix + r if r != "nan" else prefix for r in map(repr, wide.tolist())]
    floats = uniques.view(np.float64).tolist()
    table = np.array([prefix + r if r != "nan" else prefix for r in map(repr, floats)], object)
    result: list[str] = table[codes].tolist()
    return result


BLOCK_ROWS = 100_000  # rows whose key texts are held at once while hashing


def _blocks(df: pd.DataFrame) -> list[pd.DataFrame]:
    """`df` in runs of BLOCK_ROWS rows: the key texts of a whole large frame (a Python string
    per cell) would take far more memory than the frame itself."""
    return [df.iloc[i : i + BLOCK_ROWS] for i in range(0, len(df), BLOCK_ROWS)]


def stable_unit(keys: Iterable[str], salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per key, from a keyed BLAKE2b: independent of row order, of
    the rest of the data and of the library versions installed.

    The keyed state is set up once and copied per key (the same digest as a fresh keyed hash),
    and the 8-byte digests are read as big-endian integers at once."""
    secret = hashlib.blake2b(salt.encode(), digest_size=32).digest()
    keyed = hashlib.blake2b(digest_size=8, key=secret)

    def digest(key: str) -> bytes:
        h = keyed.copy()
        h.update(key.encode())
        return h.digest()

    ints = np.frombuffer(b"".join(map(digest, keys)), dtype=">u8")
    return ints.astype(np.uint64).astype(np.float64) / 2.0**64


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
    column = split.group_column if split.method == "group" else None
    if split.method == "group":
        assert column
    units = np.concatenate(
        [
            stable_unit(
                _canon_column(block[column]) if column else row_keys(block, spec), split.salt
            )
            for block in _blocks(df)
        ]
        or [np.empty(0)]
    )
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
