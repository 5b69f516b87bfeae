"""Data checks against the declared schema, and stable splits (inference: test_schema_infer.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.coercion import coerce, drop_missing_target
from pipeline.data_checks import check_data
from pipeline.settings import DatasetSpec, SplitSpec
from pipeline.splits import assign_splits
from scripts.make_churn_example import make

SPEC = DatasetSpec.from_params(
    {
        "name": "toy",
        "source": {"kind": "file", "path": "data/external/toy.csv", "format": "csv"},
        "target": "label",
        "key": "id",
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {
            "id": {"type": "int", "role": "id"},
            "amount": {"type": "float", "min": 0, "max": 100},
            "count": {"type": "int", "nullable": True},
            "color": {"type": "category", "categories": ["red", "blue"], "nullable": True},
            "flag": {"type": "bool"},
            "when": {"type": "datetime", "min": "2020-01-01"},
            "label": {"type": "category", "categories": ["no", "yes"]},
        },
    }
)


def good(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": np.linspace(1, 99, n),
            "count": [1, 2, None, 4, 5, 6, 7, 8][:n],
            "color": ["red", "blue", None, "red", "blue", "red", "red", "blue"][:n],
            "flag": [True, False] * (n // 2),
            "when": ["2021-01-01"] * n,
            "label": ["yes", "no"] * (n // 2),
        }
    )


def broken(change: Any) -> pd.DataFrame:
    frame = good()
    return change(frame)


def _set(col: str, row: int, value: Any) -> Any:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = value
        return frame

    return change


BAD_DATA = [
    ("missing column", lambda f: f.drop(columns=["amount"]), "missing_column", "amount", 8),
    ("extra column", lambda f: f.assign(surprise=1), "extra_column", "surprise", 8),
    ("wrong type", _set("amount", 3, "lots"), "type", "amount", 1),
    ("fraction in an int column", _set("count", 1, 2.5), "type", "count", 1),
    ("below min", _set("amount", 2, -5.0), "range", "amount", 1),
    ("above max", _set("amount", 5, 1e6), "range", "amount", 1),
    ("unknown category", _set("color", 4, "green"), "category", "color", 1),
    ("null where not allowed", _set("amount", 0, None), "null", "amount", 1),
    ("bad bool", _set("flag", 6, "maybe"), "type", "flag", 1),
    ("bad date", _set("when", 7, "not a date"), "type", "when", 1),
    ("date before min", _set("when", 1, "1999-12-31"), "range", "when", 1),
    ("duplicate key", _set("id", 1, 0), "duplicate_key", "id", 2),
    ("empty data", lambda f: f.iloc[:0], "empty", None, 0),
]


@pytest.mark.parametrize(
    ("change", "check", "column", "count"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA]
)
def test_bad_data_is_reported(change: Any, check: str, column: str | None, count: int) -> None:
    report = check_data(broken(change), SPEC)
    assert not report.ok
    found = [v for v in report.violations if v.check == check and v.column == column]
    assert found, report.violations
    assert found[0].count == count
    if count and check not in ("missing_column", "extra_column"):
        assert found[0].examples and found[0].examples[0]["row"] >= 1


def test_every_violation_is_listed_at_once() -> None:
    frame = good()
    _set("amount", 0, -1.0)(frame)
    _set("color", 1, "green")(frame)
    _set("when", 2, "garbage")(frame)
    report = check_data(frame, SPEC)
    assert {(v.check, v.column) for v in report.violations} == {
        ("range", "amount"),
        ("category", "color"),
        ("type", "when"),
    }
    assert report.to_dict()["status"] == "failed"


def test_good_data_passes_and_coerces() -> None:
    report = check_data(good(), SPEC)
    assert report.ok, report.violations
    typed = coerce(good(), SPEC)
    assert typed["amount"].dtype == np.float64 and typed["count"].dtype == np.float64
    assert typed["color"].tolist()[:3] == ["red", "blue", typed["color"][2]]
    assert pd.isna(typed["color"][2])
    assert typed["flag"].tolist()[:2] == ["true", "false"]
    assert str(typed["when"].dtype).startswith("datetime64")


@pytest.mark.parametrize(("policy", "ok"), [("drop", True), ("refuse", False)])
def test_missing_target_policy(policy: str, ok: bool) -> None:
    spec = DatasetSpec.from_params({**_raw(), "missing_target": policy})
    frame = good()
    _set("label", 3, None)(frame)
    report = check_data(frame, spec)
    assert report.ok is ok
    assert report.missing_target_rows == 1
    kept, dropped = drop_missing_target(frame, spec)
    assert dropped == 1 and len(kept) == 7


def _raw() -> dict[str, Any]:
    return {
        "name": "toy",
        "source": {"kind": "sklearn", "loader": "iris"},
        "target": "label",
        "key": "id",
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {
            "id": {"type": "int", "role": "id"},
            "amount": {"type": "float"},
            "count": {"type": "int", "nullable": True},
            "color": {"type": "category", "nullable": True},
            "flag": {"type": "bool"},
            "when": {"type": "datetime"},
            "label": {"type": "category", "categories": ["no", "yes"]},
        },
    }


# -------------------------------------------------------------------------------- stable splits
def churn_spec(key: str | None) -> DatasetSpec:
    raw = _raw()
    raw["columns"] = {
        "customer_id": {"type": "int", "role": "id"},
        "signup_date": {"type": "datetime"},
        "plan": {"type": "category"},
        "region": {"type": "category", "nullable": True},
        "monthly_charges": {"type": "float"},
        "tenure_months": {"type": "int"},
        "support_calls": {"type": "int", "nullable": True},
        "has_partner": {"type": "bool"},
        "churned": {"type": "category"},
    }
    raw.update(target="churned", key=key)
    return DatasetSpec.from_params(raw)


@pytest.mark.parametrize("key", ["customer_id", None])
@pytest.mark.parametrize("method", ["hash", "group"])
def test_appending_rows_never_moves_an_existing_row(key: str | None, method: str) -> None:
    frame = make(n=1200)
    spec = churn_spec(key)
    split = SplitSpec.from_params(
        {"method": method, "salt": "s", "test_size": 0.2, "pool_size": 0.2}
        | ({"group_column": "customer_id"} if method == "group" else {})
    )
    before = assign_splits(frame.iloc[:800], spec, split)
    after = assign_splits(frame, spec, split)
    shuffled = frame.sample(frac=1.0, random_state=3)
    again = pd.Series(assign_splits(shuffled, spec, split), index=shuffled.index).sort_index()
    assert (after[:800] == before).all()
    assert (again.to_numpy() == after).all()  # independent of row order
    shares = pd.Series(after).value_counts(normalize=True)
    assert abs(shares["test"] - 0.2) < 0.05 and abs(shares["pool"] - 0.2) < 0.05


def test_time_split_by_declared_dates_is_stable() -> None:
    frame = make(n=600)
    spec = churn_spec("customer_id")
    split = SplitSpec.from_params(
        {
            "method": "time",
            "salt": "s",
            "time_column": "signup_date",
            "test_from": "2022-06-01",
            "pool_from": "2023-01-01",
        }
    )
    labels = assign_splits(frame, spec, split)
    when = pd.to_datetime(frame["signup_date"])
    assert (labels[when >= "2023-01-01"] == "pool").all()
    assert (labels[(when >= "2022-06-01") & (when < "2023-01-01")] == "test").all()
    assert (labels[when < "2022-06-01"] == "train").all()


def test_stratified_split_has_exact_class_proportions() -> None:
    frame = make(n=1000)
    spec = churn_spec("customer_id")
    split = SplitSpec.from_params(
        {"method": "stratified", "salt": "s", "test_size": 0.2, "pool_size": 0.1}
    )
    labels = assign_splits(frame, spec, split)
    for cls, group in frame.groupby("churned"):
        n = len(group)
        got = pd.Series(labels[group.index]).value_counts()
        assert got["test"] == round(n * 0.2) and got["pool"] == round(n * 0.1), cls


def test_identical_rows_share_a_split() -> None:
    frame = make(n=300)
    doubled = pd.concat([frame, frame], ignore_index=True)
    labels = assign_splits(
        doubled,
        churn_spec(None),
        SplitSpec.from_params({"method": "hash", "salt": "s", "test_size": 0.3, "pool_size": 0.2}),
    )
    assert (labels[:300] == labels[300:]).all()


def test_a_symlink_out_of_the_repository_is_not_read(tmp_path: Path) -> None:
    """data/external/<file> linking outside the repository is refused, naming the path; a
    link into the DVC cache (what `dvc checkout` writes with symlink links) is read."""
    from pipeline.develop.ingest import external_file, materialise
    from pipeline.errors import DataError

    outside, root = tmp_path / "secret.csv", tmp_path / "repo"
    outside.write_text("x,y\n1,a\n")
    (root / "data/external").mkdir(parents=True)
    (root / "data/external/d.csv").symlink_to(outside)
    spec = DatasetSpec.from_params(
        {
            "name": "d",
            "source": {"kind": "file", "path": "data/external/d.csv", "format": "csv"},
            "target": "y",
            "columns": {"x": {"type": "int"}, "y": {"type": "category"}},
            "missing_target": "drop",
            "extra_columns": "refuse",
        }
    )
    refused = r"data/external/d\.csv: resolves to .*secret\.csv, outside the repository"
    with pytest.raises(DataError, match=refused):
        materialise(spec, root)
    cached = root / ".dvc/cache/files/md5/ab/cdef"
    cached.parent.mkdir(parents=True)
    cached.write_text("x,y\n1,a\n")
    (root / "data/external/d.csv").unlink()
    (root / "data/external/d.csv").symlink_to(cached)
    assert external_file(Path("data/external/d.csv"), root) == Path("data/external/d.csv")
    assert len(materialise(spec, root)) == 1
