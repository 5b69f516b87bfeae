"""The drift reference: what it keeps, byte-reproducible saving, safe loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.monitor.drift import compute_drift
from pipeline.profile.reference import Reference, build_reference, category_label
from tests.monitor.conf import drift_settings

KINDS = {"x": "numeric", "k": "numeric", "c": "categorical"}


def _frame(seed: int = 0, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[::10] = np.nan
    x[5] = np.inf
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 4, n),
            "c": rng.choice(np.array(["b", "a", "c", None], dtype=object), n),
        }
    )


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_numeric_column_keeps_sorted_values_and_evidently_statistics() -> None:
    frame = _frame()
    col = build_reference(frame, KINDS).columns["x"]
    finite = frame["x"].replace(np.inf, np.nan).dropna().to_numpy()
    assert col.values is not None
    np.testing.assert_array_equal(col.values, np.sort(finite))
    assert (col.rows, col.nulls, col.count) == (3000, 301, 2699)
    assert col.distinct == np.unique(finite).size
    assert col.std == pytest.approx(np.std(finite), rel=1e-14)
    assert col.histogram_counts.sum() == col.count


def test_categorical_column_keeps_sorted_label_counts() -> None:
    frame = _frame()
    col = build_reference(frame, KINDS).columns["c"]
    expected = frame["c"].value_counts().sort_index()
    assert col.categories.tolist() == expected.index.tolist()
    assert col.counts.tolist() == expected.tolist()
    assert col.nulls == frame["c"].isna().sum()


@pytest.mark.parametrize("mode", ["exact", "sketch"])
def test_saving_is_byte_reproducible(tmp_path: Path, mode: str) -> None:
    build_reference(_frame(), KINDS, mode=mode, sketch_k=256).save(tmp_path / "a")
    build_reference(_frame(), KINDS, mode=mode, sketch_k=256).save(tmp_path / "b")
    Reference.load(tmp_path / "a").save(tmp_path / "c")
    assert _files(tmp_path / "a") == _files(tmp_path / "b") == _files(tmp_path / "c")
    manifest = json.loads((tmp_path / "a" / "reference.json").read_text())
    assert manifest["mode"] == mode and [c["name"] for c in manifest["columns"]] == list(KINDS)


@pytest.mark.parametrize("mode", ["exact", "sketch"])
def test_loaded_reference_gives_the_same_verdicts(tmp_path: Path, mode: str) -> None:
    reference = build_reference(_frame(), KINDS, mode=mode, sketch_k=256)
    reference.save(tmp_path)
    current = _frame(seed=1, n=1500)

    settings = drift_settings(mode=mode)
    assert (
        compute_drift(Reference.load(tmp_path), current, settings).to_dict()
        == compute_drift(reference, current, settings).to_dict()
    )


def test_tampered_or_pickled_arrays_are_refused(tmp_path: Path) -> None:
    build_reference(_frame(), KINDS).save(tmp_path)
    values = tmp_path / "values.npy"
    data = bytearray(values.read_bytes())
    data[-1] ^= 1
    values.write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256"):
        Reference.load(tmp_path)
    np.save(values, np.array([{"boom": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a plain array"):
        Reference.load(tmp_path, verify=False)


def test_a_single_prediction_vector_is_a_reference() -> None:
    preds = np.random.default_rng(2).random(500)
    for data in (preds, pd.Series(preds, name="whatever")):
        reference = build_reference(data, {"prediction": "numeric"})
        assert list(reference.columns) == ["prediction"]
        report = compute_drift(
            reference, pd.DataFrame({"prediction": preds[::-1]}), drift_settings()
        )
        assert report.columns[0].statistic == pytest.approx(1.0)  # KS p-value of equal samples


def test_bad_reference_data_names_the_column() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"], "n": [np.nan, np.nan]})
    with pytest.raises(DataError, match="'missing'"):
        build_reference(frame, {"missing": "numeric"})
    with pytest.raises(DataError, match="'s'"):
        build_reference(frame, {"s": "numeric"})
    with pytest.raises(DataError, match="'n'"):
        build_reference(frame, {"n": "numeric"})
    with pytest.raises(DataError, match="'x'"):
        build_reference(frame, {"x": "text"})  # type: ignore[dict-item]


def test_category_labels_are_canonical() -> None:
    assert category_label(1) == category_label(1.0) == category_label(np.int64(1)) == "1"
    assert category_label(2.5) == "2.5" and category_label(True) == "True"
    reference = build_reference(pd.DataFrame({"c": [1, 2, 2, 3] * 300}), {"c": "categorical"})
    report = compute_drift(
        reference, pd.DataFrame({"c": [1.0, 2.0, 2.0, 3.0] * 200}), drift_settings()
    )
    col = report.columns[0]  # the same categories with the same shares: no distance at all
    assert (col.method, col.statistic) == ("jensenshannon", 0.0)
