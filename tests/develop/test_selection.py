"""The selection rule: floors, direction, tolerance ties and deterministic tie-breaks."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import floors
from pipeline.develop.evaluate import select
from pipeline.floors import Baseline
from pipeline.settings import Amount, BaselineSpec, SelectionSpec


def rule(**kw: object) -> SelectionSpec:
    base: dict[str, object] = dict(
        metric="roc_auc",
        direction="maximize",
        scored_on="cv",
        floors={},
        tolerance=Amount("absolute", 0.0),
        tie_break=("declared_order",),
        baseline=BaselineSpec("prior", {}),
    )
    base.update(kw)
    if not isinstance(base["tolerance"], Amount):
        base["tolerance"] = Amount.parse(base["tolerance"])
    return SelectionSpec(**base)  # type: ignore[arg-type]


FACTS = {
    "a": {"n_parameters": 500, "model_size": 9000, "declared_order": 0},
    "b": {"n_parameters": 40, "model_size": 3000, "declared_order": 1},
    "c": {"n_parameters": 40, "model_size": 1000, "declared_order": 2},
}


def test_best_primary_metric_wins() -> None:
    scores = {"a": {"roc_auc": 0.90}, "b": {"roc_auc": 0.95}, "c": {"roc_auc": 0.93}}
    out = select(scores, FACTS, rule())
    assert out["champion"] == "b"
    assert "best roc_auc (0.9500 on cv)" in out["reason"]


def test_minimized_metric() -> None:
    scores = {"a": {"rmse": 50.0}, "b": {"rmse": 40.0}, "c": {"rmse": 45.0}}
    assert select(scores, FACTS, rule(metric="rmse", direction="minimize"))["champion"] == "b"


def test_candidate_under_a_floor_cannot_win() -> None:
    scores = {
        "a": {"roc_auc": 0.99, "balanced_accuracy": 0.70},
        "b": {"roc_auc": 0.95, "balanced_accuracy": 0.90},
        "c": {"roc_auc": 0.94, "balanced_accuracy": 0.91},
    }
    out = select(scores, FACTS, rule(floors={"balanced_accuracy": 0.85}))
    assert out["champion"] == "b"
    assert out["candidates"]["a"]["eligible"] is False
    assert out["candidates"]["a"]["failed_floors"] == [
        "balanced_accuracy 0.7000 is under the floor 0.85"
    ]


def test_ceiling_for_minimized_floor_metric() -> None:
    scores = {
        "a": {"rmse": 30.0, "mae": 90.0},
        "b": {"rmse": 40.0, "mae": 20.0},
        "c": {"rmse": 41.0, "mae": 20.0},
    }
    out = select(scores, FACTS, rule(metric="rmse", direction="minimize", floors={"mae": 50}))
    assert out["champion"] == "b"
    assert "above the ceiling" in out["candidates"]["a"]["failed_floors"][0]


def test_no_eligible_candidate() -> None:
    scores = {n: {"roc_auc": 0.6, "balanced_accuracy": 0.5} for n in FACTS}
    out = select(scores, FACTS, rule(floors={"balanced_accuracy": 0.85}))
    assert out["champion"] is None and out["reason"].startswith("no candidate meets the floors")


@pytest.mark.parametrize(
    ("tie_break", "expected"),
    [
        (("declared_order",), "a"),
        (("n_parameters",), "b"),  # b and c tie on n_parameters; declared order breaks it
        (("n_parameters", "model_size"), "c"),
        (("model_size",), "c"),
    ],
)
def test_tie_within_tolerance_broken_by_declared_keys(
    tie_break: tuple[str, ...], expected: str
) -> None:
    scores = {"a": {"roc_auc": 0.951}, "b": {"roc_auc": 0.950}, "c": {"roc_auc": 0.949}}
    out = select(scores, FACTS, rule(tolerance=0.002, tie_break=tie_break))
    assert out["champion"] == expected
    assert set(out["tied"]) == {"a", "b", "c"}


def test_outside_tolerance_is_not_a_tie() -> None:
    scores = {"a": {"roc_auc": 0.96}, "b": {"roc_auc": 0.95}, "c": {"roc_auc": 0.90}}
    out = select(scores, FACTS, rule(tolerance=0.005, tie_break=("n_parameters",)))
    assert out["champion"] == "a" and out["tied"] == ["a"]


def test_missing_primary_metric_makes_ineligible() -> None:
    scores = {"a": {}, "b": {"roc_auc": 0.8}, "c": {"roc_auc": 0.7}}
    out = select(scores, FACTS, rule())
    assert out["champion"] == "b"
    assert out["candidates"]["a"]["failed_floors"] == ["roc_auc could not be computed"]


# ------------------------------------------------------------------------ scale-aware tolerance
def test_relative_tolerance_scales_with_the_metric() -> None:
    """The issue's case: an RMSE of 3.23 is not "tied" with 2.91 under a relative tolerance,
    as it was under the old 0.5 in the target's units."""
    scores = {"a": {"rmse": 3.23}, "b": {"rmse": 2.91}, "c": {"rmse": 2.93}}
    facts = {**FACTS, "a": {**FACTS["a"], "n_parameters": 1}}  # a is the simplest
    old = select(
        scores,
        facts,
        rule(metric="rmse", direction="minimize", tolerance=0.5, tie_break=("n_parameters",)),
    )
    assert old["champion"] == "a" and "within tolerance 0.5 " in old["reason"]
    new = select(
        scores,
        facts,
        rule(
            metric="rmse",
            direction="minimize",
            tolerance={"relative": 0.01},
            tie_break=("n_parameters",),
        ),
    )
    # 1% of the best RMSE: 0.0291; c (2.93) ties with b, a does not
    assert new["tied"] == ["b", "c"] and new["champion"] == "b"
    assert new["tolerance"] == {
        "declared": {"relative": 0.01},
        "reference": 2.91,
        "resolved": pytest.approx(0.0291),
    }
    assert "within tolerance 0.0291 (1% of the best score 2.9100)" in new["reason"]


def test_plain_number_tolerance_keeps_meaning_absolute() -> None:
    assert Amount.parse(0.5) == Amount("absolute", 0.5) == Amount.parse({"absolute": 0.5})
    assert Amount.parse({"relative": 0.01, "absolute": None}) == Amount("relative", 0.01)
    assert Amount.parse({"relative": 0.01}).resolve(-2.0) == pytest.approx(0.02)
    out = select({"a": {"roc_auc": 0.9}}, FACTS, rule(tolerance=0.002))
    assert out["tolerance"] == {
        "declared": {"absolute": 0.002},
        "reference": None,
        "resolved": 0.002,
    }


# --------------------------------------------------------------------- baseline-relative floors
def test_baseline_floor_is_chance_plus_margin_on_a_hard_multiclass_problem() -> None:
    """A five-class label where any model scores 0.41-0.48 balanced accuracy: the old absolute
    0.85 floor refused every candidate; beating the baseline (0.2) by 0.05 does not."""
    scores = {
        "a": {"roc_auc": 0.70, "balanced_accuracy": 0.41},
        "b": {"roc_auc": 0.74, "balanced_accuracy": 0.48},
        "c": {"roc_auc": 0.52, "balanced_accuracy": 0.22},
    }
    assert select(scores, FACTS, rule(floors={"balanced_accuracy": 0.85}))["champion"] is None
    beat = {"balanced_accuracy": Amount("absolute", 0.05)}
    resolved = floors.resolve({}, beat, {"balanced_accuracy": 0.2, "roc_auc": 0.5})
    out = select(scores, FACTS, rule(baseline=BaselineSpec("prior", beat)), resolved)
    assert out["champion"] == "b"
    assert out["candidates"]["c"]["failed_floors"] == [
        "balanced_accuracy 0.2200 is under the floor 0.2500 (baseline 0.2000 + 0.05)"
    ]
    assert out["reason"].endswith(
        "every eligible candidate meets the floors: balanced_accuracy 0.2500 (baseline 0.2000 "
        "+ 0.05)"
    )


def test_relative_baseline_ceiling_for_a_minimized_metric() -> None:
    beat = {"rmse": Amount("relative", 0.1)}
    (ceiling,) = floors.resolve(None, beat, {"rmse": 80.0})
    assert ceiling.kind == "ceiling" and ceiling.bound == pytest.approx(72.0)
    assert ceiling.check(71.0) == (True, None)
    assert ceiling.check(75.0) == (
        False,
        "rmse 75.0000 is above the ceiling 72.0000 (baseline 80.0000 - 10%)",
    )
    record = ceiling.to_dict()
    assert record["margin"] == {
        "declared": {"relative": 0.1},
        "reference": 80.0,
        "resolved": pytest.approx(8.0),
    }


def test_absolute_and_baseline_floors_apply_together() -> None:
    resolved = floors.resolve(
        {"balanced_accuracy": 0.85},
        {"balanced_accuracy": Amount("absolute", 0.05)},
        {"balanced_accuracy": 0.5},
    )
    checks, failures = floors.check(resolved, {"balanced_accuracy": 0.7})
    assert [c["passed"] for c in checks] == [False, True]
    assert failures == ["balanced_accuracy 0.7000 is under the floor 0.85"]


def test_unresolvable_baseline_floor_fails_with_a_reason() -> None:
    (floor,) = floors.resolve({}, {"roc_auc": Amount("absolute", 0.05)}, {})
    assert floor.check(0.9) == (
        False,
        "roc_auc floor unresolved: the baseline's roc_auc could not be computed",
    )


@pytest.mark.parametrize("strategy", ["prior", "most_frequent"])
def test_baseline_outputs_are_the_dummy_classifiers(strategy: str) -> None:
    from sklearn.dummy import DummyClassifier

    y = np.array(["sun"] * 5 + ["rain"] * 3 + ["snow"] * 5, dtype=object)
    dummy = DummyClassifier(strategy=strategy).fit(np.zeros((len(y), 1)), y)
    baseline = Baseline.from_fitted("classification", strategy, dummy)
    again = Baseline.from_dict(baseline.to_dict())
    pred, proba = again.outputs(4)
    X = np.zeros((4, 1))
    assert list(pred) == list(dummy.predict(X))
    assert np.array_equal(proba, dummy.predict_proba(X))
    values, _ = again.score(np.array(["sun", "rain", "snow", "sun"]))
    assert values["balanced_accuracy"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("strategy", ["mean", "median"])
def test_baseline_outputs_are_the_dummy_regressors(strategy: str) -> None:
    from sklearn.dummy import DummyRegressor

    y = np.array([1.0, 2.0, 4.0, 10.0])
    dummy = DummyRegressor(strategy=strategy).fit(np.zeros((4, 1)), y)
    baseline = Baseline.from_dict(Baseline.from_fitted("regression", strategy, dummy).to_dict())
    pred, proba = baseline.outputs(3)
    assert proba is None and np.array_equal(pred, dummy.predict(np.zeros((3, 1))))
