"""The monitor graph run for real (`dvc repro` in a copy of the session's template project):
package (the bundle and its reference) -> simulate -> monitor finds what was injected; reruns,
new windows, config changes, the CLI's exit codes; what is judged: the release's own reference,
production before simulated scenarios, another line of releases explained, not judged."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.paths import SCENARIOS_FILE
from pipeline.windows import (
    LABEL,
    REQUEST_ID,
    TIME,
    Window,
    list_windows,
    track_partitions,
    write_window,
)
from tests.conftest import digests, dvc, mlops

pytestmark = pytest.mark.integration


def ran(log: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


def report(project: Path) -> dict:
    return json.loads((project / "reports/monitor/report.json").read_text())


def history(project: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((project / "reports/monitor/history.csv").read_text())))


def scenarios(project: Path) -> dict[str, dict]:
    """The simulated windows' lines in report.json, by window id."""
    return {w["id"]: w for w in report(project)["simulated"]["windows"]}


def simulated(project: Path) -> dict:
    return json.loads((project / "data/simulated/scenarios.json").read_text())


def simulated_windows(project: Path) -> list[Window]:
    return list_windows(project / "data/simulated", also=[SCENARIOS_FILE])


def window_file(project: Path, scenario: str) -> Path:
    (wid,) = [w for w, rec in simulated(project)["windows"].items() if rec["scenario"] == scenario]
    (window,) = [w for w in simulated_windows(project) if w.id == wid]
    return window.path  # simulated windows stay loose (in their month's folder)


def production_window(project: Path, scenario: str, start: str, rows: int | None = None) -> Path:
    """A simulated window's traffic replayed later as production traffic."""
    frame = pd.read_parquet(window_file(project, scenario)).iloc[:rows]
    frame[TIME] = pd.Timestamp(start) + pd.to_timedelta(range(0, 60 * len(frame), 60), unit="s")
    frame[REQUEST_ID] = [f"prod-{start[:10]}-{i}" for i in range(len(frame))]
    return write_window(frame, project / "data/production").path


def test_monitoring_finds_exactly_what_each_scenario_injected(template: Path) -> None:
    sim, rows = simulated(template), scenarios(template)
    assert set(rows) == set(sim["windows"])  # one monitoring window per simulated scenario
    found = {rec["scenario"]: (rows[wid], rec["injected"]) for wid, rec in sim["windows"].items()}

    clean, _ = found["clean"]
    assert (clean["status"], clean["violations"], clean["drifted_columns"]) == ("ok", [], [])

    shifted, injected = found["shifted_means"]
    assert shifted["status"] == "breach" and "dataset_drift" in shifted["violated"]
    assert shifted["drifted_columns"] == injected["shift"]["columns"]  # all, and only, those

    missing, injected = found["missing_column"]
    assert list(missing["violated"]) == ["null_share"]
    assert missing["null_share_alerts"] == injected["missing"]["columns"]
    assert missing["drifted_columns"] == []

    noisy, _ = found["label_noise"]
    # no absolute floor by default (the selection's floors are relative to a trivial
    # baseline, conf/task/): the drop against the bundle's test metrics catches the noise
    assert list(noisy["violated"]) == ["performance_drop"]
    assert noisy["metrics"]["accuracy"] < clean["metrics"]["accuracy"] - 0.2
    assert noisy["drifted_columns"] == [] and noisy["prediction_drifted"] is False

    # breast_cancer has no categorical (or low-cardinality) feature: category_mix is skipped
    assert "category_mix" in sim["skipped"] and "category_mix" not in found
    summary = mlops("summary", cwd=template).stdout
    assert "monitoring: judged against the unreleased champion's bundle" in summary
    assert "production: no windows yet" in summary
    assert "simulated scenarios (never counted for --check or maintenance): 4 window(s), " in (
        summary
    )
    assert "3 breaching, 1 ok" in summary
    assert re.search(r"missing_column +breach: null_share \w+", summary)


def test_performance_counts_only_rows_whose_label_arrived(template: Path) -> None:
    newest = report(template)["simulated"]["newest"]
    (window,) = [w for w in simulated_windows(template) if w.id == newest["id"]]
    frame = window.read()
    labelled = int(frame[LABEL].notna().sum())
    assert 0 < labelled < len(frame)  # the simulator leaves a share of labels unarrived
    assert newest["performance"]["labelled"] == newest["labelled"] == labelled


def test_running_monitor_again_on_the_same_windows_changes_nothing(project: Path) -> None:
    before = digests(project, ["reports/monitor/*"])
    assert ran(dvc("repro", "--force", "--single-item", "monitor", cwd=project).stdout) == [
        "monitor"
    ]
    assert digests(project, ["reports/monitor/*"]) == before
    assert len(before) == 4


@pytest.mark.slow  # test_own_data_end_to_end.py adds windows and re-runs monitor by default
def test_a_new_production_window_reruns_monitor_and_upserts_one_history_row(
    project: Path,
) -> None:
    old = (project / "reports/monitor/history.csv").read_text().splitlines()
    path = production_window(project, "clean", "2026-02-01T00:00:00+00:00")
    track_partitions([path.parent])  # how windows are tracked: one DVC output a month
    assert "monitor" in dvc("status", cwd=project).stdout
    assert ran(dvc("repro", cwd=project).stdout) == [
        "monitor",
        "maintain",
    ]  # and the decision on it
    new = (project / "reports/monitor/history.csv").read_text().splitlines()
    assert len(new) == len(old) + 1 and set(old) <= set(new)  # old rows byte-identical
    latest = report(project)["newest"]
    assert (latest["id"], latest["source"], latest["status"]) == (path.stem, "production", "ok")

    # a trickle of later traffic: a window too small for a verdict, not a breach
    small = production_window(project, "label_noise", "2026-02-02T00:00:00+00:00", rows=10)
    assert ran(dvc("repro", cwd=project).stdout) == ["monitor", "maintain"]
    latest = report(project)["newest"]
    assert latest["status"] == "insufficient_data" and latest["files"] == [small.name]
    assert history(project)[-1]["status"] == "insufficient_data"
    assert mlops("monitor", "--check", "--fail-on-breach", cwd=project).returncode == 0
    assert ran(dvc("repro", cwd=project).stdout) == []  # and nothing left to do


def test_a_threshold_change_reruns_only_monitor_and_maintain(project: Path) -> None:
    conf = project / "conf/monitor/default.yaml"
    text = conf.read_text()
    assert "  drift_share: 0.5 " in text
    conf.write_text(text.replace("  drift_share: 0.5 ", "  drift_share: 0.7 ", 1))
    mlops("compose", cwd=project)
    assert ran(dvc("repro", cwd=project).stdout) == ["monitor", "maintain"]
    shifted = next(r for r in scenarios(project).values() if r["scenario"] == "shifted_means")
    assert "dataset_drift" not in shifted["violated"]  # 60% of columns < 70%
    assert shifted["status"] == "breach"  # its predictions and accuracy still moved


@pytest.mark.slow  # monitor --check's exit codes, one repro per setting
def test_fail_on_breach_exit_codes(project: Path) -> None:
    assert mlops("monitor", "--check", cwd=project).returncode == 0
    # simulated scenarios only (the newest, label noise, breaches): nothing to fail on
    checked = mlops("monitor", "--check", "--fail-on-breach", cwd=project)
    assert "no production windows yet: nothing judged" in checked.stdout
    assert "simulated scenarios (not counted for --check or maintenance)" in checked.stdout
    noisy_traffic = production_window(project, "label_noise", "2024-12-01T00:00:00+00:00")
    track_partitions([noisy_traffic.parent])
    dvc("repro", cwd=project)
    checked = mlops("monitor", "--check", "--fail-on-breach", cwd=project, check=False)
    assert checked.returncode == 1 and "BREACH" in checked.stdout
    assert f"newest production window {noisy_traffic.stem}: BREACH" in checked.stdout

    clean = window_file(project, "clean").relative_to(project)
    manual = mlops("monitor", "--input", str(clean), "--fail-on-breach", cwd=project)
    assert manual.returncode == 0 and "OK" in manual.stdout
    assert (project / "reports/monitor-manual/report.html").is_file()
    noisy = window_file(project, "label_noise").relative_to(project)
    out = project / "elsewhere"
    failed = mlops(
        "monitor",
        "--input",
        str(noisy),
        "--out",
        str(out),
        "--fail-on-breach",
        cwd=project,
        check=False,
    )
    assert failed.returncode == 1 and "performance_drop" in failed.stdout
    assert json.loads((out / "report.json").read_text())["newest"]["status"] == "breach"

    missing = mlops("monitor", "--input", "nope.csv", cwd=project, check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_report = mlops("monitor", "--check", "--report", "nope.json", cwd=project, check=False)
    assert no_report.returncode == 2 and "dvc repro monitor" in no_report.stderr


def test_dvc_tracks_the_monitor_outputs(template: Path) -> None:
    shown = json.loads(dvc("metrics", "show", "--json", cwd=template).stdout)
    (revision,) = shown.values()
    metrics = revision["data"]["reports/monitor/metrics.json"]["data"]
    assert metrics["windows"] == 0 and "newest" not in metrics  # simulated windows never count
    plots = json.loads(dvc("plots", "show", "--json", cwd=template).stdout)
    assert "errors" not in plots and "reports/monitor/history.csv" in plots["data"]


# ------------------------------------------------------------------------ what is judged
def local_conf(project: Path, extra: str) -> None:
    """Merge `extra` (YAML) into the copy's machine-local overrides and recompose."""
    from omegaconf import OmegaConf

    path = project / "conf/local/default.yaml"
    merged = OmegaConf.merge(OmegaConf.load(path), OmegaConf.create(extra))
    path.write_text("# @package _global_\n" + OmegaConf.to_yaml(merged))
    mlops("compose", cwd=project)


def released(project: Path) -> dict:
    mlops("release", "--target", "local", cwd=project)
    dvc("repro", cwd=project)
    return json.loads((project / "deploy/local.json").read_text())


def rows_of(path: Path) -> int:
    return int(json.loads(path.read_text())["rows"])


@pytest.mark.slow  # a retrain, then monitoring twice
def test_an_unreleased_retrain_leaves_the_releases_reference_and_verdicts_alone(
    project: Path,
) -> None:
    # KS up to 370 reference values, Wasserstein above: the release trained on fewer rows
    local_conf(project, "monitor:\n  drift:\n    small_reference_rows: 370\n")
    record = released(project)
    bundle = project / record["bundle"]["path"]
    release_rows = rows_of(bundle / "reference/reference.json")
    assert release_rows == json.loads((bundle / "bundle.json").read_text())["data"]["train_rows"]
    window = production_window(project, "clean", "2026-02-01T00:00:00+00:00")
    track_partitions([window.parent])
    dvc("repro", cwd=project)
    before = (project / "reports/monitor/history.csv").read_bytes()
    judged = report(project)
    assert judged["monitored"]["release"] == record["release"]
    assert judged["monitored"]["reference_rows"] == release_rows
    assert judged["newest"]["drift"]["columns"]["mean_radius"]["method"] == "ks"

    # a retrain on more rows (a smaller test split), not released
    local_conf(project, "split:\n  test_size: 0.05\n")
    assert {"prepare", "package", "monitor"} <= set(ran(dvc("repro", cwd=project).stdout))
    champion_rows = rows_of(project / "models/bundle/reference/reference.json")
    assert release_rows <= 370 < champion_rows  # the newest split would switch KS to Wasserstein
    after = report(project)
    assert after["monitored"]["release"] == record["release"]
    assert after["monitored"]["reference_rows"] == release_rows
    assert after["newest"]["status"] == "ok"
    assert after["newest"]["drift"]["columns"]["mean_radius"]["method"] == "ks"
    assert (project / "reports/monitor/history.csv").read_bytes() == before  # same verdicts


@pytest.mark.slow  # the own-data test monitors production beside simulated windows
def test_production_heads_the_report_and_simulated_windows_drive_nothing(
    project: Path,
) -> None:
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["action"] == "none"
    assert decision["reason"] == (
        "no production window yet; 4 simulated window(s) are never used for maintenance"
    )
    assert "no production window yet; 4 simulated" in mlops("maintain", cwd=project).stdout
    # real traffic older than the simulated scenarios (stamped 2025-01-06), the newest of
    # which (label noise) breaches
    window = production_window(project, "clean", "2024-12-01T00:00:00+00:00")
    track_partitions([window.parent])
    log = dvc("repro", cwd=project)
    assert "monitor: judged against the unreleased champion's bundle" in log.stderr + log.stdout
    doc = report(project)
    assert (doc["newest"]["id"], doc["newest"]["status"]) == (window.stem, "ok")
    assert doc["simulated"]["newest"]["status"] == "breach"
    assert doc["simulated"]["newest"]["start"] > doc["newest"]["start"]
    checked = mlops("monitor", "--check", "--fail-on-breach", cwd=project)
    assert f"newest production window {window.stem}: OK" in checked.stdout
    assert [r["window"] for r in history(project)] == [window.stem]
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["as_of"].startswith("2024-12-01") and decision["policies"]


@pytest.mark.slow  # a regression graph on a released classifier
def test_a_regression_dataset_on_a_classification_release_is_explained_not_crashed(
    project: Path,
) -> None:
    record = released(project)
    release = record["release"]
    mlops("compose", "dataset=diabetes", cwd=project)  # a new line, not released yet
    proc = dvc("repro", "maintain", cwd=project)  # the monitor chain (deploy@ is the gate's)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    assert (
        f"monitor: skipped, no window judged: release {release} (bundle "
        f"{record['bundle']['id']}, target local) has another input signature or task than "
        "the project declares"
    ) in output
    assert "task: regression, was classification" in output
    doc = report(project)
    assert doc["judged"] is False and doc["monitored"]["release"] == release
    assert doc["skipped"]["differences"][0] == ("task: regression, was classification")
    assert {w["status"] for w in doc["simulated"]["windows"]} == {"not_judged"}
    assert "Monitoring skipped" in (project / "reports/monitor/report.html").read_text()
    checked = mlops("monitor", "--check", "--fail-on-breach", cwd=project)  # no production
    assert "monitoring skipped, no window judged" in checked.stdout
    decision = json.loads((project / "reports/maintain/decision.json").read_text())
    assert decision["reason"].startswith("no production window yet; monitoring was skipped (")

    by_hand = mlops(
        "monitor",
        "--input",
        str(simulated_windows(project)[0].path),
        cwd=project,
        check=False,
    )
    assert by_hand.returncode == 2 and "Traceback" not in by_hand.stderr
    assert "another input signature or task" in by_hand.stderr
    assert "mlops release" in by_hand.stderr
