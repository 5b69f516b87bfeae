"""The declared delivery strategy (`deploy.targets.<name>.strategy`): what composes, what is
refused (with the key and the file or override named), and the typed view."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.params import StrategySpec
from pipeline.validation import validate_params

ROOT = Path(__file__).resolve().parents[2]
BASE = "deploy.targets.local.strategy"
CANARY = f"{BASE}.kind=canary"
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
SHADOW = [f"{BASE}.kind=shadow", f"{BASE}.steps=[{{weight: 0, hold: {{seconds: 60}}}}]"]


@functools.cache
def _composed() -> config.Composition:
    return config.compose(ROOT, [f"{BASE}.kind=shadow"])


def _issues(*overrides: str) -> list[tuple[str, str, str]]:
    """Problems of params.yaml with `overrides` applied (`a.b=yaml`, `~a.b` deletes, `+a.b=`
    adds), validated as `mlops compose` validates (Hydra's composition itself is exercised once,
    by the test that names the file)."""
    data = copy.deepcopy(PARAMS)
    for override in overrides:
        path, _, value = override.lstrip("~+").partition("=")
        *parents, last = path.split(".")
        node = data
        for name in parents:
            node = node[name]
        if override.startswith("~"):
            del node[last]
        else:
            node[last] = yaml.safe_load(value)
    found = validate_params(data, lambda key: "params.yaml", root=ROOT, hyperparameters=False)
    return [(i.source, i.key, i.message) for i in found]


def test_the_default_is_direct_and_valid() -> None:
    params = config.load_config(ROOT, hyperparameters=False)
    strategy = params.deploy.target("local").strategy
    assert strategy is not None and strategy.kind == "direct" and not strategy.progressive
    assert params.deploy.target("batch").strategy is None


def test_a_declared_canary_and_shadow_compose() -> None:
    assert _issues(CANARY) == []
    assert _issues(*SHADOW, f"{BASE}.key=mean_radius") == []


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        ([f"{BASE}.kind=blue_green"], f"{BASE}.kind", "expected one of: 'direct', 'shadow'"),
        (
            [
                CANARY,
                f"{BASE}.steps=[{{weight: 0.5, hold: {{requests: 9}}}}, "
                f"{{weight: 0.2, hold: {{requests: 9}}}}]",
            ],
            f"{BASE}.steps.1.weight",
            "canary weights must rise step by step",
        ),
        ([CANARY, f"{BASE}.steps=[]"], f"{BASE}.steps", "expected at least 1 items"),
        (
            [CANARY, f"{BASE}.steps=[{{weight: 0, hold: {{requests: 9}}}}]"],
            f"{BASE}.steps.0.weight",
            "expected a number > 0",
        ),
        ([f"{BASE}.kind=shadow"], f"{BASE}.steps", "expected at most 1 items"),
        ([f"{BASE}.steps=[{{weight: 0.5, hold: {{}}}}]"], f"{BASE}.steps.0.hold", "at least 1"),
        (
            [f"{BASE}.steps=[{{weight: 0.5, hold: {{minutes: 3}}}}]"],
            f"{BASE}.steps.0.hold.minutes",
            "unknown key; expected one of: requests, seconds",
        ),
        ([f"{BASE}.key=nope"], f"{BASE}.key", "not a field the records carry"),
        ([f"{BASE}.key=target"], f"{BASE}.key", "not a field the records carry"),
        (
            [f"{BASE}.analysis.max_error_rate=2"],
            f"{BASE}.analysis.max_error_rate",
            "expected a number <= 1",
        ),
        ([f"~{BASE}"], BASE, "required key is missing"),
        (
            [f"{BASE}.propose=merge"],
            f"{BASE}.propose",
            "expected one of: 'pull_request', 'commit'",
        ),
        ([f"~{BASE}.propose"], f"{BASE}.propose", "required key is missing"),
        (
            ["+deploy.targets.batch.strategy={kind: direct}"],
            "deploy.targets.batch.strategy",
            "this value is not allowed here",
        ),
    ],
)
def test_a_bad_strategy_is_refused_with_its_key(
    overrides: list[str], key: str, message: str
) -> None:
    issues = _issues(*overrides)
    assert any(k == key and message in m for _, k, m in issues), issues


def test_the_file_that_declares_a_bad_value_is_named() -> None:
    composed = _composed()
    found = validate_params(composed.data, composed.locate, root=ROOT, hyperparameters=False)
    issues = [(i.source, i.key, i.message) for i in found]
    assert ("conf/deploy/local.yaml", f"{BASE}.steps", "expected at most 1 items") in issues


def test_the_typed_strategy_reads_every_declared_value() -> None:
    strategy = {**PARAMS["deploy"]["targets"]["local"]["strategy"], "kind": "canary"}
    spec = StrategySpec.from_params({**strategy, "key": "mean_radius"})
    assert spec.kind == "canary" and spec.key == "mean_radius"
    assert [s.to_dict() for s in spec.steps] == [
        {"weight": 0.1, "hold": {"requests": 200}},
        {"weight": 0.5, "hold": {"requests": 1000}},
    ]
    assert spec.analysis.max_error_rate == 0.01 and spec.analysis.min_labelled == 50
    assert spec.propose == "pull_request"
    assert StrategySpec.from_params({**strategy, "propose": "commit"}).propose == "commit"
