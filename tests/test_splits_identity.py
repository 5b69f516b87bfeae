"""The vectorised row hashing of `pipeline.splits` against the per-cell implementation it
replaced (kept here as the oracle): the same key text, the same units, the same assignments,
byte for byte, on adversarial data."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from pipeline import splits
from pipeline.settings import SplitSpec
from pipeline.values import canonical_category


# --------------------------------------------------------------------- the oracle (as it was)
def _old_canon(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return canonical_category(value)


def _old_row_keys(df: pd.DataFrame, names: list[str], key: str | None = None) -> list[str]:
    if key:
        return [_old_canon(v) for v in df[key].tolist()]
    names = sorted(n for n in names if n in df.columns)
    cols = [df[n].tolist() for n in names]
    return [
        "\x1f".join(f"{n}={_old_canon(v)}" for n, v in zip(names, row, strict=True))
        for row in zip(*cols, strict=True)
    ]


def _old_stable_unit(keys: list[str], salt: str) -> np.ndarray:
    secret = hashlib.blake2b(salt.encode(), digest_size=32).digest()
    ints = [
        int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8, key=secret).digest(), "big")
        for k in keys
    ]
    return np.array(ints, dtype=np.uint64).astype(np.float64) / 2.0**64


# ----------------------------------------------------------------------------- the data
FLOATS = [0.1, 1e-300, -0.0, 0.0, math.inf, -math.inf, math.nan, 1e16, 123456.0, 2.0, -3.5, 5e-324]


def _columns(n: int, rng: np.random.Generator) -> dict[str, pd.Series]:
    pick = lambda pool: [pool[i] for i in rng.integers(0, len(pool), n)]  # noqa: E731
    naive = pd.Timestamp("2024-03-01 12:00:00")
    stamps = [naive + pd.Timedelta(nanoseconds=int(x)) for x in rng.integers(0, 10**12, n)]
    texts = ["a", "", "2.0", "-3.00", "007", "2.50", "é", "日本", "١٢.0", "x\x1fy", "true", "nan"]
    return {
        "f64": pd.Series(pick(FLOATS), dtype="float64"),
        "f32": pd.Series(pick(FLOATS), dtype="float32"),
        # mostly distinct values: each cell formatted (the repeated ones above: a table)
        "f64_distinct": pd.Series(rng.normal(size=n) * 10.0 ** rng.integers(-30, 30, n)),
        "f32_distinct": pd.Series(rng.normal(size=n), dtype="float32"),
        "i64": pd.Series(rng.integers(-(2**62), 2**62, n), dtype="int64"),
        "u8": pd.Series(rng.integers(0, 255, n), dtype="uint8"),
        "b": pd.Series(rng.integers(0, 2, n).astype(bool)),
        "i_nullable": pd.Series(pick([1, 2, None, -7]), dtype="Int64"),
        "f_nullable": pd.Series(pick([0.1, None, -0.0, 3.0]), dtype="Float64"),
        "b_nullable": pd.Series(pick([True, False, None]), dtype="boolean"),
        "text_str": pd.Series(pick([*texts, None]), dtype="str"),
        "text_python": pd.Series(pick([*texts, None]), dtype="string[python]"),
        "text_arrow": pd.Series(pick([*texts, None]), dtype="string[pyarrow]"),
        "text_object": pd.Series(pick([*texts, None, math.nan, pd.NA]), dtype=object),
        "mixed_object": pd.Series(
            pick(
                [
                    1,
                    1.0,
                    True,
                    "1",
                    "1.0",
                    None,
                    math.nan,
                    pd.NA,
                    pd.NaT,
                    np.int64(3),
                    np.float32(0.1),
                    np.float32("nan"),
                    -0.0,
                    0.0,
                    dt.date(2020, 1, 2),
                    b"x",
                    naive,
                    2**70,
                    np.bool_(False),
                ]
            ),
            dtype=object,
        ),
        "ints_object": pd.Series(pick([1, 2, -3, 10**20]), dtype=object),
        "dt_naive": pd.Series(pick([*stamps[:5], pd.NaT]), dtype="datetime64[ns]"),
        "dt_utc": pd.Series(pick([*stamps[:5], pd.NaT]), dtype="datetime64[ns]").dt.tz_localize(
            "UTC"
        ),
        "dt_tz": pd.Series(stamps, dtype="datetime64[ns]").dt.tz_localize("Asia/Kolkata"),
        "dt_us": pd.Series(pick([*stamps[:3], pd.NaT]), dtype="datetime64[us]"),
        "cat": pd.Series(pick(["a", "b", None, "2.0"]), dtype="category"),
        "all_missing": pd.Series([None] * n, dtype=object),
        "all_missing_str": pd.Series([None] * n, dtype="str"),
    }


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame(_columns(600, np.random.default_rng(7)))


def test_each_column_canonicalises_as_before(frame: pd.DataFrame) -> None:
    for name in frame.columns:
        assert splits._canon_column(frame[name]) == [_old_canon(v) for v in frame[name].tolist()], (
            name
        )


def _spec(names: list[str], key: str | None = None) -> Any:
    """The two fields `row_keys` reads (a DatasetSpec needs a whole dataset declaration)."""
    return cast(Any, SimpleNamespace(key=key, columns=[SimpleNamespace(name=n) for n in names]))


def test_row_keys_units_and_assignments_as_before(frame: pd.DataFrame) -> None:
    names = [*frame.columns, "not_in_the_frame"]
    keys = splits.row_keys(frame, _spec(names))
    assert keys == _old_row_keys(frame, names)
    for salt in ("", "s", "日本"):
        assert splits.stable_unit(keys, salt).tobytes() == _old_stable_unit(keys, salt).tobytes()
    for key in ("text_object", "dt_tz", "f64", "mixed_object", "cat"):
        assert splits.row_keys(frame, _spec(names, key)) == _old_row_keys(frame, names, key)
    assert splits.row_keys(frame, _spec(["b"])) == _old_row_keys(frame, ["b"])
    assert splits.stable_unit([], "s").shape == (0,)


@pytest.mark.parametrize("column", ["mixed_object", "text_str", "dt_utc", "f64"])
def test_group_split_as_before(frame: pd.DataFrame, column: str) -> None:
    split = SplitSpec(
        method="group", salt="salt", test_size=0.2, pool_size=0.3, group_column=column,
        time_column=None, test_from=None, pool_from=None,
    )  # fmt: skip
    units = _old_stable_unit([_old_canon(v) for v in frame[column].tolist()], "salt")
    expected = np.where(units < 0.2, "test", np.where(units < 0.5, "pool", "train"))
    labels = splits.assign_splits(frame, _spec(list(frame.columns)), split)
    assert labels.tolist() == expected.tolist()


@pytest.mark.parametrize("method", ["hash", "stratified", "group"])
def test_assignments_hashed_block_by_block_as_before(
    frame: pd.DataFrame, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of 7 rows (the last one shorter): the same units as the whole frame at once."""
    monkeypatch.setattr(splits, "BLOCK_ROWS", 7)
    names = list(frame.columns)
    split = SplitSpec(
        method=method, salt="s", test_size=0.25, pool_size=0.25,
        group_column="text_object" if method == "group" else None,
        time_column=None, test_from=None, pool_from=None,
    )  # fmt: skip
    if method == "group":
        keys = [_old_canon(v) for v in frame["text_object"].tolist()]
    else:
        keys = _old_row_keys(frame, names)
    units = _old_stable_unit(keys, "s")
    spec = cast(Any, SimpleNamespace(**vars(_spec(names)), target="u8"))
    labels = splits.assign_splits(frame, spec, split)
    if method == "stratified":
        expected = splits._stratified(frame["u8"].map(canonical_category).to_numpy(), units, split)
    else:
        expected = np.where(units < 0.25, "test", np.where(units < 0.5, "pool", "train"))
    assert labels.tolist() == expected.tolist()
    assert splits.assign_splits(frame.iloc[:0], spec, split).tolist() == []
