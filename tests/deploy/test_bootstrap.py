"""The paired bootstrap: every vectorised metric equals `pipeline.metrics.compute` on the same
resampled rows, intervals are reproducible with their seed, and the decision rules hold."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import metrics
from pipeline import paired_bootstrap as bootstrap
from pipeline.paired_bootstrap import Comparison, PairedScores

RESAMPLES = 25


def _classification(rng: np.random.Generator, n: int, classes: list[str]) -> tuple:
    y = rng.choice(classes, size=n)
    raw = rng.random((n, len(classes))) + np.stack([(y == c) * 0.8 for c in classes], axis=1)
    proba = raw / raw.sum(axis=1, keepdims=True)
    proba[:3] = proba[3]  # ties in the scores
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return y.astype(object), PairedScores(pred, proba, classes)


def _resampled(W: np.ndarray) -> list[np.ndarray]:
    """Each weight row as the explicit row indices it stands for."""
    return [np.repeat(np.arange(W.shape[1]), row.astype(int)) for row in W]


@pytest.mark.parametrize("classes", [["a", "b"], ["a", "b", "c"]])
@pytest.mark.parametrize("metric", metrics.metrics_for("classification"))
def test_weighted_classification_metrics_equal_compute(metric: str, classes: list[str]) -> None:
    rng = np.random.default_rng(7)
    y, scored = _classification(rng, 60, classes)
    (W,) = bootstrap.weight_chunks(y, RESAMPLES, seed=3, stratify=True)
    fast = bootstrap.weighted(metric, "classification", y, scored, W)
    for value, rows in zip(fast, _resampled(W), strict=True):
        expected = metrics.compute(
            "classification", y[rows], scored.pred[rows], scored.proba[rows], classes
        )[metric]
        assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("metric", metrics.metrics_for("regression"))
def test_weighted_regression_metrics_equal_compute(metric: str) -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(size=80)
    scored = PairedScores(y + rng.normal(scale=0.5, size=80), None, None)
    (W,) = bootstrap.weight_chunks(y, RESAMPLES, seed=4, stratify=False)
    fast = bootstrap.weighted(metric, "regression", y, scored, W)
    for value, rows in zip(fast, _resampled(W), strict=True):
        expected = metrics.compute("regression", y[rows], scored.pred[rows])[metric]
        assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_stratified_resamples_keep_every_class_count() -> None:
    y = np.array(["a"] * 5 + ["b"] * 95, dtype=object)
    for W in bootstrap.weight_chunks(y, 500, seed=1, stratify=True):
        assert (W[:, y == "a"].sum(axis=1) == 5).all()
        assert (W.sum(axis=1) == 100).all()
    # without stratification a rare class goes missing, which roc_auc cannot score
    (W,) = bootstrap.weight_chunks(y, 500, seed=1, stratify=False)
    assert (W[:, y == "a"].sum(axis=1) == 0).any()


def test_chunks_cover_every_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Big splits are resampled in chunks (bounded memory); every resample is still drawn."""
    y = np.array(["a", "b", "b"] * 20, dtype=object)
    monkeypatch.setattr(bootstrap, "CELLS_PER_CHUNK", 60 * 7)
    chunks = list(bootstrap.weight_chunks(y, 40, seed=9, stratify=True))
    assert [len(c) for c in chunks] == [7] * 5 + [5]
    stacked = np.vstack(chunks)
    assert (stacked[:, y == "a"].sum(axis=1) == 20).all()
    assert len({row.tobytes() for row in stacked}) == 40


def _pair(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    y, champion = _classification(rng, 100, ["no", "yes"])
    noisy = np.clip(champion.proba + rng.normal(scale=0.25, size=champion.proba.shape), 0.01, 1)
    noisy /= noisy.sum(axis=1, keepdims=True)
    pred = np.asarray(["no", "yes"], dtype=object)[noisy.argmax(axis=1)]
    return y, champion, PairedScores(pred, noisy, ["no", "yes"])


def _compare(seed: int, metric: str = "roc_auc") -> Comparison:
    y, champion, incumbent = _pair()
    result = bootstrap.compare(
        metric,
        "classification",
        y,
        champion,
        incumbent,
        confidence=0.95,
        resamples=2000,
        seed=seed,
    )
    assert result is not None
    return result


def test_interval_is_reproducible_with_its_seed_and_moves_with_another() -> None:
    first, again, other = _compare(42), _compare(42), _compare(43)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.estimate == other.estimate  # the point estimate uses no randomness
    assert first.low < first.estimate < first.high
    assert first.used == 2000 and first.skipped == 0 and first.resampling == "stratified"


def test_global_rng_is_untouched() -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    _compare(5)
    assert np.random.random() == expected


def test_minimized_metrics_are_oriented_so_positive_means_better() -> None:
    result = _compare(1, metric="log_loss")
    assert result.estimate == pytest.approx(result.incumbent - result.champion)
    assert result.estimate > 0  # the less noisy champion has the lower loss


def _interval(low: float, high: float) -> Comparison:
    return Comparison("roc_auc", 0.9, 0.9, (low + high) / 2, low, high, 0.95, 100, 100, 0, 0, "x")


@pytest.mark.parametrize(
    ("mode", "low", "margin", "passes"),
    [
        ("non_inferiority", -0.005, 0.01, True),
        ("non_inferiority", -0.01, 0.01, True),  # worse by exactly the margin is allowed
        ("non_inferiority", -0.02, 0.01, False),
        ("superiority", 0.02, 0.01, True),
        ("superiority", 0.01, 0.01, False),  # must beat the incumbent by more than the margin
        ("superiority", 0.0, 0.0, False),  # an identical model is not superior
    ],
)
def test_judge_rules(mode: str, low: float, margin: float, passes: bool) -> None:
    ok, rule = bootstrap.judge(_interval(low, low + 0.05), mode, margin)
    assert ok is passes
    assert bootstrap.passes(low, mode, margin) is passes  # the rule maintain's rollback uses
    assert mode.replace("_", "-") in rule


def test_too_many_undefined_resamples_refuse_the_comparison() -> None:
    y = np.ones(30)  # r2 is undefined on every resample of a constant target
    scored = PairedScores(np.ones(30) * 1.1, None, None)
    result = bootstrap.compare(
        "r2", "regression", y, scored, scored, confidence=0.9, resamples=100, seed=0
    )
    assert result is not None and result.skipped == 100 and result.low is None
    ok, rule = bootstrap.judge(result, "non_inferiority", 0.01)
    assert not ok and "could not be computed on 100 of 100" in rule
    assert not bootstrap.passes(None, "superiority", 0.0)
