"""`feedback_rows`: which labelled production rows `mlops maintain --apply` feeds back, and how
every row is accounted for (kept, duplicate, refused). No DVC: windows written into a temporary
root and the committed params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import config
from pipeline.errors import DataError
from pipeline.maintain.apply import feedback_rows
from pipeline.monitor.windowing import collect
from pipeline.params import Params
from pipeline.paths import PRODUCTION_DIR, feedback_dir
from pipeline.windows import LABEL, PREDICTION, REQUEST_ID, TIME, write_window

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params() -> Params:
    return config.load_config(ROOT, hyperparameters=False)


def labelled(params: Params, rows: int, *, seed: int = 0, ids: bool = False) -> pd.DataFrame:
    """`rows` distinct labelled rows inside the declared schema, one second apart."""
    spec = params.dataset
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {c.name: rng.uniform(float(c.min), float(c.max), rows) for c in spec.features}
    )
    classes = list(spec.target_column.categories or ())
    frame[LABEL] = [classes[i % len(classes)] for i in range(rows)]
    frame[PREDICTION] = frame[LABEL]
    frame[TIME] = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(rows), "s")
    if ids:
        frame[REQUEST_ID] = [f"req-{seed}-{i}" for i in range(rows)]
    return frame


def window_ids(root: Path, params: Params) -> list[str]:
    return [w.id for w in collect({"production": root / PRODUCTION_DIR}, params.monitor.windows)]


def test_rows_without_request_ids_are_all_kept(tmp_path: Path, params: Params) -> None:
    """Regression: 365 distinct labelled rows without request ids were collapsed to 1."""
    write_window(labelled(params, 365), tmp_path / PRODUCTION_DIR)
    rows, counts = feedback_rows(tmp_path, params, window_ids(tmp_path, params))
    assert len(rows) == 365
    assert counts.to_dict() == {"labelled": 365, "kept": 365, "duplicate": 0, "refused": 0}
    assert rows[TIME].notna().all()  # the time is part of a row's identity without an id


def test_repeated_rows_without_ids_count_once_and_as_duplicates(
    tmp_path: Path, params: Params
) -> None:
    frame = labelled(params, 120)
    # the same 20 rows exported twice (same values, same time), in a second file
    write_window(frame, tmp_path / PRODUCTION_DIR)
    write_window(frame.iloc[:20], tmp_path / PRODUCTION_DIR)
    rows, counts = feedback_rows(tmp_path, params, window_ids(tmp_path, params))
    assert len(rows) == 120
    assert counts.to_dict() == {"labelled": 140, "kept": 120, "duplicate": 20, "refused": 0}


def test_rows_already_fed_back_are_duplicates(tmp_path: Path, params: Params) -> None:
    from pipeline.tables import write_parquet

    write_window(labelled(params, 100, seed=1), tmp_path / PRODUCTION_DIR)
    write_window(labelled(params, 100, seed=2, ids=True), tmp_path / PRODUCTION_DIR)
    ids = window_ids(tmp_path, params)
    first, _ = feedback_rows(tmp_path, params, ids)
    assert len(first) == 200
    write_parquet(first, tmp_path / feedback_dir(params.dataset.name) / "earlier.parquet")
    again, counts = feedback_rows(tmp_path, params, ids)
    assert len(again) == 0
    assert counts.to_dict() == {"labelled": 200, "kept": 0, "duplicate": 200, "refused": 0}


def test_request_ids_dedupe_keeping_the_latest_label(tmp_path: Path, params: Params) -> None:
    """A label sent again later for the same request: one row, the later label. (Monitoring
    pools a stream by request id only when every row has one, so one row without an id keeps
    the repeats in the windows, as traffic imported from several sources can.)"""
    frame = labelled(params, 100, ids=True)
    frame.loc[99, REQUEST_ID] = None
    late = frame.iloc[:10].copy()
    late[TIME] = late[TIME] + pd.Timedelta(days=1)
    classes = sorted(set(frame[LABEL]))
    late[LABEL] = [classes[(classes.index(v) + 1) % len(classes)] for v in late[LABEL]]
    write_window(pd.concat([frame, late], ignore_index=True), tmp_path / PRODUCTION_DIR)
    rows, counts = feedback_rows(tmp_path, params, window_ids(tmp_path, params))
    assert counts.to_dict() == {"labelled": 110, "kept": 100, "duplicate": 10, "refused": 0}
    target = params.dataset.target
    by_id = rows.set_index(REQUEST_ID)[target]
    assert by_id.loc[late[REQUEST_ID]].tolist() == late[LABEL].tolist()


def test_rows_breaking_the_schema_are_refused_counted_and_named(
    tmp_path: Path, params: Params
) -> None:
    spec = params.dataset
    frame = labelled(params, 100)
    column = spec.features[0]
    frame.loc[[3, 50], column.name] = float(column.max) + 1  # above the declared max
    frame.loc[70, LABEL] = "not-a-class"
    write_window(frame, tmp_path / PRODUCTION_DIR)
    rows, counts = feedback_rows(tmp_path, params, window_ids(tmp_path, params))
    assert counts.to_dict() == {"labelled": 100, "kept": 97, "duplicate": 0, "refused": 3}
    assert len(rows) == 97 and "not-a-class" not in set(rows[spec.target])
    text = "\n".join(counts.problems)
    assert f"column {column.name!r}: above the declared max" in text and "2 row(s)" in text
    assert f"column {spec.target!r}: unknown category" in text


def test_a_missing_feature_column_refuses_the_apply(tmp_path: Path, params: Params) -> None:
    spec = params.dataset
    frame = labelled(params, 100).drop(columns=[spec.features[0].name])
    write_window(frame, tmp_path / PRODUCTION_DIR)
    with pytest.raises(DataError, match=f"column {spec.features[0].name!r}: declared column is"):
        feedback_rows(tmp_path, params, window_ids(tmp_path, params))
