"""The one definition of every metric: multiclass ROC AUC over the classes present, never NaN,
and the same definition in cross-validation, on the test split and in the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline import metrics
from pipeline import paired_bootstrap as bootstrap

CLASSES = ["cloudy", "rain", "snow", "sun"]


def _multiclass(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(CLASSES, size=n).astype(object)
    raw = rng.random((n, len(CLASSES))) + np.stack([(y == c) * 0.7 for c in CLASSES], axis=1)
    proba = raw / raw.sum(axis=1, keepdims=True)
    pred = np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)]
    return y, pred, proba


def test_multiclass_roc_auc_equals_scikit_learn_when_every_class_is_present() -> None:
    y, pred, proba = _multiclass()
    expected = roc_auc_score(y, proba, multi_class="ovr", labels=CLASSES)
    assert metrics.compute("classification", y, pred, proba, CLASSES)["roc_auc"] == (
        pytest.approx(expected, rel=1e-12)
    )


def test_multiclass_roc_auc_with_a_class_absent_is_the_average_over_present_classes() -> None:
    y, pred, proba = _multiclass()
    keep = y != "snow"  # a small test split without any snowy day
    values, why = metrics.explain("classification", y[keep], pred[keep], proba[keep], CLASSES)
    present = [i for i, c in enumerate(CLASSES) if c != "snow"]
    expected = np.mean([roc_auc_score(y[keep] == CLASSES[i], proba[keep, i]) for i in present])
    assert values["roc_auc"] == pytest.approx(expected, rel=1e-12)
    assert not math.isnan(values["roc_auc"]) and "roc_auc" not in why
    assert set(values) == set(metrics.metrics_for("classification"))


def test_single_class_rows_leave_roc_auc_undefined_with_a_reason() -> None:
    y, pred, proba = _multiclass()
    keep = y == "rain"
    values, why = metrics.explain("classification", y[keep], pred[keep], proba[keep], CLASSES)
    assert "roc_auc" not in values
    assert why == {"roc_auc": "undefined on rows that hold a single class (rain)"}
    binary = metrics.explain(
        "classification", np.array(["a", "a"]), np.array(["a", "b"]), np.eye(2), ["a", "b"]
    )
    assert "roc_auc" not in binary[0] and "single class (a)" in binary[1]["roc_auc"]


def test_unknown_class_leaves_log_loss_undefined_with_a_reason() -> None:
    y = np.array(["a", "b", "c"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    values, why = metrics.explain("classification", y, np.array(["a", "b", "a"]), proba, ["a", "b"])
    assert "log_loss" not in values and "does not know (c)" in why["log_loss"]
    assert "roc_auc" in values


def test_bootstrap_roc_auc_equals_compute_with_an_absent_class() -> None:
    y, pred, proba = _multiclass(60, seed=3)
    keep = y != "sun"
    y, scored = y[keep], bootstrap.PairedScores(pred[keep], proba[keep], CLASSES)
    (W,) = bootstrap.weight_chunks(y, 20, seed=2, stratify=True)
    fast = bootstrap.weighted("roc_auc", "classification", y, scored, W)
    for value, row in zip(fast, W, strict=True):
        rows = np.repeat(np.arange(len(y)), row.astype(int))
        expected = metrics.compute(
            "classification", y[rows], scored.pred[rows], scored.proba[rows], CLASSES
        )["roc_auc"]
        assert value == pytest.approx(expected, rel=1e-12)


def test_cross_validation_scores_a_fold_that_lacks_a_class() -> None:
    """Grouped folds are not stratified: a fold without a class must still be scored."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_validate

    rng = np.random.default_rng(1)
    y = np.array(["a"] * 30 + ["b"] * 30 + ["c"] * 6, dtype=object)
    X = pd.DataFrame({"x": rng.normal(size=len(y)) + (y == "b") * 2 + (y == "c") * 4})
    groups = np.r_[np.arange(60) % 3, np.arange(6) % 2]  # no "c" row in group 2
    scores = cross_validate(
        LogisticRegression(),
        X,
        y,
        groups=groups,
        cv=GroupKFold(n_splits=3),
        scoring=metrics.scorers("classification", n_classes=3),
        error_score="raise",
    )
    assert np.isfinite(scores["test_roc_auc"]).all()
    assert np.isfinite(scores["test_log_loss"]).all()
