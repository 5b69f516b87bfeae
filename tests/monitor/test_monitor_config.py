"""conf/monitor and conf/simulate: the committed files compose and validate; every mistake is
reported at once, with its key and the file that set it."""

from __future__ import annotations

import pytest

from pipeline import config
from pipeline.monitor.drift import METHODS, method_names
from pipeline.monitor.simulate import SimulateSettings
from pipeline.params import MonitorSettings
from pipeline.validation import schema, validate_params
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def composed() -> config.Composition:
    return config.compose(ROOT)


def issues_for(*overrides: str) -> list:
    composed = config.compose(ROOT, list(overrides))
    return validate_params(
        composed.data, composed.locate, root=ROOT, missing=composed.missing, hyperparameters=False
    )


def test_committed_config_builds_typed_settings(composed: config.Composition) -> None:
    data = composed.data
    assert validate_params(data, composed.locate, root=ROOT, hyperparameters=False) == []
    monitor = MonitorSettings.from_params(data)
    assert monitor.target == "local" and monitor.task == "classification"
    assert monitor.performance.floors == data["selection"]["floors"]  # one source of truth
    sim = SimulateSettings.from_params(data["simulate"])
    assert sim.rows == monitor.windows.rows  # one scenario, one monitoring window
    assert sim.seed == data["project"]["seed"]
    names = [s.name for s in sim.scenarios]
    assert names[0] == "clean" and {"shifted_means", "missing_column", "label_noise"} <= set(names)


def test_every_mistake_is_reported_at_once_with_its_file() -> None:
    issues = issues_for(
        "monitor.target=nowhere",
        "+monitor.performance.floors.roc_auc=0.9",
        "+monitor.performance.max_drop_by_metric.rmse=1",
        "monitor.prediction.method=ks",
        "simulate.scenarios.shifted_means.shift.columns=[nope]",
        "simulate.start=the-first-of-may",
    )
    by_key = {i.key: i for i in issues}
    assert set(by_key) == {
        "maintain.target",  # ${monitor.target}: the maintained target follows the monitored one
        "monitor.target",
        "monitor.performance.floors.roc_auc",
        "monitor.performance.max_drop_by_metric.rmse",
        "monitor.prediction.method",
        "simulate.scenarios.shifted_means.shift.columns",
        "simulate.start",
    }
    assert "needs predicted scores" in by_key["monitor.performance.floors.roc_auc"].message
    assert (
        "not a classification metric"
        in by_key["monitor.performance.max_drop_by_metric.rmse"].message
    )
    assert "categorical" in by_key["monitor.prediction.method"].message
    assert by_key["monitor.target"].value == "nowhere"


def test_schema_errors_name_the_key() -> None:
    issues = issues_for(
        "monitor.windows.by=days",
        "monitor.windows.rows=0",
        "monitor.windows.span=1day",
        "monitor.performance.max_drop=-1",
        "simulate.scenarios.label_noise.label_noise.share=2",
        "+simulate.scenarios.clean.typo=1",
    )
    keys = {i.key for i in issues}
    assert {
        "monitor.windows.by",
        "monitor.windows.rows",
        "monitor.windows.span",
        "monitor.performance.max_drop",
        "simulate.scenarios.label_noise.label_noise.share",
        "simulate.scenarios.clean.typo",
    } <= keys
    located = {i.key: i.source for i in issues}
    assert located["monitor.windows.by"] == "override 'monitor.windows.by=days'"


def test_regression_composes_with_the_same_monitor_defaults() -> None:
    assert issues_for("dataset=diabetes") == []
    composed = config.compose(ROOT, ["dataset=diabetes"])
    floors = MonitorSettings.from_params(composed.data).performance.floors
    assert floors == composed.data["selection"]["floors"] == {}  # baseline-relative by default


def test_method_lists_in_the_schema_match_the_registry() -> None:
    defs = schema("monitor")["$defs"]
    for kind in ("numeric", "categorical"):
        expected = {
            name
            for name in method_names()
            if name == "auto"
            or kind
            in METHODS[
                {"energy_distance": "ed", "tvd": "TVD", "cvm": "cramer_von_mises"}.get(name, name)
            ].column_types
        }
        assert set(defs[f"{kind}_method"]["enum"]) == expected
