"""The one JSON-Schema error renderer (`pipeline.validation.render_schema_error`, reached through
`document_issues`): every violation becomes an Issue naming the file that set the key, the key
path, what was expected and the bad value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.validation import document_issues, schema_issues

ROOT = Path(__file__).resolve().parents[1]
MONITOR = yaml.safe_load((ROOT / "params.yaml").read_text())["monitor"]


def _located(key: str) -> str:
    return f"conf/monitor/default.yaml<{key}>"


def _monitor(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MONITOR)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = doc
        for name in parents:
            node = node[name]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return doc


@pytest.mark.parametrize(
    ("changes", "key", "message", "value"),
    [
        ({"drift__mode": "fast"}, "drift.mode", "expected one of: 'exact', 'sketch'", "fast"),
        ({"windows__rows": "many"}, "windows.rows", "expected a value of type integer", "many"),
        ({"windows__rows": 0}, "windows.rows", "expected a number >= 1", 0),
        ({"drift__drift_share": 0}, "drift.drift_share", "expected a number > 0", 0),
        ({"null_share__max_increase": 2}, "null_share.max_increase", "expected a number <= 1", 2),
        (
            {"windows__span": "1d\n"},  # a pattern matches the whole value, newline included
            "windows.span",
            "expected a string matching ^[1-9][0-9]*(s|min|h|d|w)$",
            "1d\n",
        ),
        (
            {"windows__typo": 1},
            "windows.typo",
            "unknown key; expected one of: by, min_rows, rows, span",
            None,
        ),
        # a missing key has no file of its own: the file that set its parent is named
        ({"windows__by": KeyError}, "windows.by", "required key is missing", None),
        (
            {"performance__baseline": {"accuracy": "lots"}},  # anyOf: its x-expected sentence
            "performance.baseline.accuracy",
            "expected a number (absolute, in the metric's units), {absolute: x} or "
            "{relative: x} with x >= 0 (relative: at most 1)",
            "lots",
        ),
        (
            {"performance__baseline": {"accuracy": {"relative": -1}}},  # the branch of its type
            "performance.baseline.accuracy.relative",
            "expected a number >= 0",
            -1,
        ),
    ],
)
def test_each_violation_names_file_key_expectation_and_value(
    changes: dict[str, Any], key: str, message: str, value: Any
) -> None:
    (issue,) = document_issues("monitor", _monitor(**changes), _located)
    where = key.rsplit(".", 1)[0] if message == "required key is missing" else key
    assert (issue.source, issue.key, issue.message, issue.value) == (
        _located(where),
        key,
        message,
        value,
    )


def test_every_violation_is_reported_at_once_in_a_stable_order() -> None:
    """Ordered by where the schema found them: an unknown key is found on its parent."""
    doc = _monitor(drift__mode="fast", windows__rows=0, windows__typo=1)
    assert [i.key for i in document_issues("monitor", doc, _located)] == [
        "drift.mode",
        "windows.typo",
        "windows.rows",
    ]
    assert document_issues("monitor", MONITOR, _located) == []


def test_the_config_schema_renders_nested_sections_with_their_full_key() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitor"]["drift"]["mode"] = "fast"
    params["monitor"]["windows"]["rows"] = 0
    issues = schema_issues(params, lambda key: "params.yaml", skip={"monitor.windows"})
    assert [(i.source, i.key, i.message) for i in issues] == [
        ("params.yaml", "monitor.drift.mode", "expected one of: 'exact', 'sketch'")
    ]
