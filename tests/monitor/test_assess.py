"""Per-window verdicts: status, violations, labelled-only performance, prediction drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ArtifactError
from pipeline.monitor.assess import BREACH, INSUFFICIENT, OK, assess, performance
from pipeline.monitor.monitored_bundle import monitored_bundle, read_bundle
from pipeline.monitor.windowing import windows_of
from pipeline.params import PerformanceSpec
from pipeline.windows import LABEL, PREDICTION
from tests.monitor.fakes import context, params, traffic, write_bundle

SPEC = PerformanceSpec(
    min_labelled=30,
    floors={"balanced_accuracy": 0.8},
    baseline={},
    max_drop=0.1,
    max_drop_by_metric={},
)


def one_window(frame: pd.DataFrame, rows: int = 10_000):
    settings_rows = {"by": "rows", "rows": rows, "span": "1d", "min_rows": 50}
    from pipeline.params import WindowSpec

    (window,) = windows_of("production", [frame], ["traffic.parquet"], WindowSpec(**settings_rows))
    return window


def checks_of(result: dict) -> dict[str, list[bool | None]]:
    out: dict[str, list[bool | None]] = {}
    for c in result["checks"]:
        out.setdefault(c["check"], []).append(c["ok"])
    return out


def test_clean_traffic_passes_every_check(tmp_path: Path) -> None:
    result = assess(one_window(traffic()), context(tmp_path))
    assert result["status"] == OK, result["violations"]
    assert result["violations"] == []
    assert all(c["ok"] for c in result["checks"])
    assert {c["check"] for c in result["checks"]} == {
        "dataset_drift",
        "null_share",
        "prediction_drift",
        "performance_floor",
        "performance_drop",
    }
    json.dumps(result)  # JSON-ready


def test_shifted_traffic_breaches_with_the_column_named(tmp_path: Path) -> None:
    result = assess(one_window(traffic(shift=1.0)), context(tmp_path))
    assert result["status"] == BREACH
    assert result["drift"]["dataset"]["drifted_columns"] == ["x"]
    (violation,) = [v for v in result["violations"] if v["check"] == "dataset_drift"]
    assert "1 of 2 columns drifted" in violation["message"] and "x" in violation["message"]
    assert result["checks"][0]["ok"] is False  # violations first


def test_a_column_going_missing_is_a_null_share_violation(tmp_path: Path) -> None:
    frame = traffic()
    frame.loc[frame.index[::2], "c"] = None
    result = assess(one_window(frame), context(tmp_path))
    assert [(v["check"], v["subject"]) for v in result["violations"]] == [("null_share", "c")]
    assert "0.0% to 50.0%" in result["violations"][0]["message"]


def test_a_column_absent_from_the_file_counts_as_all_null(tmp_path: Path) -> None:
    result = assess(one_window(traffic().drop(columns=["c"])), context(tmp_path))
    assert result["drift"]["columns"]["c"]["status"] == "all_null"
    assert "counted as all null: c" in " ".join(result["notes"])
    assert result["status"] == BREACH


def test_prediction_drift_compares_with_the_bundles_test_predictions(tmp_path: Path) -> None:
    frame = traffic()
    frame[PREDICTION] = "yes"  # the bundle predicted "yes" for ~30% of the test split
    result = assess(one_window(frame), context(tmp_path))
    assert result["prediction"]["drifted"] is True
    assert "prediction_drift" in {v["check"] for v in result["violations"]}


def test_performance_uses_only_labelled_rows() -> None:
    pred = pd.Series(["yes"] * 40 + ["no"] * 60, dtype=object)
    labels = pred.copy()
    labels[40:] = None  # only the 40 correct rows have a label; the 60 others are wrong...
    wrong = pd.Series(["no"] * 40 + ["yes"] * 60, dtype=object)
    result, checks = performance(labels, pred, "classification", {"accuracy": 0.9}, SPEC)
    assert result["labelled"] == 40
    assert result["metrics"]["accuracy"]["value"] == 1.0
    assert all(c["ok"] for c in checks)
    # ...and when the wrong rows' labels arrive, they count
    result, checks = performance(wrong.where(pred == "no", pred), pred, "classification", {}, SPEC)
    assert result["labelled"] == 100 and result["metrics"]["accuracy"]["value"] == 0.4
    assert [c["check"] for c in checks if c["ok"] is False] == ["performance_floor"]


def test_performance_is_not_judged_below_min_labelled(tmp_path: Path) -> None:
    frame = traffic(correct=0.3, labelled=0.1)  # ~20 labels, mostly wrong
    result = assess(one_window(frame), context(tmp_path))
    perf = result["performance"]
    assert perf["status"] == "insufficient_labels" and perf["labelled"] < 30
    assert perf["metrics"]["accuracy"]["value"] < 0.6  # shown...
    assert checks_of(result)["performance"] == [None]  # ...not judged
    assert result["status"] == OK


def test_floor_and_drop_are_both_checked(tmp_path: Path) -> None:
    result = assess(one_window(traffic(correct=0.75)), context(tmp_path))
    failed = {(v["check"], v["subject"]) for v in result["violations"]}
    assert ("performance_floor", "balanced_accuracy") in failed
    assert ("performance_drop", "accuracy") in failed
    drop = result["performance"]["metrics"]["accuracy"]
    assert drop["allowed_drop"] == pytest.approx(0.09)  # 10% of the bundle's 0.9
    assert drop["worsening"] == pytest.approx(0.9 - drop["value"])


def test_absolute_drop_overrides_the_relative_one(tmp_path: Path) -> None:
    ctx = context(tmp_path, performance={"max_drop": None, "max_drop_by_metric": {"accuracy": 0.5}})
    result = assess(one_window(traffic(correct=0.75)), ctx)
    checked = {c["subject"] for c in result["checks"] if c["check"] == "performance_drop"}
    assert checked == {"accuracy"}


def test_a_small_window_is_insufficient_data_not_a_verdict(tmp_path: Path) -> None:
    result = assess(one_window(traffic(n=20, shift=5.0)), context(tmp_path))
    assert result["status"] == INSUFFICIENT
    assert result["violations"] == [] and result["drift"] is None
    assert "20 rows < windows.min_rows 50" in result["notes"][0]


def test_released_bundle_is_verified_against_the_recorded_digest(tmp_path: Path) -> None:
    digest = write_bundle(tmp_path / "bundles/released", ["no", "yes"])
    (tmp_path / "bundles/released").rename(tmp_path / f"bundles/{digest[:16]}")
    write_bundle(tmp_path / "models/bundle", ["no"])
    record = tmp_path / "deploy/local.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"target": "local", "release": None}))
    assert monitored_bundle(tmp_path, "local").source == "champion"

    def release(sha: str, path: str = f"bundles/{digest[:16]}") -> None:
        bundle = {"id": sha[:16], "sha256": sha, "path": path}
        record.write_text(
            json.dumps({"target": "local", "release": f"r0001-{sha[:16]}", "bundle": bundle})
        )

    release(digest)
    released = monitored_bundle(tmp_path, "local")
    assert (released.source, released.id) == ("released", digest[:16])
    assert released.location == f"bundles/{digest[:16]}"
    # the same id, another digest: not the bundle the release approved
    release(digest[:16] + "0" * 48)
    with pytest.raises(ArtifactError, match="does not match the release"):
        monitored_bundle(tmp_path, "local")
    # a record pointing anywhere but bundles/<id> (here the unreleased champion) is refused
    release(digest, path="models/bundle")
    with pytest.raises(ArtifactError, match=r"bundle\.path is 'models/bundle', expected 'bundles/"):
        monitored_bundle(tmp_path, "local")
    (tmp_path / f"bundles/{digest[:16]}/predictions.parquet").write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        read_bundle(tmp_path / f"bundles/{digest[:16]}", digest)


def test_settings_read_the_committed_shape() -> None:
    from pipeline.params import MonitorSettings

    settings = MonitorSettings.from_params(params(windows={"by": "time", "span": "6h"}))
    assert settings.windows.span_seconds == 6 * 3600
    assert settings.performance.allowed_drop("accuracy", 0.8) == pytest.approx(0.08)
    assert np.isclose(settings.drift.drift_share, 0.5)
    assert LABEL not in settings.performance.floors


def test_window_values_are_read_by_the_training_rules() -> None:
    """A window holds values as clients spelled them; monitoring reads them as training does
    (`pipeline.values`), so "yes" and True are one bool, "2.0" and 2 one category, and a value
    not of its type is missing rather than a category of its own."""
    from pipeline.monitor.assess import features_frame

    window = pd.DataFrame(
        {
            "flag": ["yes", True, "0", None, "maybe"],
            "size": [2, "2.0", 2.0, "3", None],
            "x": ["1.5", 2, None, "abc", 4.0],
        }
    )
    frame, missing = features_frame(
        window,
        ["flag", "size", "x", "absent"],
        {"flag": "bool", "size": "category", "x": "float", "absent": "float"},
    )
    assert missing == ["absent"]
    assert frame["flag"].tolist()[:3] == ["true", "true", "false"]
    assert frame["flag"].isna().tolist() == [False, False, False, True, True]
    assert frame["size"].tolist()[:4] == ["2", "2", "2", "3"]
    assert frame["x"].tolist()[:2] == [1.5, 2.0] and frame["x"].isna().sum() == 2
    assert frame["absent"].isna().all()


def test_the_baseline_floor_is_the_trivial_models_score_on_the_same_labelled_rows() -> None:
    """A model must beat, on the window's own labels, the trivial baseline it was selected and
    gated against (recorded in its bundle) by the declared amount; a metric that needs
    probabilities is noted, never silently skipped."""
    from pipeline.settings import Amount

    baseline = {
        "task": "classification",
        "strategy": "prior",
        "fitted": {"classes": ["no", "yes"], "prior": [0.7, 0.3]},
    }
    spec = PerformanceSpec(
        min_labelled=10,
        floors={},
        max_drop=None,
        baseline={
            "balanced_accuracy": Amount("absolute", 0.05),
            "roc_auc": Amount("absolute", 0.05),
        },
        max_drop_by_metric={},
    )
    labels = pd.Series(["no", "yes"] * 20)
    good = pd.Series(["no", "yes"] * 18 + ["yes", "no"] * 2)  # balanced accuracy 0.9
    chance = pd.Series(["no"] * 40)  # what the baseline does: balanced accuracy 0.5
    ok, ok_checks = performance(labels, good, "classification", {}, spec, baseline)
    _, bad_checks = performance(labels, chance, "classification", {}, spec, baseline)
    floor = ok["metrics"]["balanced_accuracy"]["floors"][0]
    assert floor["source"] == "baseline" and floor["baseline"] == 0.5 and floor["floor"] == 0.55
    assert [c["ok"] for c in ok_checks if c["check"] == "performance_floor"] == [True]
    [failed] = [c for c in bad_checks if c["check"] == "performance_floor"]
    assert failed["ok"] is False
    assert "0.5000 is under the floor 0.5500 (baseline 0.5000 + 0.05)" in failed["message"]
    assert any("roc_auc not checked" in note for note in ok["notes"])
    # no baseline recorded (a bundle older than baseline floors): said, not skipped silently
    old, _ = performance(labels, good, "classification", {}, spec, None)
    assert any("records no baseline" in note for note in old["notes"])
