"""Each maintenance policy fires when it should and not otherwise; precedence, cooldown and
"never twice" are properties of the decision, not of the apply step."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.maintain.policy import Settings, decide
from pipeline.params import RollbackSpec

REL = "r0002-aaaaaaaaaaaaaaaa"


def settings(**over: Any) -> Settings:
    base: dict[str, Any] = dict(
        drift_consecutive=3,
        performance=True,
        max_age_days=30.0,
        new_labels=500,
        rollback=None,
        alert_checks=("null_share", "prediction_drift"),
        cooldown_days=7.0,
    )
    base.update(over)
    return Settings(**base)


def window(
    i: int,
    checks: str = "",
    labelled: int = 0,
    status: str | None = None,
    release: str = REL,
    source: str = "production",
) -> dict[str, Any]:
    day = f"2026-01-{i + 1:02d}"
    return {
        "window": f"202601{i + 1:02d}T000000-{i:012x}",
        "source": source,
        "start": f"{day}T00:00:00+00:00",
        "end": f"{day}T23:00:00+00:00",
        "rows": 100,
        "labelled": labelled,
        "release": release,
        "status": status or ("breach" if checks else "ok"),
        "checks": checks,
    }


def run(
    history: list[dict[str, Any]], ledger: list[dict[str, Any]] | None = None, **over: Any
) -> dict[str, Any]:
    comparison = over.pop("comparison", None)
    monitoring = over.pop("monitoring", None)
    line = over.pop("line", None)
    return decide(
        history,
        ledger or [],
        target="local",
        release=REL,
        settings=settings(**over),
        comparison=comparison,
        monitoring=monitoring,
        line=line,
    )


def fired(decision: dict[str, Any]) -> set[str]:
    return {p["policy"] for p in decision["policies"] if p["fired"]}


def test_nothing_to_do_on_healthy_windows() -> None:
    out = run([window(i) for i in range(5)])
    assert out["action"] == "none" and fired(out) == set()
    assert out["as_of"] == "2026-01-05T23:00:00+00:00"


def simulated_report(windows: int, skipped: str | None = None) -> dict[str, Any]:
    """The parts of the monitor's report.json the decision reads to say why nothing counts."""
    return {
        "skipped": None if skipped is None else {"reason": skipped},
        "simulated": {"summary": {"windows": windows}},
    }


def test_no_production_window_no_decision_and_the_reason_says_why() -> None:
    out = run([], monitoring=simulated_report(4))
    assert out["action"] == "none"
    assert out["reason"] == (
        "no production window yet; 4 simulated window(s) are never used for maintenance"
    )
    assert run([])["reason"] == "no production window yet"


def test_simulated_windows_never_count() -> None:
    drifting = [window(i, "dataset_drift", source="simulated") for i in range(3)]
    out = run(drifting, drift_consecutive=1, monitoring=simulated_report(3))
    assert out["action"] == "none" and out["policies"] == []
    assert "3 simulated window(s) are never used" in out["reason"]


def test_windows_monitoring_did_not_judge_do_not_count() -> None:
    history = [window(0, status="not_judged", labelled=600), window(1, status="not_judged")]
    out = run(history, drift_consecutive=1)
    assert out["action"] == "none" and out["policies"] == []
    assert out["reason"].startswith(
        "no production window was judged against the monitored release: 2 window(s)"
    )
    skipped = run(history, monitoring=simulated_report(0, "release r1 has another signature"))
    assert skipped["reason"] == (
        "no production window was judged: monitoring was skipped (release r1 has another signature)"
    )
    # beside judged windows they are left out: their labels are not fed back
    judged = run([*history, window(2, labelled=10)], new_labels=500)
    assert judged["action"] == "none"
    labels = next(p for p in judged["policies"] if p["policy"] == "new_labels")
    assert labels["evidence"] == {"rows": 10, "windows": [window(2)["window"]]}


@pytest.mark.parametrize(
    ("pattern", "retrain"),
    [
        (["dataset_drift"] * 3, True),
        (["", "dataset_drift", "dataset_drift", "dataset_drift"], True),
        (["dataset_drift", "dataset_drift", "", "dataset_drift"], False),  # broken run
        (["dataset_drift"] * 2, False),
    ],
)
def test_drift_k_in_a_row(pattern: list[str], retrain: bool) -> None:
    out = run([window(i, c) for i, c in enumerate(pattern)], new_labels=None)
    assert (out["action"] == "retrain") is retrain
    assert ("drift" in fired(out)) is retrain


def test_insufficient_data_windows_do_not_break_or_count_in_a_run() -> None:
    history = [
        window(0, "dataset_drift"),
        window(1, status="insufficient_data"),
        window(2, "dataset_drift"),
        window(3, "dataset_drift"),
    ]
    assert run(history)["action"] == "retrain"
    assert run(history[:3])["action"] == "none"


def test_performance_floor_retrains_only_on_labelled_windows() -> None:
    assert run([window(0), window(1, "performance_floor", labelled=80)])["action"] == "retrain"
    assert run([window(0, "performance_floor", labelled=0)])["action"] == "none"
    assert (
        run([window(0, "performance_floor", labelled=80), window(1, labelled=80)])["action"]
        == "none"
    )  # the newest labelled window recovered


def test_age_from_the_data_not_the_clock() -> None:
    history = [window(0), window(20)]
    assert run(history, max_age_days=30)["action"] == "none"
    out = run(history, max_age_days=10)
    assert out["action"] == "retrain" and "age" in fired(out)
    other = [window(0, release="r0001-bbbbbbbbbbbbbbbb"), window(20)]
    assert run(other, max_age_days=10)["action"] == "none"  # the live release started later


def test_new_labels_count_only_windows_not_yet_fed_back() -> None:
    history = [window(i, labelled=200) for i in range(3)]
    assert run(history, new_labels=500)["action"] == "retrain"
    ledger = [
        {
            "action": "retrain",
            "target": "local",
            "as_of": "2025-01-01T00:00:00+00:00",
            "decision_id": "x",
            "windows": [history[0]["window"]],
        }
    ]
    out = run(history, ledger, new_labels=500)
    assert out["action"] == "none"
    assert (
        next(p for p in out["policies"] if p["policy"] == "new_labels")["evidence"]["rows"] == 400
    )


def rollback_spec(margin: Any) -> RollbackSpec:
    """The rollback policy on accuracy with `margin` (an absolute number or {relative: x})."""
    return RollbackSpec.from_params(
        {
            "metric": "accuracy",
            "margin": margin,
            "confidence": 0.95,
            "resamples": 500,
            "seed": 0,
            "min_labelled": 30,
        }
    )


def test_rollback_needs_the_interval_beyond_the_margin() -> None:
    spec = rollback_spec(0.02)
    better = {"metric": "accuracy", "estimate": 0.08, "low": 0.04, "high": 0.12}
    unclear = {"metric": "accuracy", "estimate": 0.03, "low": -0.01, "high": 0.07}
    history = [window(0, "performance_floor", labelled=80)]
    out = run(history, rollback=spec, comparison=better)
    assert out["action"] == "rollback"  # rollback outranks the retrain that also fired
    assert fired(out) == {"rollback", "performance"}
    assert run(history, rollback=spec, comparison=unclear)["action"] == "retrain"


def test_rollback_fires_by_the_gates_superiority_rule() -> None:
    """An interval low exactly at the margin is not superior (the gate's `passes`); no
    interval never rolls back."""
    spec = rollback_spec(0.02)
    history = [window(0, labelled=80)]
    edge = {"metric": "accuracy", "estimate": 0.05, "low": 0.02, "high": 0.08}
    for low, action in ((0.02, "none"), (0.0201, "rollback"), (None, "none")):
        out = run(history, rollback=spec, comparison={**edge, "low": low})
        assert out["action"] == action, low


def test_a_relative_rollback_margin_follows_the_live_releases_score() -> None:
    """{relative: 0.05} of a live accuracy of 0.8 is 0.04: an interval low of 0.03 does not
    roll back, 0.05 does; the evidence records the declared and the resolved margin."""
    spec = rollback_spec({"relative": 0.05})
    history = [window(0, "performance_floor", labelled=80)]
    near = {"metric": "accuracy", "estimate": 0.05, "low": 0.03, "high": 0.07, "incumbent": 0.8}
    far = {**near, "low": 0.05}
    assert run(history, rollback=spec, comparison=near)["action"] == "retrain"
    out = run(history, rollback=spec, comparison=far)
    assert out["action"] == "rollback"
    finding = next(p for p in out["policies"] if p["policy"] == "rollback")
    assert finding["evidence"]["margin"]["declared"] == {"relative": 0.05}
    assert abs(finding["evidence"]["margin"]["resolved"] - 0.04) < 1e-12
    assert "5% of the live release 0.8000" in finding["reason"]


def test_alert_for_other_breaches() -> None:
    out = run([window(0, "null_share;prediction_drift")])
    assert out["action"] == "alert"
    assert run([window(0, "null_share")], alert_checks=())["action"] == "none"


def test_cooldown_suppresses_retrain_until_it_passes() -> None:
    history = [window(i, "dataset_drift") for i in range(3)]
    ledger = [
        {
            "action": "retrain",
            "target": "local",
            "decision_id": "old",
            "as_of": "2025-12-30T00:00:00+00:00",
            "windows": [],
        }
    ]
    out = run(history, ledger)
    assert out["action"] == "none" and out["cooldown"]["active"]
    assert "suppressed by the cooldown" in out["reason"]
    assert run(history, ledger, cooldown_days=1)["action"] == "retrain"


def test_a_decision_already_applied_is_not_proposed_again() -> None:
    history = [window(i, "dataset_drift") for i in range(3)]
    first = run(history, cooldown_days=0)
    assert first["action"] == "retrain" and first["decision_id"]
    ledger = [
        {
            "action": "retrain",
            "target": "local",
            "decision_id": first["decision_id"],
            "as_of": first["as_of"],
            "windows": first["feedback_windows"],
        }
    ]
    again = run(history, ledger, cooldown_days=0)
    assert again["action"] == "none"
    assert again["decision_id"] is None


def test_decision_is_a_pure_function_of_its_inputs() -> None:
    history = [window(i, "dataset_drift") for i in range(4)]
    assert run(history) == run(list(reversed(history)))
    assert run(history)["evidence_windows"] == sorted(w["window"] for w in history)


def test_another_lines_decisions_set_no_cooldown() -> None:
    """A retrain applied on the dataset selected before (another line of releases, with its own
    time range) does not hold back this line's retrain; the same line's does."""
    history = [window(i, "dataset_drift") for i in range(3)]
    earlier = {
        "action": "retrain",
        "target": "local",
        "decision_id": "old",
        "as_of": "2026-12-30T00:00:00+00:00",  # a later year than this line's traffic
        "windows": [],
        "line": "weather-line",
    }
    assert run(history, [earlier], line="footfall-line")["action"] == "retrain"
    held = run(history, [earlier], line="weather-line")
    assert held["action"] == "none" and "cooldown" in held["reason"]
