"""DriftSettings from conf/monitor/default.yaml and its JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from pipeline.errors import ConfigError
from pipeline.monitor.drift import DriftSettings, method_names, monitor_schema

ROOT = Path(__file__).resolve().parents[2]


def _default() -> dict:
    return yaml.safe_load((ROOT / "conf" / "monitor" / "default.yaml").read_text())


def test_committed_default_is_valid_and_equals_the_code_defaults() -> None:
    Draft202012Validator.check_schema(monitor_schema())
    assert DriftSettings.from_config(_default()) == DriftSettings()


def test_schema_names_exactly_the_registered_methods() -> None:
    assert sorted(monitor_schema()["$defs"]["method"]["enum"]) == sorted(method_names())


def test_every_problem_is_reported_at_once_with_its_key() -> None:
    config = _default()
    config["drift"].update(
        mode="fast",
        drift_share=0,
        numeric={"method": "chisquare"},
        categorical={"method": "psi", "threshold": -1},
        columns={"age": {"method": "anderson", "typo": 1}},
    )
    config["null_share"]["max_increase"] = 2
    with pytest.raises(ConfigError) as caught:
        DriftSettings.from_config(config, source="conf/monitor/default.yaml")
    keys = {issue.key for issue in caught.value.issues}
    assert keys == {
        "monitor.drift.mode",
        "monitor.drift.drift_share",
        "monitor.drift.numeric.method",
        "monitor.drift.categorical.threshold",
        "monitor.drift.columns.age.typo",
        "monitor.null_share.max_increase",
    }
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
