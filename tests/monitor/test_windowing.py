"""From window files to monitoring windows: pooling, cutting, ids, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.monitor.windowing import collect, cut, pool, windows_of
from pipeline.params import WindowSpec, span_seconds
from pipeline.windows import TIME, list_windows, normalise, window_id, write_window
from tests.monitor.fakes import traffic

ROWS = WindowSpec(by="rows", rows=100, span="1d", min_rows=10)


def test_rows_cut_consecutive_runs_in_time_order_across_files() -> None:
    early, late = traffic(150, seed=1), traffic(100, seed=2, start="2025-03-02T00:00:00+00:00")
    windows = windows_of("production", [late, early], ["b.parquet", "a.parquet"], ROWS)
    assert [len(w.frame) for w in windows] == [100, 100, 50]
    assert all(w.frame[TIME].is_monotonic_increasing for w in windows)
    assert windows[0].files == ("a.parquet",)  # a holds the early traffic, listed second
    assert windows[1].files == ("a.parquet", "b.parquet")  # the run crossing the files
    assert windows[2].files == ("b.parquet",)


def test_two_lines_of_releases_are_never_cut_into_one_window() -> None:
    """After a new dataset, data/production/ holds a classifier's windows (text labels) and a
    regressor's (numbers, other columns): each line is pooled and cut on its own, in time
    order, and every window has one line's columns."""
    labels = traffic(150, seed=1)
    numbers = traffic(120, seed=2, start="2025-03-01T01:00:00+00:00").rename(columns={"c": "z"})
    numbers["__prediction__"] = np.linspace(0, 1, len(numbers))
    numbers["__label__"] = np.nan
    windows = windows_of("production", [labels, numbers], ["a.parquet", "b.parquet"], ROWS)
    assert sorted(len(w.frame) for w in windows) == [20, 50, 100, 100]
    assert {w.files for w in windows} == {("a.parquet",), ("b.parquet",)}
    for w in windows:
        assert ("z" in w.frame.columns) == (w.files == ("b.parquet",))
        assert ("c" in w.frame.columns) == (w.files == ("a.parquet",))
    assert [w.id for w in windows] == sorted(w.id for w in windows)


def test_more_traffic_only_extends_the_last_window() -> None:
    first = traffic(150, seed=1)
    later = traffic(100, seed=2, start="2025-03-02T00:00:00+00:00")
    before = windows_of("production", [first], ["a.parquet"], ROWS)
    after = windows_of("production", [first, later], ["a.parquet", "b.parquet"], ROWS)
    assert after[0].id == before[0].id  # a full window keeps its id
    assert after[1].id != before[1].id  # the partial one filled up
    assert len(after) == 3


def test_time_spans_are_aligned_to_utc_midnight() -> None:
    frame = traffic(3 * 24, seed=1, start="2025-03-01T12:00:00+00:00")
    frame[TIME] = pd.Timestamp("2025-03-01T12:00:00+00:00") + pd.to_timedelta(
        range(0, 3 * 24 * 3600, 3600), unit="s"
    )
    spec = WindowSpec(by="time", rows=1, span="1d", min_rows=1)
    windows = windows_of("production", [frame], ["a.parquet"], spec)
    assert [len(w.frame) for w in windows] == [12, 24, 24, 12]
    assert [w.frame[TIME].iloc[0].hour for w in windows] == [12, 0, 0, 0]
    assert span_seconds("15min") == 900 and span_seconds("1w") == 7 * 86400
    with pytest.raises(ValueError, match="not a time span"):
        span_seconds("1 day")


def test_ids_come_from_the_data(tmp_path: Path) -> None:
    frame = traffic(100, seed=3)
    written = write_window(frame, tmp_path)
    (window,) = collect({"production": tmp_path}, ROWS)
    assert window.id == written.id  # one whole file keeps its id
    again = windows_of("manual", [frame.iloc[::-1]], ["not-a-window-name.csv"], ROWS)
    assert again[0].id == window_id(normalise(frame))  # a computed id, order-independent


def test_repeated_request_ids_count_once() -> None:
    frame = traffic(80, seed=3)
    merged, dropped = pool([frame, frame.iloc[:30]])
    assert (len(merged), dropped) == (80, 30)
    windows = windows_of("production", [frame, frame.iloc[:30]], ["a", "b"], ROWS)
    assert windows[0].duplicates == 30


def test_empty_sources_and_cuts() -> None:
    assert cut(pd.DataFrame(), ROWS) == []
    assert collect({"production": Path("/nonexistent")}, ROWS) == []


def test_tracked_but_unfetched_windows_stop_monitoring(tmp_path: Path) -> None:
    write_window(traffic(100, seed=3), tmp_path)
    (tmp_path / "20250101T000000-0123456789ab.parquet.dvc").write_text("outs: []\n")
    with pytest.raises(DataError, match="not in the workspace") as caught:
        collect({"production": tmp_path}, ROWS)
    assert "dvc pull" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "name", ["traffic.parquet", "traffic.csv", "notes.txt", "traffic.parquet.dvc", "sub"]
)
def test_every_file_that_is_not_a_window_is_refused_by_name(tmp_path: Path, name: str) -> None:
    """Regression: a CSV under data/production/ was silently ignored."""
    write_window(traffic(100), tmp_path)
    (tmp_path / ".gitkeep").touch()
    (tmp_path / ".gitignore").write_text("/*.parquet\n")
    if name == "sub":
        (tmp_path / name).mkdir()
    elif name.endswith(".csv"):
        traffic(10).to_csv(tmp_path / name, index=False)
    else:
        (tmp_path / name).write_text("x")
    with pytest.raises(DataError, match=f"1 file\\(s\\) that are not production windows: {name}$"):
        collect({"production": tmp_path}, ROWS)
    with pytest.raises(DataError) as caught:
        list_windows(tmp_path)
    hint = caught.value.hint or ""
    if name.startswith("traffic.") and not name.endswith(".dvc"):
        assert f"mlops logs import {tmp_path / name}" in hint
    else:
        assert f"move it out of {tmp_path}" in hint


def test_window_pointers_and_the_simulator_manifest_are_allowed(tmp_path: Path) -> None:
    window = write_window(traffic(100), tmp_path)
    (tmp_path / f"{window.path.parent.name}.dvc").write_text("outs: []\n")  # its month's
    (tmp_path / "scenarios.json").write_text("{}")
    assert [
        w.id for w in collect({"simulated": tmp_path}, ROWS, {"simulated": ["scenarios.json"]})
    ] == [window.id]
    with pytest.raises(DataError, match=r"not production windows: scenarios\.json"):
        collect({"production": tmp_path}, ROWS, {"simulated": ["scenarios.json"]})


def test_a_rows_cut_takes_each_window_from_the_clusters_it_overlaps() -> None:
    """`plan` sweeps the clusters once (it compared every window with every cluster, quadratic
    in the history): the slices equal that comparison's for clusters of every size, empty
    ones and ones longer than a window included."""
    from pipeline.monitor.windowing import Cluster, FileInfo, plan

    rng = np.random.default_rng(3)
    sizes = [0, 250, 1, 99, 100, 0, 7, 301, *rng.integers(0, 260, 200).tolist()]
    clusters = [
        Cluster((FileInfo(f"f{i}", None, str(i), n, 0, 0, "line", {}),), n, 0, ())
        for i, n in enumerate(sizes)
    ]
    for rows in (1, 7, 100, 1000):
        spec = WindowSpec(by="rows", rows=rows, span="1d", min_rows=1)
        offsets = np.cumsum([0, *sizes])
        expected = []
        for start in range(0, int(offsets[-1]), rows):
            stop = min(start + rows, int(offsets[-1]))
            parts = []
            for i in range(len(sizes)):
                lo, hi = max(start, offsets[i]), min(stop, offsets[i + 1])
                if lo < hi:
                    parts.append((clusters[i], int(lo - offsets[i]), int(hi - offsets[i])))
            expected.append(parts)
        got = [
            [(w.clusters[index], lo, hi) for index, lo, hi in w.slices]
            for w in plan("production", clusters, spec)
        ]
        assert got == expected
