"""The gate's rules without a project: comparability of two models, the relative margin and a
metric that cannot be computed."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import comparability
from pipeline.deploy.gate import compare_gate
from pipeline.paired_bootstrap import PairedScores
from pipeline.params import CompareSpec

DECLARED = {
    "metric": "roc_auc",
    "mode": "non_inferiority",
    "margin": {"relative": 0.01},
    "confidence": 0.95,
    "resamples": 200,
    "seed": 1,
}
SETTINGS = CompareSpec.from_params(DECLARED)


def signature(task: str, target: str, classes: list[str] | None, **fields: str) -> dict:
    return {
        "x-mlops": {
            "task": task,
            "target": target,
            "classes": classes,
            "fields": [{"name": n, "type": t} for n, t in fields.items()],
        }
    }


DEMO = comparability.profile(signature("classification", "y", ["a", "b"], x="float", k="int"))


def test_same_question_is_comparable_whatever_the_field_order() -> None:
    again = comparability.profile(signature("classification", "y", ["a", "b"], k="int", x="float"))
    assert comparability.differences(again, DEMO) == []


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (
            signature("regression", "y", None, x="float", k="int"),
            ["task: regression, was classification"],
        ),
        (
            signature("classification", "z", ["a", "b"], x="float", k="int"),
            ["target: z, was y"],
        ),
        (
            signature("classification", "y", ["a", "b", "c"], x="float", k="int"),
            ["classes: [a, b, c], was [a, b]"],
        ),
        (
            signature("classification", "y", ["a", "b"], x="float", k="category", w="bool"),
            ["inputs added: w", "input types changed: k category (was int)"],
        ),
        (signature("classification", "y", ["a", "b"], x="float"), ["inputs removed: k"]),
    ],
)
def test_differences_say_what_changed(new: dict, expected: list[str]) -> None:
    assert comparability.differences(comparability.profile(new), DEMO) == expected


def test_a_release_record_compares_what_it_holds() -> None:
    old_record = comparability.from_record({"name": "m", "task": "classification", "classes": None})
    assert old_record == {"task": "classification", "classes": None}
    assert comparability.differences(DEMO, old_record) == ["classes: [a, b], was none"]
    assert comparability.differences(DEMO, comparability.from_record(None)) == []
    regressor = comparability.from_record({"task": "regression", "classes": None})
    assert comparability.differences(DEMO, regressor) == ["task: classification, was regression"]


def _scored(y: np.ndarray, noise: float, seed: int) -> PairedScores:
    rng = np.random.default_rng(seed)
    p = np.clip((y == "b") * 0.7 + rng.normal(0.15, noise, size=len(y)), 0, 1)
    proba = np.column_stack([1 - p, p])
    return PairedScores(np.where(p > 0.5, "b", "a").astype(object), proba, ["a", "b"])


def test_relative_margin_is_a_share_of_the_incumbents_score() -> None:
    y = np.array(["a", "b"] * 60, dtype=object)
    champion, incumbent = _scored(y, 0.2, 1), _scored(y, 0.2, 2)
    evidence, _ = compare_gate(SETTINGS, champion, incumbent, y, "classification")
    assert evidence["margin"] == {
        "declared": {"relative": 0.01},
        "reference": evidence["incumbent"],
        "resolved": pytest.approx(0.01 * evidence["incumbent"]),
    }
    assert evidence["rule"].endswith(
        f": margin {0.01 * evidence['incumbent']:.4g} (1% of the incumbent "
        f"{evidence['incumbent']:.4f})"
    )
    absolute = CompareSpec.from_params({**DECLARED, "margin": 0.02})  # a plain number: absolute
    evidence, _ = compare_gate(absolute, champion, incumbent, y, "classification")
    assert evidence["margin"] == {"declared": {"absolute": 0.02}, "reference": None,
                                  "resolved": 0.02}  # fmt: skip


def test_undefined_metric_blocks_with_the_reason() -> None:
    y = np.array(["a"] * 30, dtype=object)  # a test split holding one class
    champion = _scored(np.array(["a", "b"] * 15, dtype=object), 0.2, 3)
    evidence, reasons = compare_gate(SETTINGS, champion, champion, y, "classification")
    assert evidence["passed"] is False
    assert reasons == [
        "compare: roc_auc cannot be computed for both models on the test split (champion: "
        "undefined on rows that hold a single class (a); incumbent: undefined on rows that "
        "hold a single class (a))"
    ]
