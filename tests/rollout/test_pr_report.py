"""The pull-request comment shows a rollout step: where the rollout was and is, and the
analysis behind the step with its evidence; a pull request without a rollout shows nothing."""

from __future__ import annotations

import json
from typing import Any

from pipeline.params import AnalysisSpec
from pipeline.pr_report import render, rollout_section
from pipeline.release_record import check_record, rollout_stepped
from pipeline.rollout.analysis import analyse
from tests.rollout.helpers import CANDIDATE, rollout_record
from tests.rollout.test_analysis import SPEC, _canary

PARAMS = "deploy:\n  targets:\n    local: {kind: service}\n"


def _reader(files: dict[str, Any]) -> Any:
    def read(path: str) -> str | None:
        value = files.get(path)
        return value if value is None or isinstance(value, str) else json.dumps(value)

    return read


def test_a_rollout_step_is_shown_with_its_evidence() -> None:
    start = rollout_record()
    record = check_record(start, "deploy/local.json", "local")
    report = analyse(_canary(60), {}, record, SPEC, "classification")
    stepped = rollout_stepped(record, "analysis", "advance")
    base = _reader({"params.yaml": PARAMS, "deploy/local.json": start})
    head = _reader(
        {"params.yaml": PARAMS, "deploy/local.json": stepped, "reports/rollout/local.json": report}
    )
    text = "\n".join(rollout_section(base, head))
    assert "### Rollouts" in text
    assert (
        f"canary of {CANDIDATE}: step 1/2, weight 0.1 → canary of {CANDIDATE}: step 2/2, weight 0.5"
    ) in text
    assert "Analysis of step 1/2 (canary, 60 candidate requests, hold reached): **advance**" in text
    assert "| error_rate | 0 | <= 0.01 | [0.0, " in text and "errors 0, scored 60" in text
    assert "### Rollouts" in render(base, head)


def test_no_rollout_no_section() -> None:
    files = _reader(
        {"params.yaml": PARAMS, "deploy/local.json": {"target": "local", "release": None}}
    )
    assert rollout_section(files, files) == []
    assert isinstance(SPEC, AnalysisSpec)
