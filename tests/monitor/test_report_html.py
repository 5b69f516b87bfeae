"""reports/monitor/report.html: one self-contained file that renders in a real browser with zero
network requests and no console errors; and the other report files."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from pipeline.monitor.engine import monitor
from pipeline.monitor.windowing import windows_of
from pipeline.params import WindowSpec
from tests.monitor import browser
from tests.monitor.fakes import context, traffic

needs_chromium = pytest.mark.skipif(
    not browser.available(),
    reason=f"Debian's chromium is not installed ({browser.CHROMIUM}): "
    "`apt-get install -y chromium` (.ci/run installs it in CI)",
)


def build(tmp_path: Path) -> tuple[Path, dict, list]:
    ctx = context(tmp_path)
    frames = [  # one window a day: too few rows, clean traffic, a shifted column (the newest)
        traffic(20, seed=7, start="2025-03-01T00:00:00+00:00"),
        traffic(200, seed=5, start="2025-03-02T00:00:00+00:00"),
        traffic(200, seed=6, start="2025-03-03T00:00:00+00:00", shift=1.5),
    ]
    spec = WindowSpec(by="time", rows=1, span="1d", min_rows=50)
    windows = windows_of("production", frames, ["a", "b", "c"], spec)
    out = tmp_path / "reports"
    document, results = monitor(windows, ctx, out)
    return out, document, results


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list]:
    return build(tmp_path_factory.mktemp("report"))


def test_report_html_refers_to_nothing_outside_itself(report: tuple[Path, dict, list]) -> None:
    html = (report[0] / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    lowered = html.lower()
    for forbidden in ("<script", "src=", "url(", "@import", "http://", "https://", "<iframe"):
        assert forbidden not in lowered, forbidden
    assert re.findall(r"href=['\"]([^'\"]*)", html) == ["data:,"]  # the empty favicon only
    assert html.count("<svg") >= 1 + 2 + 1  # trend, two columns, predictions


def test_reports_are_byte_identical_when_run_again(tmp_path: Path) -> None:
    first, _, _ = build(tmp_path / "one")
    second, _, _ = build(tmp_path / "two")
    for name in ("report.html", "report.json", "metrics.json", "history.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_report_json_metrics_and_history_agree(report: tuple[Path, dict, list]) -> None:
    out, _, results = report
    assert [r["status"] for r in results] == ["insufficient_data", "ok", "breach"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["newest"]["id"] == results[-1]["id"] == saved["summary"]["newest"]
    assert saved["summary"]["by_status"] == {
        "ok": 1,
        "breach": 1,
        "insufficient_data": 1,
        "not_judged": 0,
    }
    assert saved["simulated"]["windows"] == []
    assert saved["windows"][2]["violated"]["dataset_drift"] == ["dataset"]
    assert saved["monitored"]["bundle"]["path"] == "models/bundle"  # relative: no machine paths
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["breaching_windows"] == 1 and metrics["newest"]["breach"] is True
    assert metrics["newest"]["drifted_columns"] == 1
    rows = list(csv.DictReader(io.StringIO((out / "history.csv").read_text())))
    assert [r["window"] for r in rows] == [r["id"] for r in results]
    assert rows[2]["drifted"] == "x" and rows[2]["status"] == "breach"
    assert rows[1]["performance"] == rows[1]["accuracy"] != ""
    assert rows[0]["status"] == "insufficient_data" and rows[0]["drift_share"] == ""


@needs_chromium
def test_report_renders_in_chromium_with_no_request_and_no_console_error(
    report: tuple[Path, dict, list], tmp_path: Path
) -> None:
    page = report[0] / "report.html"
    loaded = browser.load(page, tmp_path)
    assert loaded.served == ["/report.html"]  # one request: the page itself
    assert loaded.page_requests == [loaded_url(loaded)]
    assert loaded.console == []
    assert 'id="verdict"' in loaded.dom and 'id="trend"' in loaded.dom
    assert 'id="checks"' in loaded.dom and loaded.dom.count("<figure") == 3


@needs_chromium
def test_a_report_with_simulated_scenarios_renders_them_apart(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    frames = [
        ("production", traffic(200, seed=5, start="2025-03-02T00:00:00+00:00")),
        ("simulated", traffic(200, seed=6, start="2025-03-03T00:00:00+00:00", shift=1.5)),
    ]
    spec = WindowSpec(by="time", rows=1, span="1d", min_rows=50)
    windows = [w for source, f in frames for w in windows_of(source, [f], [source], spec)]
    out = tmp_path / "reports"
    monitor(windows, ctx, out)
    loaded = browser.load(out / "report.html", tmp_path)
    assert loaded.served == ["/report.html"] and loaded.console == []
    ids = re.findall(r'\bid="([^"]+)"', loaded.dom)
    assert len(ids) == len(set(ids))  # the simulated section's ids are its own
    assert {"verdict", "trend", "sim-verdict", "sim-trend", "simulated"} <= set(ids)
    assert loaded.dom.count("<figure") == 6  # two columns and predictions, per group


def loaded_url(loaded: browser.PageLoad) -> str:
    (url,) = [u for u in loaded.page_requests if u.endswith("/report.html")]
    return url


@needs_chromium
def test_the_browser_check_sees_requests_and_console_errors(tmp_path: Path) -> None:
    """The check above can fail: a page with a font, an image and a script error is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head>"
        "<link rel='stylesheet' href='https://fonts.example.invalid/f.css'></head>"
        "<body><img src='pixel.png'><script>console.error('boom'); missing();</script>"
        "</body></html>"
    )
    loaded = browser.load(page, tmp_path)
    # (a page without an icon link may also ask for /favicon.ico: hence the report's data: icon)
    assert {"/bad.html", "/pixel.png"} <= set(loaded.served)
    assert set(loaded.served) <= {"/bad.html", "/pixel.png", "/favicon.ico"}
    assert "https://fonts.example.invalid/f.css" in loaded.page_requests
    assert any("boom" in m for m in loaded.console)
    assert any("missing is not defined" in m for m in loaded.console)


def test_no_windows_yet_still_writes_every_report(tmp_path: Path) -> None:
    document, results = monitor([], context(tmp_path), tmp_path / "out")
    assert results == [] and document["newest"] is None
    assert json.loads((tmp_path / "out/metrics.json").read_text()) == {
        "windows": 0,
        "breaching_windows": 0,
        "insufficient_windows": 0,
        "not_judged_windows": 0,
    }
    assert (tmp_path / "out/history.csv").read_text().count("\n") == 1  # the header
    assert "No production windows yet" in (tmp_path / "out/report.html").read_text()
