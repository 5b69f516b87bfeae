"""The selection rule: floors, direction, tolerance ties and deterministic tie-breaks."""

from __future__ import annotations

import pytest

from pipeline.develop.evaluate import select
from pipeline.settings import SelectionSpec


def rule(**kw: object) -> SelectionSpec:
    base: dict[str, object] = dict(
        metric="roc_auc",
        direction="maximize",
        scored_on="cv",
        floors={},
        tolerance=0.0,
        tie_break=("declared_order",),
    )
    base.update(kw)
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
