"""The column-wise batch validator gives exactly `Signature.validate`'s verdicts: same errors
(row, field, message, order), same flags, same accepted frame, for every kind of value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.deploy.columns import validate_columns
from pipeline.deploy.signature import Signature
from pipeline.deploy.smoke import to_records

FIELDS = [
    {"name": "x", "type": "float", "nullable": False, "min": 0.0, "max": 10.0,
     "observed_min": 1.0, "observed_max": 9.0},
    {"name": "n", "type": "int", "nullable": True, "min": None, "max": 100.0,
     "observed_min": 0.0, "observed_max": 50.0},
    {"name": "color", "type": "category", "nullable": False,
     "categories": ["red", "green", "blue"], "observed_categories": ["green", "red"]},
    {"name": "code", "type": "category", "nullable": True, "observed_categories": ["1", "2"]},
    {"name": "flag", "type": "bool", "nullable": True, "categories": ["false", "true"],
     "observed_categories": ["false", "true"]},
    {"name": "when", "type": "datetime", "nullable": True},
]  # fmt: skip


@pytest.fixture(scope="module")
def signature() -> Signature:
    return Signature(
        {"x-mlops": {"task": "classification", "target": "y", "classes": None, "fields": FIELDS}}
    )


def typed_frame() -> pd.DataFrame:
    """Typed columns, as a Parquet file gives them."""
    return pd.DataFrame(
        {
            "x": [5.0, np.nan, -1.0, 11.0, 0.5, np.inf, 9.5, 3.0],
            "n": [1.0, 2.5, np.nan, 60.0, 101.0, -3.0, 7.0, 8.0],
            "color": ["red", "blue", "purple", None, "green", "red", "GREEN", "red"],
            "code": [1, 2, 3, 1, 2, 2, 1, 9],
            "flag": [True, False, True, False, True, True, False, True],
            "when": pd.to_datetime(
                ["2021-01-01", None, "2021-03-01 12:30", "2021-01-02", None, None, None, None],
                format="ISO8601",
            ),
        }
    )


def mixed_frame() -> pd.DataFrame:
    """Object columns mixing types, as a CSV with bad cells decodes (or a hand-built frame)."""
    return pd.DataFrame(
        {
            "x": [1.5, "abc", True, None, 2, 4.0, "7", 8.0],
            "n": [1, 2.0, "3", 4.5, None, np.nan, 10**3, -1],
            "color": ["red", 1, 1.0, True, None, 2.5, "green", "blue"],
            "code": [1, 1.0, True, "1", "x", 2.5, None, "2"],
            "flag": ["true", "0", "yes", 1, True, "FALSE", None, 0.0],
            "when": ["2021-01-01", "nope", 20210101, None, "2021-02-30", "2021-12-31T23:59", "",
                     1.5],
        }
    )  # fmt: skip


def assert_same(signature: Signature, frame: pd.DataFrame, reject_unseen: bool) -> None:
    records = to_records(frame, list(frame.columns))
    expected = signature.validate(records, reject_unseen=reject_unseen)
    got = validate_columns(signature, frame, reject_unseen=reject_unseen)
    assert got.errors == expected.errors
    bad = {e["index"] for e in expected.errors}
    assert got.ok.tolist() == [i not in bad for i in range(len(frame))]
    good = [r for i, r in enumerate(records) if i not in bad]
    reference = signature.validate(good, reject_unseen=reject_unseen)
    assert reference.ok and reference.frame is not None
    pd.testing.assert_frame_equal(got.frame.reset_index(drop=True), reference.frame)
    assert got.row_flags() == reference.flags
    joined = [",".join(f) or None for f in reference.flags]
    assert got.joined_flags().tolist() == joined


@pytest.mark.parametrize("reject_unseen", [False, True])
@pytest.mark.parametrize("make", [typed_frame, mixed_frame])
def test_agrees_with_signature_validate(signature: Signature, make, reject_unseen: bool) -> None:
    frame = make()
    assert_same(signature, frame, reject_unseen)
    # the fixtures exercise what they claim: errors, flags and accepted rows all occur
    got = validate_columns(signature, frame, reject_unseen=reject_unseen)
    assert got.errors and got.ok.any()
    assert reject_unseen or got.flags


def test_unknown_and_missing_columns(signature: Signature) -> None:
    frame = typed_frame().drop(columns=["when", "color"]).assign(extra=1)
    assert_same(signature, frame, False)
    messages = {(e["field"], e["message"]) for e in validate_columns(signature, frame).errors}
    assert ("extra", "unknown field; expected only the model's input fields") in messages
    assert ("color", "required field is missing") in messages


def test_all_good_rows_pass_and_keep_their_order(signature: Signature) -> None:
    frame = typed_frame().iloc[[0, 6, 7]].reset_index(drop=True)
    frame.loc[:, "color"] = "red"
    frame.loc[:, "code"] = 1
    frame.loc[1, "x"] = 9.0
    frame.loc[:, "n"] = [1.0, 2.0, np.nan]
    got = validate_columns(signature, frame)
    assert got.ok.all() and not got.errors
    assert got.frame["x"].tolist() == [5.0, 9.0, 3.0]
    assert_same(signature, frame, False)


def test_large_numeric_frame_is_fast_and_equal(signature: Signature) -> None:
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "x": rng.uniform(-1, 11, n),
            "n": rng.integers(-5, 120, n).astype(float),
            "color": rng.choice(["red", "green", "blue", "pink"], n),
            "code": rng.integers(0, 4, n),
            "flag": rng.choice([True, False], n),
            "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 9, n), "D"),
        }
    )
    assert_same(signature, frame, False)


def test_clean_numeric_frame_takes_the_fast_path() -> None:
    numeric = Signature(
        {"x-mlops": {"task": "regression", "target": "y", "classes": None, "fields": FIELDS[:2]}}
    )
    frame = pd.DataFrame({"x": [1.0, 5.0, 9.0], "n": [0.0, np.nan, 50.0]})
    got = validate_columns(numeric, frame)
    assert got.frame is frame and not got.errors and not got.flags
    assert_same(numeric, frame, False)
    assert_same(numeric, frame.assign(x=[1.0, 9.5, 0.5]), False)  # flags: the slow path
    assert_same(numeric, frame.assign(n=[0.5, np.nan, 1.0]), False)  # not whole numbers
