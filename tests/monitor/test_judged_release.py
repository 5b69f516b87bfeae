"""What monitoring judges: the monitored release's own bundle and reference, production traffic
as the headline (simulated scenarios apart, never counted), and an explained refusal instead of
a verdict (or a traceback) when the bundle cannot judge the project's traffic."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main as mlops_main
from pipeline.errors import ArtifactError
from pipeline.monitor.assess import BREACH, NOT_JUDGED, OK
from pipeline.monitor.engine import load_context, monitor
from pipeline.monitor.manual import Columns, monitor_files
from pipeline.monitor.windowing import MonitorWindow, windows_of
from pipeline.params import WindowSpec
from pipeline.windows import PREDICTION
from tests.monitor.fakes import (
    CLASSES,
    dataset,
    params,
    reference_frame,
    traffic,
    typed,
    write_bundle,
)

SPEC = WindowSpec(by="time", rows=1, span="1d", min_rows=50)
RELEASE = "r0001-"


def project(
    tmp_path: Path, *, release: pd.DataFrame | None = None, with_reference: bool = True
) -> str:
    """A project with a released bundle (deploy/local.json -> bundles/<id>) and a champion's
    bundle (models/bundle) trained since on other, larger data; returns the release id."""
    rng = np.random.default_rng(1)
    predictions = rng.choice(CLASSES, 300, p=[0.7, 0.3]).tolist()
    staging = tmp_path / "bundles/staging"
    digest = write_bundle(staging, predictions, reference=release, with_reference=with_reference)
    bundle_dir = tmp_path / "bundles" / digest[:16]
    staging.rename(bundle_dir)
    newer = reference_frame(3000, seed=9)  # the retrain: more rows, another distribution
    newer["x"] = newer["x"] + 3.0
    write_bundle(tmp_path / "models/bundle", predictions, reference=newer)
    record = {
        "target": "local",
        "release": RELEASE + digest[:16],
        "bundle": {"id": digest[:16], "sha256": digest, "path": f"bundles/{digest[:16]}"},
    }
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/local.json").write_text(json.dumps(record))
    return str(record["release"])


def windows(*frames: tuple[str, pd.DataFrame]) -> list[MonitorWindow]:
    found = []
    for i, (source, frame) in enumerate(frames):
        found += windows_of(source, [frame], [f"{source}-{i}.parquet"], SPEC)
    return sorted(found, key=lambda w: (w.id, w.source))


def read_history(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "history.csv").read_text())))


# ------------------------------------------------------------------ the release's own reference
def test_the_reference_is_the_released_bundles_not_the_newest_training_splits(
    tmp_path: Path,
) -> None:
    release = project(tmp_path)
    ctx = load_context(tmp_path, *typed(params()))
    assert ctx.refusal is None and ctx.bundle.release == release
    assert ctx.reference.rows == 600  # the release's 600 training rows, not the retrain's 3000
    clean = traffic(200, start="2026-01-01T00:00:00+00:00")
    document, (result,) = monitor(windows(("production", clean)), ctx, tmp_path / "out")
    assert result["status"] == OK, result["violations"]
    assert result["drift"]["columns"]["x"]["method"] == "ks"  # <= 1,000 reference values: KS
    assert document["monitored"]["release"] == release
    assert document["monitored"]["reference_rows"] == 600
    assert f"judging release <b>{release}</b>" in (tmp_path / "out/report.html").read_text()


def test_before_any_release_the_champions_bundle_is_judged_and_named(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "deploy/local.json").write_text(json.dumps({"target": "local", "release": None}))
    ctx = load_context(tmp_path, *typed(params()))
    assert ctx.bundle.source == "champion" and ctx.reference.rows == 3000
    assert ctx.bundle.label.startswith("the unreleased champion's bundle ")
    assert "target local has no release yet" in ctx.bundle.label


# -------------------------------------------------------------------------------- refusals
def test_a_regression_project_on_a_classification_release_is_explained_not_judged(
    tmp_path: Path,
) -> None:
    release = project(tmp_path)
    regression = params()
    regression["task"] = "regression"
    regression["dataset"] = dataset(y={"type": "float"})
    ctx = load_context(tmp_path, *typed(regression))
    assert ctx.refusal is not None
    assert ctx.refusal.reason.startswith(f"release {release} (bundle {release[6:]}, target local)")
    assert ctx.refusal.differences == ("task: regression, was classification",)
    assert "mlops release" in ctx.refusal.hint and "monitor.target" in ctx.refusal.hint

    out = tmp_path / "out"
    document, results = monitor(
        windows(
            ("production", traffic(200, start="2026-01-01T00:00:00+00:00")),
            ("simulated", traffic(200, seed=6, start="2026-01-02T00:00:00+00:00")),
        ),
        ctx,
        out,
    )
    assert [r["status"] for r in results] == [NOT_JUDGED, NOT_JUDGED]
    assert all(r["drift"] is None and r["violations"] == [] for r in results)
    assert document["judged"] is False and document["skipped"]["differences"] == list(
        ctx.refusal.differences
    )
    assert document["summary"]["by_status"][NOT_JUDGED] == 1
    assert read_history(out)[0]["status"] == NOT_JUDGED
    assert json.loads((out / "metrics.json").read_text())["not_judged_windows"] == 1
    html = (out / "report.html").read_text()
    assert "Monitoring skipped" in html and "task: regression, was classification" in html

    # by hand, the same refusal is an error, and nothing is written
    path = tmp_path / "scored.parquet"
    traffic(100).to_parquet(path)
    with pytest.raises(ArtifactError, match="another input signature or task") as caught:
        monitor_files(tmp_path, *typed(regression), [path], Columns(), tmp_path / "manual")
    assert "mlops release" in (caught.value.hint or "")
    assert not (tmp_path / "manual").exists()


@pytest.mark.parametrize(
    ("columns", "difference"),
    [
        ({"c": None, "z": {"type": "float"}}, "inputs removed: c"),
        ({"z": {"type": "float"}}, "inputs added: z"),
        ({"c": {"type": "int"}}, "input types changed: c int (was category)"),
    ],
)
def test_another_input_signature_is_named(
    tmp_path: Path, columns: dict[str, Any], difference: str
) -> None:
    project(tmp_path)
    changed = params()
    changed["dataset"] = dataset(**columns)
    ctx = load_context(tmp_path, *typed(changed))
    assert ctx.refusal is not None and difference in ctx.refusal.differences


def test_a_bundle_without_a_reference_is_refused_with_a_hint(tmp_path: Path) -> None:
    release = project(tmp_path, with_reference=False)
    ctx = load_context(tmp_path, *typed(params()))
    assert ctx.refusal is not None
    assert f"release {release}" in ctx.refusal.reason
    assert "carries no drift reference (bundle format 1" in ctx.refusal.reason
    assert "re-release" in ctx.refusal.hint


def test_traffic_of_another_line_is_not_judged_against_the_release(tmp_path: Path) -> None:
    project(tmp_path)
    with_id = params()
    with_id["dataset"] = dataset(rid={"type": "int", "role": "id"})
    ctx = load_context(tmp_path, *typed(with_id))
    other = traffic(200, start="2026-01-01T00:00:00+00:00").rename(columns={"x": "a", "c": "b"})
    numbers = traffic(200, seed=6, start="2026-01-02T00:00:00+00:00")
    numbers[PREDICTION] = "maybe"  # a class this classifier does not have
    missing_one = traffic(200, seed=7, start="2026-01-03T00:00:00+00:00").drop(columns=["c"])
    missing_one["rid"] = range(200)  # a declared id column: not another line's feature
    _, results = monitor(
        windows(("production", other), ("production", numbers), ("production", missing_one)),
        ctx,
        tmp_path / "out",
    )
    assert [r["status"] for r in results] == [NOT_JUDGED, NOT_JUDGED, BREACH]
    assert "it lacks x, c and has a, b" in results[0]["notes"][0]
    assert "its predictions include maybe" in results[1]["notes"][0]
    assert "counted as all null: c" in " ".join(results[2]["notes"])  # a data problem, judged


# ------------------------------------------------------------------ production vs simulated
def test_production_is_the_headline_and_simulated_windows_never_count(tmp_path: Path) -> None:
    project(tmp_path)
    ctx = load_context(tmp_path, *typed(params()))
    out = tmp_path / "out"
    document, _ = monitor(
        windows(  # the production window is older than the simulated breach
            ("production", traffic(200, start="2025-01-01T00:00:00+00:00")),
            ("simulated", traffic(200, seed=6, start="2025-01-06T00:00:00+00:00", shift=2.0)),
        ),
        ctx,
        out,
    )
    assert document["newest"]["source"] == "production" and document["newest"]["status"] == OK
    assert document["summary"]["by_status"] == {
        OK: 1,
        BREACH: 0,
        "insufficient_data": 0,
        NOT_JUDGED: 0,
    }
    simulated = document["simulated"]
    assert simulated["summary"]["windows"] == 1 and simulated["newest"]["status"] == BREACH
    assert "never counted" in simulated["note"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["windows"] == 1 and metrics["breaching_windows"] == 0
    assert [r["source"] for r in read_history(out)] == ["production"]
    html = (out / "report.html").read_text()
    assert (
        html.index("id='verdict'") < html.index("id='simulated'") < html.index("id='sim-verdict'")
    )

    assert (
        mlops_main(["monitor", "--check", "--fail-on-breach", "--report", str(out / "report.json")])
        == 0
    )


def test_with_only_simulated_windows_nothing_is_judged_for_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path)
    ctx = load_context(tmp_path, *typed(params()))
    out = tmp_path / "out"
    document, _ = monitor(
        windows(("simulated", traffic(200, start="2025-01-06T00:00:00+00:00", shift=2.0))),
        ctx,
        out,
    )
    assert document["newest"] is None and document["simulated"]["newest"]["status"] == BREACH
    report = str(out / "report.json")
    assert mlops_main(["monitor", "--check", "--fail-on-breach", "--report", report]) == 0
    printed = capsys.readouterr().out
    assert "no production windows yet: nothing judged" in printed
    assert "simulated scenarios (not counted for --check or maintenance)" in printed
    assert "No production windows yet: nothing judged." in (out / "report.html").read_text()
    assert (out / "history.csv").read_text().count("\n") == 1  # the header only


def test_check_fails_on_a_newest_production_window_not_judged(tmp_path: Path) -> None:
    project(tmp_path)
    regression = params()
    regression["task"] = "regression"
    regression["dataset"] = dataset(y={"type": "float"})
    out = tmp_path / "out"
    monitor(
        windows(("production", traffic(200, start="2026-01-01T00:00:00+00:00"))),
        load_context(tmp_path, *typed(regression)),
        out,
    )
    report = str(out / "report.json")
    assert mlops_main(["monitor", "--report", report]) == 0  # shown, not checked
    assert mlops_main(["monitor", "--check", "--report", report]) == 1
    assert mlops_main(["monitor", "--check", "--fail-on-breach", "--report", report]) == 1


def test_check_refuses_a_report_of_the_old_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "report.json"
    old.write_text(json.dumps({"format": "gitops-mlops/monitor-report", "version": 1}))
    assert mlops_main(["monitor", "--check", "--report", str(old)]) == 2
    assert "run `dvc repro monitor`" in capsys.readouterr().err


def test_an_earlier_lines_later_traffic_is_never_the_headline() -> None:
    """After a new dataset, data/production/ may hold the old line's windows with later times;
    the newest window of the monitored line heads the report (and decides --check)."""
    from pipeline.monitor.report import newest

    old = {"id": "20260101T000000-aaaaaaaaaaaa", "source": "production", "other_line": True}
    own = {"id": "20250101T000000-bbbbbbbbbbbb", "source": "production", "status": "ok"}
    assert newest([old, own]) is own
    assert newest([old]) is old  # nothing of the monitored line: the fact is still shown
