"""`pipeline.values`: what a value means, and that a column and its cells get one verdict."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import values
from pipeline.values import INVALID, canonical_category

KINDS = ("float", "int", "bool", "category", "datetime")


@pytest.mark.parametrize(
    "value", [None, float("nan"), np.nan, pd.NA, pd.NaT, np.datetime64("NaT"), np.float32("nan")]
)
def test_every_spelling_of_missing_is_missing_for_every_kind(value: Any) -> None:
    assert values.is_missing(value)
    for kind in KINDS:
        assert values.parse(kind, value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (np.int64(3), 3.0),
        (2.5, 2.5),
        ("2.5", 2.5),
        ("-1e3", -1000.0),
        (".5", 0.5),
        (True, INVALID),
        (np.bool_(False), INVALID),
        ("nan", INVALID),
        ("inf", INVALID),
        ("1_000", INVALID),
        (" 3", INVALID),
        ("3\n", INVALID),  # whole-string match: a `$` anchor would have let a newline through
        ("three", INVALID),
        ([1], INVALID),
    ],
)
def test_numbers(value: Any, expected: Any) -> None:
    got = values.number(value)
    assert got is INVALID if expected is INVALID else got == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[
            (v, "true")
            for v in (True, np.bool_(True), 1, 1.0, "true", "TRUE", "t", "Yes", "y", "1")
        ],
        *[(v, "false") for v in (False, 0, 0.0, "false", "F", "no", "N", "0")],
        *[(v, INVALID) for v in (2, 0.5, "maybe", "", "ja", [True])],
    ],
)
def test_bool_spellings(value: Any, expected: Any) -> None:
    got = values.boolean(value)
    assert got is INVALID if expected is INVALID else got == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, "1"),
        (1.0, "1"),
        (np.int64(1), "1"),
        (np.float64(1.0), "1"),
        ("1", "1"),
        ("1.0", "1"),  # a nullable integer column exported to CSV by pandas
        ("-3.00", "-3"),
        ("007", "007"),  # text stays as written
        ("2.50", "2.50"),
        ("2.0\n", "2.0\n"),  # not a number's text: kept as written
        (2.5, "2.5"),
        (True, "true"),
        (np.bool_(True), "true"),
        ("gold", "gold"),
    ],
)
def test_canonical_categories(value: Any, expected: str) -> None:
    assert canonical_category(value) == expected
    assert values.category(value) == expected


def test_non_finite_numbers_and_containers_are_not_categories() -> None:
    for value in (math.inf, -math.inf, [1], {"a": 1}, object()):
        assert values.category(value) is INVALID


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-03-04", "2022-03-04T00:00:00"),
        ("2022-03-04T10:30", "2022-03-04T10:30:00"),
        ("2022-03-04T10:30:00Z", "2022-03-04T10:30:00"),
        ("2022-03-04T10:30:00+02:00", "2022-03-04T08:30:00"),  # converted to UTC
        (dt.date(2022, 3, 4), "2022-03-04T00:00:00"),
        (
            dt.datetime(2022, 3, 4, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2022-03-04T06:00:00",
        ),
        (np.datetime64("2022-03-04T10:30"), "2022-03-04T10:30:00"),
        (pd.Timestamp("2022-03-04", tz="Europe/Paris"), "2022-03-03T23:00:00"),
    ],
)
def test_datetimes_are_naive_utc(value: Any, expected: str) -> None:
    parsed = values.timestamp(value)
    assert isinstance(parsed, pd.Timestamp) and parsed.tzinfo is None
    assert values.timestamp_text(parsed) == expected
    assert values.timestamp(values.timestamp_text(parsed)) == parsed  # round trip


@pytest.mark.parametrize("value", ["yesterday", "2022-13-01", "", 20220304, "0001-01-01", True])
def test_not_datetimes(value: Any) -> None:
    assert values.timestamp(value) is INVALID


# Values of every kind a file or a request may hold, mixed within one column.
ANY_VALUE = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 1)),
    st.sampled_from(
        ["1", "1.0", "0", "yes", "No", "t", "x", "2.5", "2022-01-02", "2022-01-02T03:04+01:00", ""]
    ),
    st.just(math.inf),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(kind=st.sampled_from(KINDS), cells=st.lists(ANY_VALUE, max_size=30))
def test_a_column_gets_the_verdict_of_its_cells(kind: str, cells: list[Any]) -> None:
    """`parse_column` (files: one distinct value at a time, or vectorised) and `parse`
    (requests: one value at a time) never disagree."""
    series = pd.Series(cells, dtype=object)
    parsed, invalid = values.parse_column(kind, series)
    for i, cell in enumerate(cells):
        one = values.parse(kind, cell)
        assert invalid[i] == (one is INVALID), (kind, cell)
        if one is INVALID:
            continue
        if kind in ("float", "int"):
            assert (math.isnan(parsed[i]) and one is None) or parsed[i] == one, (kind, cell)
        else:
            assert parsed[i] == one, (kind, cell)


def test_typed_columns_take_the_vectorised_path_with_the_same_results() -> None:
    floats = pd.Series([1.0, None, 2.5], dtype="Float64")
    parsed, invalid = values.parse_column("float", floats)
    assert np.array_equal(parsed, [1.0, np.nan, 2.5], equal_nan=True) and not invalid.any()
    aware = pd.Series(pd.to_datetime(["2022-01-01T10:00+02:00", None], utc=True))
    parsed, invalid = values.parse_column("datetime", aware)
    assert parsed[0] == pd.Timestamp("2022-01-01T08:00") and parsed[1] is None
    assert not invalid.any()


def test_model_frame_dtypes() -> None:
    frame = values.model_frame(
        {"n": "int", "c": "category", "b": "bool", "d": "datetime"},
        {
            "n": [1.0, np.nan],
            "c": ["a", None],
            "b": ["true", None],
            "d": ["2022-01-01T00:00:00", None],
        },
    )
    assert [str(t) for t in frame.dtypes] == ["float64", "str", "str", "datetime64[ns]"]
    assert frame["c"].isna().tolist() == [False, True]
    assert frame["d"].isna().tolist() == [False, True]


def test_a_date_only_max_includes_its_whole_day() -> None:
    last_day = values.timestamp("2023-12-31T23:59:59")
    assert not values.beyond(last_day, "2023-12-31", "max")
    assert values.beyond(values.timestamp("2024-01-01"), "2023-12-31", "max")
    assert values.beyond(last_day, "2023-12-31T12:00:00", "max")  # a time is exact
    assert values.beyond(values.timestamp("2021-12-31T23:00"), "2022-01-01", "min")
    assert not values.beyond(values.timestamp("2022-01-01"), "2022-01-01", "min")
