"""DriftSettings from conf/monitor/default.yaml and its JSON Schema.

The monitor section is checked against its JSON Schema once, with the whole of params.yaml, by
`pipeline.validation` (`load_params`); `DriftSettings.from_config` then refuses only what a
schema cannot judge, and never re-runs the schema."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from pipeline.errors import ConfigError
from pipeline.monitor.drift import DriftSettings, method_names
from pipeline.validation import schema, validate_params

ROOT = Path(__file__).resolve().parents[2]


def _default() -> dict:
    return yaml.safe_load((ROOT / "conf" / "monitor" / "default.yaml").read_text())


def _params_with(monitor: dict[str, Any]) -> dict[str, Any]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitor"] = {**params["monitor"], **copy.deepcopy(monitor)}
    return params


def test_committed_default_is_valid_and_equals_the_code_defaults() -> None:
    Draft202012Validator.check_schema(schema("monitor"))
    assert DriftSettings.from_config(_default()) == DriftSettings()


def test_schema_names_exactly_the_registered_methods() -> None:
    assert sorted(schema("monitor")["$defs"]["method"]["enum"]) == sorted(method_names())


def test_every_schema_problem_is_reported_at_once_with_its_key_where_params_load() -> None:
    config = _default()
    config["drift"].update(
        mode="fast",
        drift_share=0,
        categorical={"method": "psi", "threshold": -1},
        columns={"age": {"method": "anderson", "typo": 1}},
    )
    config["null_share"]["max_increase"] = 2
    params = _params_with({"drift": config["drift"], "null_share": config["null_share"]})
    issues = validate_params(params, lambda _key: "params.yaml", root=ROOT, hyperparameters=False)
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
    assert all(i.source == "params.yaml" for i in issues)


def test_choices_a_schema_cannot_judge_are_refused_as_the_settings_are_built() -> None:
    config = _default()
    config["drift"].update(numeric={"method": "chisquare"}, categorical={"method": "ks"})
    # the schema allows any registered method for either kind: only the registry knows better
    params = _params_with({"drift": config["drift"]})
    assert (
        validate_params(params, lambda _key: "params.yaml", root=ROOT, hyperparameters=False) == []
    )
    with pytest.raises(ConfigError, match="monitor configuration refused") as caught:
        DriftSettings.from_config(config, source="conf/monitor/default.yaml")
    assert [(i.key, i.message) for i in caught.value.issues] == [
        (
            "monitor.drift.numeric.method",
            "method 'chisquare' does not apply to numeric columns (it takes categorical)",
        ),
        (
            "monitor.drift.categorical.method",
            "method 'ks' does not apply to categorical columns (it takes numeric)",
        ),
    ]
    assert all(i.source == "conf/monitor/default.yaml" for i in caught.value.issues)


def test_sketch_mode_refuses_methods_that_need_every_value() -> None:
    config = _default()
    config["drift"].update(mode="sketch", numeric={"method": "mannw", "threshold": 2})
    with pytest.raises(ConfigError) as caught:
        DriftSettings.from_config(config)
    assert [i.key for i in caught.value.issues] == [
        "monitor.drift.numeric.method",
        "monitor.drift.numeric.threshold",
    ]


def test_overrides_and_foreign_keys() -> None:
    config = _default()
    config["drift"]["columns"] = {"age": {"method": "psi", "threshold": 0.2}}
    config["windows"] = {"size": 7}  # another reader's key: not ours to judge
    settings = DriftSettings.from_config(config)
    assert settings.choice_for("age", "numeric") == ("psi", 0.2, 0.1)
    assert settings.choice_for("other", "categorical") == ("auto", None, 0.1)
