"""The paired bootstrap with its per-chunk invariants computed once (`paired_bootstrap.scorer`)
against the implementation that redid them in every chunk, kept here as the oracle: the same
metric values bit for bit on every chunk, hence the same intervals for the same seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import metrics
from pipeline import paired_bootstrap as bootstrap
from pipeline.paired_bootstrap import Comparison, PairedScores


# ------------------------------------------------------------------- the oracle (as it was)
def _old_weighted(
    metric: str, task: str, y: np.ndarray, scored: PairedScores, W: np.ndarray
) -> np.ndarray:
    """`metric` of one model on each resample (rows of W are row counts); NaN where undefined.

    Each branch is the weighted form of the definition `pipeline.metrics.compute` uses.
    """
    total = W.sum(axis=1)
    if task == "regression":
        pred = scored.pred.astype(float)
        yf = y.astype(float)
        err = yf - pred
        if metric == "rmse":
            return np.sqrt(W @ (err**2) / total)
        if metric == "mae":
            return W @ np.abs(err) / total
        if metric == "r2":
            mean = W @ yf / total
            ss_tot = (W * (yf[None, :] - mean[:, None]) ** 2).sum(axis=1)
            ss_res = W @ (err**2)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
        raise ValueError(f"unknown regression metric {metric!r}")
    pred = scored.pred.astype(str)
    ys = y.astype(str)
    if metric == "accuracy":
        return W @ (pred == ys).astype(float) / total
    if metric == "balanced_accuracy":
        recalls = []
        for cls in np.unique(ys):
            support = W @ (ys == cls).astype(float)
            hits = W @ ((ys == cls) & (pred == cls)).astype(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                recalls.append(np.where(support > 0, hits / support, np.nan))
        return np.nanmean(np.vstack(recalls), axis=0)
    if metric == "f1_macro":
        scores, present = [], []
        for cls in np.union1d(np.unique(ys), np.unique(pred)):
            true_sum = W @ (ys == cls).astype(float)
            pred_sum = W @ (pred == cls).astype(float)
            tp = W @ ((ys == cls) & (pred == cls)).astype(float)
            denom = true_sum + pred_sum
            with np.errstate(divide="ignore", invalid="ignore"):
                scores.append(np.where(denom > 0, 2.0 * tp / denom, 0.0))
            present.append(denom > 0)
        stacked, mask = np.vstack(scores), np.vstack(present)
        return (stacked * mask).sum(axis=0) / mask.sum(axis=0)
    if scored.proba is None or scored.classes is None:
        return np.full(len(W), np.nan)
    classes = [str(c) for c in scored.classes]
    if metric == "log_loss":
        return _old_log_loss(ys, scored.proba, classes, W, total)
    if metric == "roc_auc":
        return _old_roc_auc(ys, scored.proba, classes, W)
    raise ValueError(f"unknown classification metric {metric!r}")


def _old_log_loss(
    ys: np.ndarray, proba: np.ndarray, classes: list[str], W: np.ndarray, total: np.ndarray
) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    if any(v not in index for v in np.unique(ys)):
        return np.full(len(W), np.nan)
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    rows = np.fromiter((index[v] for v in ys), dtype=np.int64, count=len(ys))
    losses = -np.log(clipped[np.arange(len(ys)), rows])
    return W @ losses / total


def _old_binary_auc(positive: np.ndarray, score: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC (ties count one half): what roc_auc_score computes."""
    order = np.argsort(score, kind="stable")
    s_sorted = score[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    Ws = W[:, order]
    pos = positive[order].astype(float)
    P = np.add.reduceat(Ws * pos, starts, axis=1)
    N = np.add.reduceat(Ws * (1.0 - pos), starts, axis=1)
    below = np.cumsum(N, axis=1) - N
    p_tot, n_tot = P.sum(axis=1), N.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (P * (below + 0.5 * N)).sum(axis=1) / (p_tot * n_tot)
    return np.where((p_tot > 0) & (n_tot > 0), auc, np.nan)


def _old_roc_auc(
    ys: np.ndarray, proba: np.ndarray, classes: list[str], W: np.ndarray
) -> np.ndarray:
    if len(classes) == 2:  # NaN when a resample lacks positives or negatives
        return _old_binary_auc(ys == classes[1], proba[:, 1], W)
    # one-vs-rest, macro average over the classes present in the resample (as in
    # `metrics.roc_auc`); defined when the resample holds at least two distinct values
    per_class = np.vstack(
        [_old_binary_auc(ys == cls, proba[:, i], W) for i, cls in enumerate(classes)]
    )
    values = np.unique(ys)
    distinct = (np.vstack([W @ (ys == v).astype(float) > 0 for v in values]).sum(axis=0)) >= 2
    defined = np.isfinite(per_class)
    count = defined.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(defined, per_class, 0.0).sum(axis=0) / count
    return np.where(distinct & (count > 0), mean, np.nan)


def _old_compare(
    metric: str,
    task: str,
    y: Any,
    champion: PairedScores,
    incumbent: PairedScores,
    *,
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[list[float], int]:
    y = np.asarray(y)
    diffs = [
        metrics.improvement(
            metric,
            _old_weighted(metric, task, y, champion, W),
            _old_weighted(metric, task, y, incumbent, W),
        )
        for W in bootstrap.weight_chunks(y, resamples, seed, stratify=task == "classification")
    ]
    values = np.concatenate(diffs)
    finite = values[np.isfinite(values)]
    alpha = 1.0 - confidence
    return [float(v) for v in np.quantile(finite, [alpha / 2, 1 - alpha / 2])], len(finite)


# ----------------------------------------------------------------------------- the data
def _classification(
    rng: np.random.Generator, n: int, classes: list[str], labels: list[str]
) -> tuple[np.ndarray, PairedScores]:
    """Labels may include a class the model does not know (log_loss NaN) or miss one."""
    y = rng.choice(labels, size=n).astype(object)
    raw = rng.random((n, len(classes))).round(2)  # rounded: many tied scores
    proba = raw / raw.sum(axis=1, keepdims=True)
    pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return y, PairedScores(pred, proba, classes)


CASES = [
    (["a", "b"], ["a", "b"]),
    (["a", "b", "c"], ["a", "b", "c"]),
    (["a", "b", "c"], ["a", "c"]),  # a class never true
    (["0", "1"], ["0", "1", "2"]),  # a label the model does not know
]


@pytest.mark.parametrize(("classes", "labels"), CASES)
@pytest.mark.parametrize("metric", metrics.metrics_for("classification"))
def test_classification_chunks_identical(
    metric: str, classes: list[str], labels: list[str]
) -> None:
    rng = np.random.default_rng(11)
    y, scored = _classification(rng, 500, classes, labels)
    fast = bootstrap.scorer(metric, "classification", y, scored)
    for W in bootstrap.weight_chunks(y, 60, seed=5, stratify=True):
        expected = _old_weighted(metric, "classification", y, scored, W)
        assert fast(W).tobytes() == expected.tobytes()
    no_proba = PairedScores(scored.pred, None, None)
    (W,) = bootstrap.weight_chunks(y, 5, seed=5, stratify=True)
    got = bootstrap.weighted(metric, "classification", y, no_proba, W)
    assert got.tobytes() == _old_weighted(metric, "classification", y, no_proba, W).tobytes()


@pytest.mark.parametrize("metric", metrics.metrics_for("regression"))
@pytest.mark.parametrize("constant", [False, True])
def test_regression_chunks_identical(metric: str, constant: bool) -> None:
    rng = np.random.default_rng(12)
    y = np.ones(300) if constant else rng.normal(size=300)
    scored = PairedScores(y + rng.normal(scale=0.3, size=300), None, None)
    fast = bootstrap.scorer(metric, "regression", y, scored)
    for W in bootstrap.weight_chunks(y, 40, seed=6, stratify=False):
        assert fast(W).tobytes() == _old_weighted(metric, "regression", y, scored, W).tobytes()


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "accuracy"])
def test_intervals_identical_over_many_chunks(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "CELLS_PER_CHUNK", 7 * 400)  # 7 resamples a chunk
    rng = np.random.default_rng(13)
    y, champion = _classification(rng, 400, ["a", "b", "c"], ["a", "b", "c"])
    _, incumbent = _classification(rng, 400, ["a", "b", "c"], ["a", "b", "c"])
    kwargs = {"confidence": 0.9, "resamples": 101, "seed": 9}
    new = bootstrap.compare(metric, "classification", y, champion, incumbent, **kwargs)
    assert new is not None
    interval, used = _old_compare(metric, "classification", y, champion, incumbent, **kwargs)
    assert [new.low, new.high] == interval
    assert new.used == used


# ------------------------------------------------------- once per distinct comparison (memo)
def _pair() -> tuple[np.ndarray, PairedScores, PairedScores]:
    rng = np.random.default_rng(21)
    y, champion = _classification(rng, 300, ["a", "b"], ["a", "b"])
    _, incumbent = _classification(rng, 300, ["a", "b"], ["a", "b"])
    return y, champion, incumbent


KW: dict[str, Any] = {"confidence": 0.95, "resamples": 50, "seed": 3}


def test_a_comparison_is_computed_once_and_read_back_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    y, champion, incumbent = _pair()
    plain = bootstrap.compare("roc_auc", "classification", y, champion, incumbent, **KW)
    first = bootstrap.compare(
        "roc_auc", "classification", y, champion, incumbent, **KW, memo=tmp_path
    )
    assert first == plain and len(list(tmp_path.iterdir())) == 1

    def recomputed(*args: Any) -> None:
        raise AssertionError("recomputed")

    monkeypatch.setattr(bootstrap, "_compare", recomputed)  # the second target's stage
    again = bootstrap.compare(
        "roc_auc", "classification", y, champion, incumbent, **KW, memo=tmp_path
    )
    assert again is not None and plain is not None
    assert again.to_dict() == plain.to_dict()
    assert json.dumps(again.to_dict()) == json.dumps(plain.to_dict())  # same floats, bit for bit


@pytest.mark.parametrize(
    "change",
    ["seed", "resamples", "confidence", "metric", "label", "champion", "incumbent_proba"],
)
def test_any_other_input_is_another_comparison(tmp_path: Path, change: str) -> None:
    y, champion, incumbent = _pair()
    kwargs, metric = dict(KW), "roc_auc"
    key = bootstrap.memo_key(metric, "classification", y, champion, incumbent, **kwargs)
    if change in ("seed", "resamples"):
        kwargs[change] += 1
    elif change == "confidence":
        kwargs["confidence"] = 0.9
    elif change == "metric":
        metric = "accuracy"
    elif change == "label":
        y = y.copy()
        y[0] = "b" if y[0] == "a" else "a"
    elif change == "champion":
        pred = champion.pred.copy()
        pred[5] = "b" if pred[5] == "a" else "a"
        champion = PairedScores(pred, champion.proba, champion.classes)
    else:
        assert incumbent.proba is not None
        proba = incumbent.proba.copy()
        proba[7] = proba[7][::-1]
        incumbent = PairedScores(incumbent.pred, proba, incumbent.classes)
    assert bootstrap.memo_key(metric, "classification", y, champion, incumbent, **kwargs) != key


@pytest.mark.parametrize("damage", ["garbage", "other_key", "missing_field", "empty"])
def test_a_damaged_entry_is_recomputed_and_rewritten(tmp_path: Path, damage: str) -> None:
    y, champion, incumbent = _pair()
    plain = bootstrap.compare("roc_auc", "classification", y, champion, incumbent, **KW)
    assert plain is not None
    bootstrap.compare("roc_auc", "classification", y, champion, incumbent, **KW, memo=tmp_path)
    (entry,) = tmp_path.iterdir()
    doc = json.loads(entry.read_text())
    if damage == "garbage":
        entry.write_text("{not json")
    elif damage == "other_key":
        entry.write_text(json.dumps({**doc, "key": "0" * 64}))
    elif damage == "missing_field":
        del doc["comparison"]["low"]
        entry.write_text(json.dumps(doc))
    else:
        entry.write_text("")
    got = bootstrap.compare(
        "roc_auc", "classification", y, champion, incumbent, **KW, memo=tmp_path
    )
    assert got is not None and got.to_dict() == plain.to_dict()
    assert json.loads(entry.read_text()) == json.loads(json.dumps(doc_of(plain, entry)))


def doc_of(result: Comparison, entry: Path) -> dict[str, Any]:
    return {"format": bootstrap.MEMO_FORMAT, "key": entry.stem, "comparison": result.to_dict()}
