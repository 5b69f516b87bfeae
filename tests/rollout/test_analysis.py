"""The rollout analysis is a pure function of logged entries: a good candidate advances and is
promoted after its last step, a bad one (errors on a slice of inputs, a model that disagrees, a
worse one on labelled rows) is aborted with the evidence, and nothing is decided before the
hold."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pipeline.params import AnalysisSpec
from pipeline.release_record import check_record, rollout_stepped
from pipeline.rollout.analysis import analyse, prediction_drift, summary, wilson
from tests.rollout.helpers import CANDIDATE, STABLE, rollout_record

SPEC = AnalysisSpec(
    confidence=0.95,
    max_error_rate=0.01,
    max_latency_ratio=2.0,
    min_agreement=0.9,
    agreement_tolerance=0.0,
    max_prediction_drift=0.2,
    max_metric_drop=0.05,
    min_labelled=30,
)


def _record(strategy: str = "canary", step: int = 0) -> Any:
    record = check_record(rollout_record(strategy), "deploy/local.json", "local")
    for _ in range(step):
        record = check_record(rollout_stepped(record, "hand", None), "deploy/local.json", "local")
    return record


def _entry(i: int, arm: str, prediction: str | None, *, step: int = 0, **extra: Any) -> dict:
    entry: dict[str, Any] = {
        "request_id": f"{arm[0]}{i:031d}",
        "time": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000000Z",
        "release": CANDIDATE if arm == "candidate" else STABLE,
        "rollout": {"candidate": CANDIDATE, "step": step, "arm": arm},
        "model_ms": 1.0,
    }
    if prediction is None:
        entry["error"] = "ValueError: boom"
    else:
        entry["prediction"] = prediction
    return entry | extra


def _canary(n: int, *, candidate: Any = None, step: int = 0, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = "yes" if rng.random() < 0.3 else "no"
        out.append(_entry(i, "stable", label, step=step))
        out.append(
            _entry(i, "candidate", label if candidate is None else candidate(i, label), step=step)
        )
    return out


def test_a_good_canary_advances_then_is_promoted_after_its_last_step() -> None:
    report = analyse(_canary(60), {}, _record(), SPEC, "classification")
    assert report["verdict"] == "advance" and report["reasons"] == []
    assert report["hold"] == {
        "declared": {"requests": 50},
        "candidate_requests": 60,
        "span_seconds": 59.0,
        "reached": True,
    }
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["error_rate"]["value"] == 0.0 and checks["error_rate"]["passed"]
    assert checks["error_rate"]["interval"][0] == 0.0
    assert checks["prediction_drift"]["value"] == 0.0
    last = analyse(_canary(60, step=1), {}, _record(step=1), SPEC, "classification")
    assert last["verdict"] == "promote"


def test_nothing_is_decided_before_the_hold() -> None:
    report = analyse(_canary(20), {}, _record(), SPEC, "classification")
    assert report["verdict"] == "wait"
    assert report["reasons"] == ["holding: 20 of 50 candidate requests"]


def test_a_candidate_that_errors_on_a_slice_is_aborted_before_its_hold_ends() -> None:
    def breaks(i: int, label: str) -> str | None:
        return None if i % 4 == 0 else label  # one request in four fails

    report = analyse(_canary(20, candidate=breaks), {}, _record(), SPEC, "classification")
    assert report["verdict"] == "abort" and not report["hold"]["reached"]
    error = report["checks"][0]
    assert error["counts"] == {"errors": 5, "scored": 15} and error["interval"][0] > 0.01
    assert report["reasons"][0].startswith("error_rate 0.25 (interval ")


def test_a_shadow_that_disagrees_is_aborted_with_the_evidence() -> None:
    rng = random.Random(1)
    entries = []
    for i in range(80):
        label = "yes" if rng.random() < 0.5 else "no"
        shuffled = "yes" if rng.random() < 0.5 else "no"  # trained on shuffled labels
        entries.append(
            _entry(
                i,
                "stable",
                label,
                shadow={"release": CANDIDATE, "prediction": shuffled, "model_ms": 1.0},
            )
        )
    report = analyse(entries, {}, _record("shadow"), SPEC, "classification")
    assert report["verdict"] == "abort"
    agreement = next(c for c in report["checks"] if c["name"] == "agreement")
    assert agreement["passed"] is False and agreement["counts"]["paired"] == 80
    low, high = agreement["interval"]
    assert low < agreement["value"] < high < 0.9
    assert any(r.startswith("agreement ") for r in report["reasons"])
    assert summary(report).startswith("abort at step 1/1 (80 candidate requests)")


def test_labelled_rows_judge_the_metric_drop() -> None:
    entries = _canary(60)
    truth = {e["request_id"]: e["prediction"] for e in entries if e["rollout"]["arm"] == "stable"}
    labels = dict(truth)
    for e in entries:  # the candidate is right on only half of its labelled rows
        if e["rollout"]["arm"] == "candidate":
            i = int(e["request_id"][1:])
            labels[e["request_id"]] = e["prediction"] if i % 2 else "other"
    report = analyse(entries, labels, _record(), SPEC, "classification")
    check = next(c for c in report["checks"] if c["name"] == "labelled_accuracy_drop")
    assert (check["stable"], check["candidate"], check["passed"]) == (1.0, 0.5, False)
    assert report["verdict"] == "abort"
    few = analyse(
        entries, {k: labels[k] for k in list(labels)[:10]}, _record(), SPEC, "classification"
    )
    check = next(c for c in few["checks"] if c["name"] == "labelled_accuracy_drop")
    assert check["passed"] is None and check["needs"] == 30  # not judged on too few rows


def test_other_steps_and_rollouts_and_repeated_lines_are_left_out() -> None:
    entries = _canary(60)
    noise = _canary(60, candidate=lambda i, label: None, step=1)  # another step's failures
    other = [e | {"rollout": {**e["rollout"], "candidate": "r0009-" + "c" * 16}} for e in noise]
    report = analyse(entries + entries[:10] + noise + other, {}, _record(), SPEC, "classification")
    assert report["verdict"] == "advance" and report["hold"]["candidate_requests"] == 60


def test_the_same_log_gives_the_same_report_byte_for_byte() -> None:
    entries = _canary(70, candidate=lambda i, label: "yes" if i % 3 == 0 else label)
    first = analyse(entries, {}, _record(), SPEC, "classification")
    again = analyse(list(reversed(entries)), {}, _record(), SPEC, "classification")
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_latency_and_regression_drift() -> None:
    slow = [
        e | {"model_ms": 5.0 if e["rollout"]["arm"] == "candidate" else 1.0} for e in _canary(60)
    ]
    report = analyse(slow, {}, _record(), SPEC, "classification")
    latency = next(c for c in report["checks"] if c["name"] == "latency_p95_ratio")
    assert latency["value"] == 5.0 and latency["passed"] is False
    assert report["verdict"] == "abort"
    same, method = prediction_drift([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "regression")
    shifted, _ = prediction_drift([1.0, 2.0, 3.0], [11.0, 12.0, 13.0], "regression")
    assert method == "wasserstein_normed" and same == 0.0 and shifted > 1


@pytest.mark.parametrize(("k", "n"), [(0, 10), (5, 10), (10, 10)])
def test_wilson_intervals_contain_the_estimate(k: int, n: int) -> None:
    low, high = wilson(k, n, 0.95) or (None, None)
    assert low is not None and high is not None and 0 <= low <= k / n <= high <= 1
    assert wilson(0, 0, 0.95) is None


def test_regression_agreement_needs_a_declared_tolerance() -> None:
    entries = [
        _entry(
            i,
            "stable",
            float(i),
            shadow={"release": CANDIDATE, "prediction": i + 0.01, "model_ms": 1.0},
        )
        for i in range(60)
    ]
    report = analyse(entries, {}, _record("shadow"), SPEC, "regression")
    agreement = next(c for c in report["checks"] if c["name"] == "agreement")
    assert agreement["passed"] is None and "agreement_tolerance" in agreement["note"]
    assert report["verdict"] == "promote"
    from dataclasses import replace

    report = analyse(
        entries, {}, _record("shadow"), replace(SPEC, agreement_tolerance=0.1), "regression"
    )
    agreement = next(c for c in report["checks"] if c["name"] == "agreement")
    assert (agreement["value"], agreement["passed"]) == (1.0, True)
