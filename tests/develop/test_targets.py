"""What a task needs of its target, refused with a clear message instead of a traceback from
inside scikit-learn: a single class (`validate`), a class too rare for the folds (`train`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.develop import validate
from pipeline.develop.train import check_classes
from pipeline.errors import DataError
from pipeline.settings import DatasetSpec, SplitSpec, TrainSpec
from tests.conftest import ROOT

SPEC = DatasetSpec.from_params(
    {
        "name": "weather",
        "source": {"kind": "sklearn", "loader": "iris"},
        "target": "label",
        "key": None,
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {
            "x": {"type": "float"},
            "label": {"type": "category", "categories": ["rain", "sun"]},
        },
    }
)
SPLIT = SplitSpec.from_params({"method": "hash", "salt": "s", "test_size": 0.2, "pool_size": 0.2})
TRAIN = TrainSpec(cv=5, n_jobs=1, verbose=0, seed=0)


def test_single_class_target_is_a_validate_violation() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["sun", "sun", None]})
    (violation,) = validate.target_violations(frame, SPEC, "classification")
    assert violation.check == "single_class" and violation.count == 2
    assert violation.render() == (
        "column 'label': a classification target needs at least two classes; every labelled "
        "row is 'sun' (check the data, or dataset.target) (2 row(s))"
    )
    two = pd.DataFrame({"x": [1.0, 2.0], "label": ["sun", "rain"]})
    assert validate.target_violations(two, SPEC, "classification") == []


def test_constant_regression_target_is_a_validate_violation() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "label": [3.5, 3.5]})
    (violation,) = validate.target_violations(frame, SPEC, "regression")
    assert violation.check == "constant_target"
    assert "every labelled row is 3.5" in violation.message


def test_validate_stage_refuses_a_single_class_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage itself: one message naming the column and the class, and the report."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "conf").mkdir()
    raw = tmp_path / "data/raw"
    raw.mkdir(parents=True)
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.head(40)
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["target"] = "benign"
    frame.to_parquet(raw / "dataset.parquet")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        validate.main([])
    assert "column 'target': a classification target needs at least two classes; every " in (
        str(info.value)
    )
    assert "labelled row is 'benign'" in str(info.value)
    report = json.loads((tmp_path / "reports/validate.json").read_text())
    assert [v["check"] for v in report["data"]["violations"]] == ["single_class"]


def test_train_refuses_a_class_rarer_than_the_folds() -> None:
    y = pd.Series(["sun"] * 20 + ["rain"] * 2 + ["snow"] * 3, name="label")
    with pytest.raises(DataError) as info:
        check_classes(y, SPLIT, TRAIN)
    text = info.value.render()
    assert "column 'label': too few rows of a class for 5-fold cross-validation (train.cv): " in (
        text
    )
    assert "'rain' has 2, 'snow' has 3 row(s) in the train split" in text
    assert "lower train.cv" in text
    group = SplitSpec.from_params({"method": "group", "salt": "s", "group_column": "g"})
    check_classes(y, group, TRAIN)  # no strata


def test_train_refuses_a_single_class_train_split() -> None:
    with pytest.raises(DataError, match=r"the train split holds a single class \('sun' \(9 rows"):
        check_classes(pd.Series(["sun"] * 9, name="label"), SPLIT, TRAIN)
