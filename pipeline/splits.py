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
