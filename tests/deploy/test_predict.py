"""`mlops predict`: batch scoring of good and bad files under both policies; the output equals
the raw model's predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.deploy.batch import BadRowsError, BatchSettings, predict_file
from pipeline.deploy.bundle import load_bundle
from pipeline.io import load_model
from tests.conftest import mlops

pytestmark = pytest.mark.integration

FLAGS = BatchSettings(on_bad_rows="fail", unseen_policy="flag", chunk_rows=100_000)


@pytest.fixture
def test_rows(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / "data/prepared/test.parquet")


def raw(project: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The champion's own `predict` / `predict_proba`, no project code in between."""
    model = load_model(project / "models/bundle/model.skops")
    features = json.loads((project / "models/champion/champion.json").read_text())["features"]
    return model.predict(frame[features]), model.predict_proba(frame[features])


def bad_file(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.astype({"mean_area": object})
    bad.loc[3, "mean_radius"] = -5.0  # row 4: outside the declared range
    bad.loc[7, "mean_texture"] = None  # row 8: null in a non-nullable column
    bad.loc[59, "mean_area"] = "abc"  # row 60: not a number
    return bad


@pytest.mark.parametrize(("source", "chunk_rows"), [("parquet", 100_000), ("csv", 7)])
def test_output_equals_raw_model_predict(
    project: Path, test_rows: pd.DataFrame, tmp_path: Path, source: str, chunk_rows: int
) -> None:
    inp = tmp_path / f"in.{source}"
    out = tmp_path / f"out.{source}"
    if source == "csv":
        test_rows.to_csv(inp, index=False)
    else:
        test_rows.to_parquet(inp, index=False)
    bundle = load_bundle(project / "models/bundle")
    settings = BatchSettings("fail", "flag", chunk_rows)
    result = predict_file(bundle, inp, out, settings)
    assert result.rows == result.scored == len(test_rows) and not result.bad
    scored = pd.read_csv(out) if source == "csv" else pd.read_parquet(out)
    pred, proba = raw(project, test_rows)
    assert scored["prediction"].tolist() == pred.tolist()
    got = scored[["proba_benign", "proba_malignant"]].to_numpy()
    if chunk_rows >= len(test_rows):
        assert np.array_equal(got, proba)
    else:  # BLAS blocks a 7-row matrix product differently: the last bit may differ
        np.testing.assert_allclose(got, proba, rtol=0, atol=1e-15)
    inputs = scored[list(test_rows.columns)]
    pd.testing.assert_frame_equal(inputs, test_rows, check_dtype=source == "parquet")
    flagged = scored["flags"].notna()
    assert 0 < flagged.sum() == result.flagged < len(scored)
    assert scored["flags"][flagged].str.match(r"^out_of_range:\w+(,out_of_range:\w+)*$").all()


def test_bad_rows_fail_the_file_listing_every_row(project: Path, test_rows, tmp_path) -> None:
    inp, out, rep = tmp_path / "bad.csv", tmp_path / "out.csv", tmp_path / "report.json"
    bad_file(test_rows).to_csv(inp, index=False)
    proc = mlops(
        "predict", "--bundle", "models/bundle", "--input", str(inp), "--output", str(out),
        "--chunk-rows", "25", "--report", str(rep), cwd=project, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "3 bad row(s) of 102; nothing written (on_bad_rows: fail)" in proc.stderr
    assert "row 4: mean_radius: below the declared minimum 0" in proc.stderr
    assert "row 8: mean_texture: null is not allowed for this field" in proc.stderr
    assert "row 60: mean_area: expected a number, got str" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.csv.*"))
    report = json.loads(rep.read_text())
    assert report["skipped_rows"] == [4, 8, 60] and report["written"] is False


def test_bad_rows_skipped_and_reported(project: Path, test_rows, tmp_path) -> None:
    inp, out = tmp_path / "bad.parquet", tmp_path / "out.parquet"
    bad = bad_file(test_rows)
    bad.loc[59, "mean_area"] = np.nan  # Parquet columns are typed: a null instead
    bad.astype({"mean_area": float}).to_parquet(inp, index=False)
    proc = mlops(
        "predict", "--bundle", "models/bundle", "--input", str(inp), "--output", str(out),
        "--on-bad-rows", "skip", cwd=project,
    )  # fmt: skip
    assert "scored 99 of 102 row(s)" in proc.stdout
    assert "skipped 3 bad row(s)" in proc.stderr and "row 60: mean_area: null" in proc.stderr
    scored = pd.read_parquet(out)
    good = test_rows.drop(index=[3, 7, 59]).reset_index(drop=True)
    assert scored["prediction"].tolist() == raw(project, good)[0].tolist()
    pd.testing.assert_frame_equal(scored[list(good.columns)], good)


def test_unseen_policy_reject_makes_flagged_rows_bad(project: Path, test_rows, tmp_path) -> None:
    inp = tmp_path / "in.parquet"
    test_rows.to_parquet(inp, index=False)
    bundle = load_bundle(project / "models/bundle")
    flagged = predict_file(bundle, inp, tmp_path / "a.parquet", FLAGS).flagged
    with pytest.raises(BadRowsError, match="policy: reject") as refused:
        predict_file(bundle, inp, tmp_path / "b.parquet", BatchSettings("fail", "reject", 10))
    assert len(refused.value.result.bad_rows) == flagged
    skipped = predict_file(bundle, inp, tmp_path / "c.csv", BatchSettings("skip", "reject", 10))
    assert skipped.scored == len(test_rows) - flagged and skipped.flagged == 0
    assert not (tmp_path / "b.parquet").exists()


def test_release_target_and_column_checks(project: Path, test_rows, tmp_path) -> None:
    inp, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    test_rows.to_parquet(inp, index=False)
    args = ("predict", "--input", str(inp), "--output", str(out))
    before = mlops(*args, cwd=project, check=False)
    assert before.returncode == 2 and "nothing has been released to batch" in before.stderr
    service = mlops(*args, "--target", "local", cwd=project, check=False)
    assert service.returncode == 2 and "is a service target" in service.stderr
    mlops("release", "--target", "batch", cwd=project)
    release = json.loads((project / "deploy/batch.json").read_text())["release"]
    assert f"with release {release}" in mlops(*args, cwd=project).stdout
    assert len(pd.read_parquet(out)) == len(test_rows)
    test_rows.drop(columns=["worst_area"]).to_parquet(inp, index=False)
    missing = mlops(*args, cwd=project, check=False)
    assert missing.returncode == 2 and "required column(s) missing: worst_area" in missing.stderr


def test_csv_in_parquet_out_keeps_declared_types(project: Path, test_rows, tmp_path) -> None:
    """Regression: a CSV's pass-through (and model) columns were written to Parquet as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    frame = test_rows.copy()
    frame.insert(0, "record_id", [f"{i:03d}" for i in range(len(frame))])  # undeclared: text
    frame["visits"] = np.arange(len(frame))  # a declared numeric column the model does not use
    inp, out = tmp_path / "in.csv", tmp_path / "out.parquet"
    frame.to_csv(inp, index=False)
    params = yaml.safe_load((project / "params.yaml").read_text())
    declared = {name: c["type"] for name, c in params["dataset"]["columns"].items()}
    declared["visits"] = "int"
    bundle = load_bundle(project / "models/bundle")
    result = predict_file(bundle, inp, out, FLAGS, declared)
    assert result.scored == len(frame)
    schema = pq.read_schema(out)
    for name in [*bundle.signature.names, "visits", "prediction", "proba_benign"]:
        assert schema.field(name).type == pa.float64() or name == "prediction", name
    assert schema.field("record_id").type == pa.string()
    assert schema.field(params["dataset"]["target"]).type == pa.string()  # a category
    scored = pd.read_parquet(out)
    assert scored["record_id"].iloc[7] == "007"
    pd.testing.assert_frame_equal(scored[list(test_rows.columns)], test_rows, check_dtype=False)
    assert scored["visits"].tolist() == list(range(len(frame)))

    # a declared number that is not one is a bad row, never a silent null
    frame = frame.astype({"visits": object})
    frame.loc[4, "visits"] = "lots"
    frame.to_csv(inp, index=False)
    with pytest.raises(BadRowsError, match=r"row 5: visits: expected a number \(declared int\)"):
        predict_file(bundle, inp, out, FLAGS, declared)
    skipped = predict_file(bundle, inp, out, BatchSettings("skip", "flag", 7), declared)
    assert skipped.bad_rows == [5] and len(pd.read_parquet(out)) == len(frame) - 1
    # a CSV output keeps every cell as written
    csv_out = tmp_path / "out.csv"
    predict_file(bundle, inp, csv_out, BatchSettings("skip", "flag", 7), declared)
    ids = pd.read_csv(csv_out, dtype=str)["record_id"].tolist()
    assert ids[:6] == ["000", "001", "002", "003", "005", "006"]  # row 5 ("004") skipped
