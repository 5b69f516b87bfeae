"""`pipeline.traffic`: a user's file of scored traffic as window rows, and `import_files`."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.settings import DatasetSpec
from pipeline.traffic import Columns, import_files, read_traffic
from pipeline.windows import FLAGS, LABEL, PREDICTION, RELEASE, REQUEST_ID, TIME, list_windows

DATASET = DatasetSpec.from_params(
    {
        "name": "churn",
        "source": {"kind": "file", "path": "data/external/churn.csv", "format": "csv"},
        "target": "churned",
        "key": "customer_id",
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {
            "customer_id": {"type": "category", "role": "id"},
            "signup_date": {"type": "datetime"},
            "plan": {"type": "category", "categories": ["basic", "premium"]},
            "monthly_charges": {"type": "float", "min": 0, "max": 500},
            "tenure_months": {"type": "int", "min": 0, "max": 600},
            "has_partner": {"type": "bool"},
            "churned": {"type": "category", "categories": ["no", "yes"]},
        },
    }
)
FEATURES = ["has_partner", "monthly_charges", "plan", "signup_date", "tenure_months"]


def export(rows: int = 4) -> pd.DataFrame:
    """Later-period traffic as a team would export it: own column names, a label, an id."""
    return pd.DataFrame(
        {
            "customer_id": [f"{i:03d}" for i in range(rows)],
            "signup_date": [f"2024-01-0{1 + i % 9}" for i in range(rows)],
            "plan": ["basic", "premium"] * (rows // 2),
            "monthly_charges": [10.5 * (i + 1) for i in range(rows)],
            "tenure_months": list(range(rows)),
            "has_partner": ["yes", "no"] * (rows // 2),
            "scored_at": [f"2026-04-01T0{i % 10}:00:00+02:00" for i in range(rows)],
            "model_said": ["no", "yes"] * (rows // 2),
            "outcome": ["no", None] * (rows // 2),
        }
    )


COLUMNS = Columns(time="scored_at", prediction="model_said", label="outcome", id="customer_id")


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_named_columns_become_reserved_and_features_are_typed(tmp_path: Path, suffix: str) -> None:
    traffic = read_traffic(
        write(export(), tmp_path / f"t{suffix}"), DATASET, "classification", COLUMNS
    )
    out = traffic.frame
    assert sorted(c for c in out.columns if not c.startswith("__")) == FEATURES
    assert out["monthly_charges"].dtype == "float64" and out["tenure_months"].dtype == "float64"
    assert out["plan"].tolist() == ["basic", "premium"] * 2
    assert out["has_partner"].tolist() == ["true", "false"] * 2  # pipeline.values' bool rule
    assert out["signup_date"].iloc[0] == "2024-01-01T00:00:00"
    assert out[REQUEST_ID].tolist() == ["000", "001", "002", "003"]  # "007" stays text
    assert out[TIME].iloc[1] == pd.Timestamp("2026-03-31T23:00:00Z")  # +02:00 -> UTC
    assert out[PREDICTION].tolist() == ["no", "yes"] * 2
    assert out[LABEL].tolist() == ["no", None] * 2
    assert out[RELEASE].isna().all() and traffic.labelled == 2


def test_mlops_predict_output_is_read_as_it_is(tmp_path: Path) -> None:
    frame = export().drop(columns=["customer_id", "scored_at", "model_said", "outcome"])
    frame["churned"] = ["yes", "no", "no", None]
    frame["prediction"] = ["yes", "yes", "no", "no"]
    frame["proba_no"], frame["proba_yes"] = [0.2, 0.3, 0.9, 0.6], [0.8, 0.7, 0.1, 0.4]
    frame["flags"] = [None, "out_of_range:tenure_months", None, None]
    path = write(frame, tmp_path / "scored.parquet")
    traffic = read_traffic(path, DATASET, "classification", time="2026-04-01", release="r0001-x")
    out = traffic.frame
    assert out[PREDICTION].tolist() == ["yes", "yes", "no", "no"]
    assert out[LABEL].tolist() == ["yes", "no", "no", None]
    assert out[FLAGS].tolist() == [None, "out_of_range:tenure_months", None, None]
    assert (out[TIME] == pd.Timestamp("2026-04-01", tz="UTC")).all()
    assert set(out[RELEASE]) == {"r0001-x"}
    assert not any(c.startswith("proba_") for c in out.columns)
    assert "labels read from the target column 'churned'" in "\n".join(traffic.notes)
    assert "class probabilities not kept: proba_no, proba_yes" in "\n".join(traffic.notes)
    # by hand, a file without times is judged in file order; stored windows need a time
    manual = read_traffic(path, DATASET, "classification", require_time=False)
    assert manual.frame[TIME].nunique() == 1 and "file order" in manual.notes[-1]
    with pytest.raises(DataError, match="no time column") as caught:
        read_traffic(path, DATASET, "classification")
    assert "--time-column" in caught.value.hint and "--time " in caught.value.hint


def problem(path: Path, frame: pd.DataFrame, columns: Columns = COLUMNS, **kw) -> DataError:
    write(frame, path)
    with pytest.raises(DataError) as caught:
        read_traffic(path, DATASET, "classification", columns, **kw)
    return caught.value


def test_bad_values_are_listed_by_column_and_row(tmp_path: Path) -> None:
    frame = export(6).astype({"monthly_charges": object})
    frame.loc[1, "monthly_charges"] = "cheap"
    frame.loc[4, "has_partner"] = "maybe"
    frame.loc[2, "outcome"] = "perhaps"
    frame.loc[5, "model_said"] = None
    error = problem(tmp_path / "t.csv", frame)
    text = str(error)
    assert "4 problem(s)" in text
    assert (
        "column 'monthly_charges': expected numbers (type float) (1 row(s); e.g. row 2: 'cheap')"
        in text
    )
    assert (
        "column 'has_partner': expected true/false, yes/no, t/f, y/n or 1/0 (type bool) "
        "(1 row(s); e.g. row 5: 'maybe')" in text
    )
    assert (
        "column 'outcome': unknown category; expected one of no, yes "
        "(1 row(s); e.g. row 3: 'perhaps')" in text
    )
    assert "column 'model_said': no prediction (1 row(s); e.g. row 6)" in text
    # feature values outside the declared limits are drift, not errors
    frame = export()
    frame.loc[0, "monthly_charges"], frame.loc[1, "plan"] = 9999.0, "gold"
    assert (
        len(
            read_traffic(
                write(frame, tmp_path / "drift.csv"), DATASET, "classification", COLUMNS
            ).frame
        )
        == 4
    )


def test_times_ids_and_columns_are_checked(tmp_path: Path) -> None:
    frame = export()
    frame.loc[2, "scored_at"] = "yesterday"
    error = problem(tmp_path / "t.csv", frame)
    assert "column 'scored_at': 1 row(s) without a readable time; e.g. row 3: 'yesterday'" in str(
        error
    )
    assert "ISO 8601" in error.hint

    frame = export()
    frame.loc[3, "customer_id"] = "001"
    error = problem(tmp_path / "t.csv", frame)
    assert "column 'customer_id': 2 repeated request id(s); e.g. row 2, row 4" in str(error)

    frame = export().assign(note="x", comment="y")
    error = problem(tmp_path / "t.csv", frame)
    assert (
        "column(s) 'note', 'comment' are neither declared in the dataset nor named by a flag"
        in str(error)
    )
    assert "extra_columns: drop" in error.hint

    error = problem(tmp_path / "t.csv", export(), Columns(time="when"))
    assert re.search(r"no column 'when' \(named by --time-column\)", str(error))

    error = problem(
        tmp_path / "t.csv", export().drop(columns=["model_said"]), Columns(time="scored_at")
    )
    assert "no prediction column" in str(error) and "mlops predict --input" in error.hint

    error = problem(tmp_path / "t.csv", export().drop(columns=["plan"]))
    assert "declared feature column(s) missing: plan" in str(error)

    error = problem(tmp_path / "t.csv", export(), time="2026-01-01")
    assert "has a time column ('scored_at') and --time was given" in str(error)

    error = problem(tmp_path / "t.txt", export())
    assert "unsupported file type '.txt'" in str(error)


def test_regression_predictions_and_labels_are_numbers(tmp_path: Path) -> None:
    data = DatasetSpec.from_params(
        {
            "name": "prices",
            "source": {"kind": "file", "path": "x.csv", "format": "csv"},
            "target": "price",
            "key": None,
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": {"size": {"type": "float"}, "price": {"type": "float"}},
        }
    )
    frame = pd.DataFrame({"size": ["1.5", "2"], "prediction": ["10", "12.5"], "price": ["11", "x"]})
    path = write(frame, tmp_path / "p.csv")
    with pytest.raises(
        DataError,
        match=r"column 'price': expected numbers \(type float\) \(1 row\(s\); e.g. row 2: 'x'\)",
    ):
        read_traffic(path, data, "regression", time="2026-01-01")
    frame.loc[1, "price"] = None
    out = read_traffic(write(frame, path), data, "regression", time="2026-01-01").frame
    assert out[PREDICTION].dtype == "float64" and out[PREDICTION].tolist() == [10.0, 12.5]
    assert out[LABEL].iloc[0] == 11.0 and pd.isna(out[LABEL].iloc[1])


def test_import_writes_one_window_per_file_and_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "production"
    out.mkdir()
    source = write(export(), tmp_path / "t.csv")
    (first,) = import_files([source], out, DATASET, "classification", COLUMNS)
    assert first.new and first.rows == 4 and first.labelled == 2
    assert [w.id for w in list_windows(out)] == [first.window.id]
    assert first.window.id.startswith("20260331T220000-")  # the first time, in UTC
    before = first.window.path.read_bytes()
    (again,) = import_files([source], out, DATASET, "classification", COLUMNS)
    assert not again.new and again.window == first.window
    assert first.window.path.read_bytes() == before and len(list(out.iterdir())) == 1
    # the same rows from Parquet are the same window
    (parquet,) = import_files(
        [write(export(), tmp_path / "t.parquet")], out, DATASET, "classification", COLUMNS
    )
    assert parquet.window == first.window and not parquet.new


def test_a_refused_import_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "production"
    good = write(export(), tmp_path / "good.csv")
    bad = export()
    bad.loc[0, "scored_at"] = "soon"
    with pytest.raises(DataError, match=r"bad\.csv"):
        import_files(
            [good, write(bad, tmp_path / "bad.csv")], out, DATASET, "classification", COLUMNS
        )
    assert not out.exists() or not any(out.iterdir())


def test_a_whole_number_target_still_takes_fractional_predictions(tmp_path: Path) -> None:
    """Visitors are counted in whole numbers; a regressor predicts 951.7 of them. The labels
    keep the declared type, the predictions are numbers."""
    data = DatasetSpec.from_params(
        {
            "name": "footfall",
            "source": {"kind": "file", "path": "x.csv", "format": "csv"},
            "target": "visitors",
            "key": None,
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": {"temp": {"type": "float"}, "visitors": {"type": "int"}},
        }
    )
    frame = pd.DataFrame(
        {"temp": [1.5, 2.0], "prediction": [951.7, 1346.2], "visitors": [940, 1400]}
    )
    out = read_traffic(write(frame, tmp_path / "p.parquet"), data, "regression", time="2026-01-01")
    assert out.frame[PREDICTION].tolist() == [951.7, 1346.2]
    frame["visitors"] = [940.5, 1400]
    with pytest.raises(DataError, match=r"column 'visitors': expected whole numbers"):
        read_traffic(write(frame, tmp_path / "q.parquet"), data, "regression", time="2026-01-01")
