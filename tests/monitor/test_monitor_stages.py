"""The monitor graph run for real (`dvc repro` in a copy of the session's template project):
reference -> simulate -> monitor finds what was injected; reruns, new windows, config changes,
the CLI's exit codes."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.windows import LABEL, REQUEST_ID, TIME, write_window
from tests.conftest import digests, dvc, mlops

pytestmark = pytest.mark.integration


def ran(log: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


def report(project: Path) -> dict:
    return json.loads((project / "reports/monitor/report.json").read_text())


def history(project: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((project / "reports/monitor/history.csv").read_text())))


def simulated(project: Path) -> dict:
    return json.loads((project / "data/simulated/scenarios.json").read_text())


def window_file(project: Path, scenario: str) -> Path:
    (wid,) = [w for w, rec in simulated(project)["windows"].items() if rec["scenario"] == scenario]
    return project / "data/simulated" / f"{wid}.parquet"


def production_window(project: Path, scenario: str, start: str, rows: int | None = None) -> Path:
    """A simulated window's traffic replayed later as production traffic."""
    frame = pd.read_parquet(window_file(project, scenario)).iloc[:rows]
    frame[TIME] = pd.Timestamp(start) + pd.to_timedelta(range(0, 60 * len(frame), 60), unit="s")
    frame[REQUEST_ID] = [f"prod-{start[:10]}-{i}" for i in range(len(frame))]
    return write_window(frame, project / "data/production").path


def test_monitoring_finds_exactly_what_each_scenario_injected(template_project: Path) -> None:
    sim, rows = simulated(template_project), {r["window"]: r for r in history(template_project)}
    assert set(rows) == set(sim["windows"])  # one monitoring window per simulated scenario
    found = {rec["scenario"]: (rows[wid], rec["injected"]) for wid, rec in sim["windows"].items()}

    clean, _ = found["clean"]
    assert (clean["status"], clean["violations"], clean["drifted"]) == ("ok", "0", "")

    shifted, injected = found["shifted_means"]
    assert shifted["status"] == "breach" and "dataset_drift" in shifted["checks"]
    assert shifted["drifted"].split(";") == injected["shift"]["columns"]  # all, and only, those

    missing, injected = found["missing_column"]
    assert missing["checks"] == "null_share"
    assert missing["null_share_alerts"].split(";") == injected["missing"]["columns"]
    assert missing["drifted"] == ""

    noisy, _ = found["label_noise"]
    # no absolute floor by default (the selection's floors are relative to a trivial
    # baseline, conf/task/): the drop against the bundle's test metrics catches the noise
    assert noisy["checks"] == "performance_drop"
    assert float(noisy["accuracy"]) < float(clean["accuracy"]) - 0.2
    assert noisy["drifted"] == "" and noisy["prediction_drifted"] == "0"

    # breast_cancer has no categorical (or low-cardinality) feature: category_mix is skipped
    assert "category_mix" in sim["skipped"] and "category_mix" not in found
    summary = mlops("summary", cwd=template_project).stdout
    assert "4 window(s), 3 breaching, 1 ok" in summary
    assert re.search(r"missing_column +breach: null_share \w+", summary)


def test_performance_counts_only_rows_whose_label_arrived(template_project: Path) -> None:
    newest = report(template_project)["newest"]
    frame = pd.read_parquet(template_project / "data/simulated" / f"{newest['id']}.parquet")
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


def test_a_new_production_window_reruns_monitor_and_upserts_one_history_row(
    project: Path,
) -> None:
    old = (project / "reports/monitor/history.csv").read_text().splitlines()
    path = production_window(project, "clean", "2026-02-01T00:00:00+00:00")
    dvc("add", str(path.relative_to(project)), cwd=project)  # how windows are tracked
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
    shifted = next(r for r in history(project) if r["scenario"] == "shifted_means")
    assert "dataset_drift" not in shifted["checks"]  # 60% of columns < 70%
    assert shifted["status"] == "breach"  # its predictions and accuracy still moved


def test_fail_on_breach_exit_codes(project: Path) -> None:
    assert mlops("monitor", "--check", cwd=project).returncode == 0
    checked = mlops("monitor", "--check", "--fail-on-breach", cwd=project, check=False)
    assert checked.returncode == 1 and "BREACH" in checked.stdout  # the newest: label noise

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


def test_dvc_tracks_the_monitor_outputs(template_project: Path) -> None:
    shown = json.loads(dvc("metrics", "show", "--json", cwd=template_project).stdout)
    (revision,) = shown.values()
    newest = revision["data"]["reports/monitor/metrics.json"]["data"]["newest"]
    assert newest["breach"] is True
    plots = json.loads(dvc("plots", "show", "--json", cwd=template_project).stdout)
    assert "errors" not in plots and "reports/monitor/history.csv" in plots["data"]
