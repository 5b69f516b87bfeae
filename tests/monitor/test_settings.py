"""DriftSettings from conf/monitor/default.yaml and its JSON Schema."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from pipeline import config
from pipeline.errors import ConfigError
from pipeline.monitor.drift import MethodChoice, check_settings, method_names
from pipeline.params import DriftSettings
from pipeline.validation import schema, validate_params
from tests.conftest import ROOT
from tests.monitor.conf import drift_settings, monitor_conf, override


def _drift_part(monitor: dict) -> dict:
    """The keys DriftSettings reads (the rest interpolate other groups: see test_monitor_config)."""
    return {key: monitor[key] for key in ("drift", "null_share")}


def test_committed_default_is_valid_and_declares_every_setting() -> None:
    Draft202012Validator.check_schema(schema("monitor"))
    committed = monitor_conf()
    assert list(Draft202012Validator(schema("monitor")).iter_errors(_drift_part(committed))) == []
    settings = drift_settings()
    assert settings.mode == committed["drift"]["mode"]
    assert settings.sketch.k == committed["drift"]["sketch"]["k"]
    assert settings.null_share_max_increase == committed["null_share"]["max_increase"]
    check_settings(settings)  # the committed choices fit their column types


@pytest.mark.parametrize(
    "path", [("drift", "mode"), ("drift", "sketch", "k"), ("null_share", "max_increase")]
)
def test_a_setting_left_out_is_refused_not_defaulted(path: tuple[str, ...]) -> None:
    committed = monitor_conf()
    section = committed
    for key in path[:-1]:
        section = section[key]
    del section[path[-1]]
    errors = list(Draft202012Validator(schema("monitor")).iter_errors(_drift_part(committed)))
    assert [e.validator for e in errors] == ["required"]
    assert repr(path[-1]) in errors[0].message


def test_schema_names_exactly_the_registered_methods() -> None:
    assert sorted(schema("monitor")["$defs"]["method"]["enum"]) == sorted(method_names())


def test_every_schema_problem_is_reported_at_once_with_its_key() -> None:
    composed = config.compose(
        ROOT,
        [
            "monitor.drift.mode=fast",
            "monitor.drift.drift_share=0",
            "monitor.drift.categorical.threshold=-1",
            "+monitor.drift.columns.age.typo=1",
            "monitor.null_share.max_increase=2",
        ],
    )
    issues = validate_params(composed.data, composed.locate, root=ROOT, hyperparameters=False)
    by_key = {issue.key: issue for issue in issues}
    assert set(by_key) == {
        "monitor.drift.mode",
        "monitor.drift.drift_share",
        "monitor.drift.categorical.threshold",
        "monitor.drift.columns.age.typo",
        "monitor.null_share.max_increase",
    }
    assert by_key["monitor.drift.mode"].message == "expected one of: 'exact', 'sketch'"
    assert by_key["monitor.drift.drift_share"].message == "expected a number > 0"
    assert by_key["monitor.drift.categorical.threshold"].value == -1
    assert by_key["monitor.drift.columns.age.typo"].message == (
        "unknown key; expected one of: method, null_share_max_increase, threshold"
    )
    assert by_key["monitor.null_share.max_increase"].message == "expected a number <= 1"


def test_a_method_unfit_for_its_column_type_is_refused() -> None:
    settings = drift_settings(
        numeric=MethodChoice("chisquare", None), categorical=MethodChoice("psi", 2.0)
    )
    with pytest.raises(ConfigError, match="monitor configuration refused") as caught:
        check_settings(settings)
    assert [i.key for i in caught.value.issues] == ["monitor.drift.numeric.method"]
    assert "does not apply to numeric columns" in caught.value.issues[0].message


def test_sketch_mode_refuses_methods_that_need_every_value() -> None:
    settings = drift_settings(mode="sketch", numeric=MethodChoice("mannw", 2))
    with pytest.raises(ConfigError) as caught:
        check_settings(settings)
    assert [i.key for i in caught.value.issues] == [
        "monitor.drift.numeric.method",
        "monitor.drift.numeric.threshold",
    ]


def test_overrides_inherit_what_they_leave_out() -> None:
    committed = monitor_conf()
    committed["drift"]["columns"] = {"age": {"method": "psi", "threshold": 0.2}}
    settings = DriftSettings.from_params(committed)
    assert settings.columns["age"] == override(method="psi", threshold=0.2)
    assert settings.choice_for("age", "numeric") == ("psi", 0.2, 0.1)
    assert settings.choice_for("other", "categorical") == ("auto", None, 0.1)
