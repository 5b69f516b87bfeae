"""The one floor rule and the one direction rule, for maximized and minimized metrics alike:
selection (develop), the gate (deploy) and monitoring all judge with `pipeline.floors`, and
every "which way is better" goes through `pipeline.metrics.oriented` / `improvement`."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import floors, metrics
from pipeline.floors import Floor
from pipeline.settings import MINIMIZED_METRICS, Amount, metrics_for


def test_direction_follows_the_declared_minimized_metrics() -> None:
    for metric in (*metrics_for("classification"), *metrics_for("regression")):
        minimized = metric in MINIMIZED_METRICS
        assert metrics.oriented(metric, 2.0) == (-2.0 if minimized else 2.0)
        assert metrics.improvement(metric, 3.0, 1.0) == (-2.0 if minimized else 2.0)


def test_improvement_is_elementwise_on_arrays() -> None:
    new, old = np.array([1.0, 4.0]), np.array([2.0, 2.0])
    assert metrics.improvement("rmse", new, old).tolist() == [1.0, -2.0]
    assert metrics.improvement("accuracy", new, old).tolist() == [-1.0, 2.0]


def test_from_scorer_undoes_scikit_learns_sign_flip_for_losses_only() -> None:
    assert metrics.from_scorer("rmse", -3.5) == 3.5
    assert metrics.from_scorer("r2", 0.25) == 0.25


@pytest.mark.parametrize(
    ("metric", "value", "bound", "passes"),
    [
        ("accuracy", 0.85, 0.85, True),  # the bound itself passes
        ("accuracy", 0.8499, 0.85, False),
        ("accuracy", 0.9, 0.85, True),
        ("rmse", 10.0, 10.0, True),  # a ceiling: at most
        ("rmse", 10.01, 10.0, False),
        ("rmse", 9.0, 10.0, True),
    ],
)
def test_a_floor_is_a_minimum_and_a_ceiling_a_maximum(
    metric: str, value: float, bound: float, passes: bool
) -> None:
    assert floors.meets(metric, value, bound) is passes
    ok, why = Floor(metric, bound, "absolute").check(value)
    assert ok is passes
    if passes:
        assert why is None
    else:
        word = "above the ceiling" if metric in MINIMIZED_METRICS else "under the floor"
        assert why == f"{metric} {value:.4f} is {word} {bound:g}"


def test_kind_and_wording_follow_the_metric() -> None:
    assert Floor("accuracy", 0.5, "absolute").kind == "floor"
    assert Floor("accuracy", 0.5, "absolute").met() == "meets the floor"
    assert Floor("mae", 0.5, "absolute").kind == "ceiling"
    assert Floor("mae", 0.5, "absolute").met() == "is within the ceiling"
    assert Floor("mae", 0.5, "absolute").to_dict() == {
        "metric": "mae",
        "ceiling": 0.5,
        "source": "absolute",
    }


def test_baseline_floors_are_made_better_by_the_amount_in_the_metrics_direction() -> None:
    resolved = floors.resolve(
        {"accuracy": 0.6},
        {"accuracy": Amount.parse(0.05), "rmse": Amount.parse({"relative": 0.1})},
        {"accuracy": 0.5, "rmse": 80.0},
    )
    assert [(f.metric, f.source, f.bound) for f in resolved] == [
        ("accuracy", "absolute", 0.6),
        ("accuracy", "baseline", pytest.approx(0.55)),
        ("rmse", "baseline", pytest.approx(72.0)),  # a ceiling 10% under the baseline's loss
    ]
    assert resolved[1].shown() == "0.5500 (baseline 0.5000 + 0.05)"
    assert resolved[2].shown() == "72.0000 (baseline 80.0000 - 10%)"


def test_an_unresolved_baseline_floor_fails_with_a_reason() -> None:
    (floor,) = floors.resolve(None, {"roc_auc": Amount.parse(0.05)}, {})
    assert floor.bound is None
    assert floor.check(0.99) == (
        False,
        "roc_auc floor unresolved: the baseline's roc_auc could not be computed",
    )
    assert Floor("accuracy", 0.5, "absolute").check(None) == (
        False,
        "accuracy could not be computed",
    )


def test_the_binding_bound_is_the_highest_floor_or_the_lowest_ceiling() -> None:
    ups = [Floor("accuracy", 0.6, "absolute"), Floor("accuracy", 0.7, "baseline")]
    downs = [Floor("rmse", 12.0, "absolute"), Floor("rmse", 10.0, "baseline")]
    assert floors.binding(ups) == 0.7
    assert floors.binding(downs) == 10.0
    assert floors.binding([Floor("rmse", None, "baseline")]) is None


def test_check_collects_every_floors_evidence_and_failures() -> None:
    checks, failures = floors.check(
        [Floor("accuracy", 0.8, "absolute"), Floor("log_loss", 0.4, "absolute")],
        {"accuracy": 0.9, "log_loss": 0.5},
    )
    assert [c["passed"] for c in checks] == [True, False]
    assert failures == ["log_loss 0.5000 is above the ceiling 0.4"]
