"""`Signature.check` + `Signature.frame` (the service's hot path, and what `validate` is made
of) build the frame a plain per-column construction would: numbers float64, categories and
booleans pandas "str" (NaN for missing), datetimes datetime64[ns] (NaT for missing): the
model frame training's `coerce` builds (`pipeline.values`)."""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd
import pytest

from pipeline.deploy.service.releases import typical_record
from pipeline.deploy.signature import Signature
from pipeline.settings import DatasetSpec
from tests.deploy.serving import churn

VALUES: dict[str, list[Any]] = {
    "float": [0.0, 1.5, -3.0, 499.9, 1e9, math.inf, math.nan, "7", True, None, 12],
    "int": [0, 3, 12, 2.5, 599, -1, 10**6, "3", False, None],
    "category": ["basic", "premium", "gold", 1, 1.0, 2.5, True, None, ["x"], "north", "west"],
    "bool": [True, False, "true", "FALSE", 1, 0, "yes", None, 2],
    "datetime": ["2022-01-01", "2022-13-01", "not a date", 20220101, None, "2024-02-29T10:00"],
}


def churn_signature() -> Signature:
    spec, train, _ = churn()
    return Signature.build(spec, train, "classification", ["no", "yes"])


def numeric_signature() -> Signature:
    spec = DatasetSpec.from_params(
        {
            "name": "numbers",
            "source": {"kind": "sklearn", "loader": "x"},
            "target": "t",
            "key": None,
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": {
                "a": {"type": "float", "min": 0, "max": 10},
                "b": {"type": "int", "nullable": True},
                "c": {"type": "float"},
                "t": {"type": "category", "categories": ["x", "y"]},
            },
        }
    )
    train = pd.DataFrame({"a": [1.0, 5.0], "b": [1.0, 3.0], "c": [0.0, 1.0], "t": ["x", "y"]})
    return Signature.build(spec, train, "classification", ["x", "y"])


def random_records(sig: Signature, n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    records: list[Any] = []
    for _ in range(n):
        if rng.random() < 0.03:
            records.append(rng.choice([None, 1, "x", []]))
            continue
        record = {}
        for spec in sig.fields:
            if rng.random() < 0.08:
                continue  # missing
            record[spec.name] = rng.choice(VALUES[spec.type])
        if rng.random() < 0.05:
            record["unexpected"] = 1
        records.append(record)
    return records


def plain_frame(sig: Signature, rows: list[list[Any]]) -> pd.DataFrame:
    """The obvious construction, a Series per column, as the oracle for `Signature.frame`."""
    columns = {}
    for i, spec in enumerate(sig.fields):
        cells = [row[i] for row in rows]
        if spec.type in ("float", "int"):
            columns[spec.name] = pd.Series(cells, dtype="float64")
        elif spec.type == "datetime":
            columns[spec.name] = pd.to_datetime(
                pd.Series(cells, dtype=object), format="ISO8601"
            ).astype("datetime64[ns]")
        else:
            columns[spec.name] = pd.Series(cells, dtype="str")
    return pd.DataFrame(columns, columns=sig.names)


@pytest.mark.parametrize("make", [churn_signature, numeric_signature])
@pytest.mark.parametrize("reject_unseen", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_validate_is_check_then_frame(make: Any, reject_unseen: bool, seed: int) -> None:
    sig = make()
    records = random_records(sig, 300, seed)
    # Each record alone, then all together: errors, flags and frames must match exactly.
    for batch in [[r] for r in records[:60]] + [records]:
        validated = sig.validate(batch, reject_unseen=reject_unseen)
        checked = sig.check(batch, reject_unseen=reject_unseen)
        assert checked.errors == validated.errors
        assert checked.flags == validated.flags
        assert checked.ok == validated.ok == (validated.frame is not None)
        if validated.ok:
            pd.testing.assert_frame_equal(validated.frame, plain_frame(sig, checked.rows))


def valid_records(sig: Signature, n: int, seed: int) -> list[dict[str, Any]]:
    """Valid (possibly flagged) records: a typical record with fields swapped for random
    values (or dropped) as long as the record stays valid."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        record = typical_record(sig)
        for spec in sig.fields:
            candidate = dict(record)
            if rng.random() < 0.1:
                candidate.pop(spec.name)
            else:
                candidate[spec.name] = rng.choice(VALUES[spec.type])
            if sig.check([candidate]).ok:
                record = candidate
        out.append(record)
    return out


@pytest.mark.parametrize("make", [churn_signature, numeric_signature])
def test_frame_of_valid_rows_equals_the_plain_construction(make: Any) -> None:
    sig = make()
    rng = random.Random(7)
    records = valid_records(sig, 200, 11)
    assert any(sig.check([r]).flags[0] for r in records)  # flagged values are covered too
    for size in (1, 2, 16, len(records)):
        batch = rng.sample(records, size)
        rows = sig.check(batch).rows
        pd.testing.assert_frame_equal(sig.frame(rows), plain_frame(sig, rows))


def test_frame_of_no_rows() -> None:
    for sig in (churn_signature(), numeric_signature()):
        pd.testing.assert_frame_equal(sig.frame([]), plain_frame(sig, []))


def test_the_typical_record_is_valid_for_dates_declared_after_2020() -> None:
    """The service loads a release only when its signature accepts its own typical record;
    a date column declared from 2022 on must not make that record invalid."""
    spec = DatasetSpec.from_params(
        {
            "name": "later",
            "source": {"kind": "sklearn", "loader": "x"},
            "target": "t",
            "key": None,
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": {
                "day": {"type": "datetime", "min": "2022-01-01", "max": "2030-01-01"},
                "t": {"type": "category", "categories": ["x", "y"]},
            },
        }
    )
    train = pd.DataFrame({"day": pd.to_datetime(["2022-03-01", "2023-05-06"]), "t": ["x", "y"]})
    sig = Signature.build(spec, train, "classification", ["x", "y"])
    checked = sig.check([typical_record(sig)])
    assert checked.ok, checked.errors
    assert checked.flags == [[]]  # inside what training saw, too
