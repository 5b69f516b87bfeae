"""Paired bootstrap of a metric difference between two models scored on the same rows: the one
implementation behind the deploy gate's comparison with the incumbent (`deploy.gate`) and the
maintenance rollback policy's comparison of the previous release with the live one
(`maintain.stage` / `maintain.policy`). A foundation: it imports no stage.

Why a bootstrap and not the point difference: a test split of ~100 rows moves roc_auc or
accuracy by several points from one sample to the next, so "the champion is 0.004 worse" means
nothing without its uncertainty. Both models are scored on the *same* resampled rows (paired),
which cancels the shared row-to-row noise and gives a much tighter interval than comparing two
independent intervals.

Definitions:

* improvement = champion − incumbent for maximized metrics, incumbent − champion for minimized
  ones (log_loss, rmse, mae): positive always means "the champion is better".
* The interval is the two-sided percentile interval at `confidence` of the improvement over
  `resamples` resamples. The point estimate is the improvement on the whole split, computed
  with `pipeline.metrics.compute` (the one definition of every metric).
* non_inferiority passes when the interval's low end is >= −margin (the champion is not worse
  by more than the margin, at level (1 − confidence) / 2 one-sided); superiority passes when the
  low end is > margin (it beats the incumbent by more than the margin).

Resampling: classification resamples *stratified by the true class* (each class keeps its
count), so every resample holds the classes of the split and roc_auc is defined whenever it is
on the whole split; regression resamples rows. A resample on which a metric is still undefined
(r2 with a constant target) is skipped and counted; when more than half are skipped the
comparison is refused, not guessed.

Speed: a resample is a vector of row counts (a multinomial weight), and every metric here is a
weighted sum over rows, so all resamples are scored with a few matrix operations instead of
thousands of scikit-learn calls. Tests check every vectorised metric against
`pipeline.metrics.compute` on explicitly resampled rows.

Randomness comes only from `numpy.random.default_rng(seed)`: the same seed, data and resample
count give the same interval on any machine; the global RNG is never touched.

Once per distinct comparison: every deploy target runs its gate as its own DVC stage, and
targets that share the incumbent and the compare settings ask the very same question. With
`memo` (a directory, `pipeline.paths.COMPARISONS_DIR`), `compare` keeps each result under the
SHA-256 of everything it depends on: the rows (labels, both models' predictions and
probabilities, classes), the metric, confidence, resample count and seed, the source of this
module and of `pipeline.metrics` (what the stage declares as its code deps) and the numpy and
scikit-learn versions; and returns a kept result instead of recomputing it. The memo never
changes an answer (same key, same inputs, same bytes), so stages stay functions of their
declared deps and params and `dvc repro` decides what to run as before; an entry that does not
read back exactly (damaged, another format) is recomputed and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import metrics
from pipeline.io import read_json, write_json

CELLS_PER_CHUNK = 2_000_000  # resample-by-row cells scored at once: bounds memory on big splits
MAX_SKIPPED_SHARE = 0.5
MEMO_FORMAT = "gitops-mlops/paired-bootstrap-comparison/1"


@dataclass(frozen=True)
class PairedScores:
    """One model's output on the comparison rows."""

    pred: np.ndarray
    proba: np.ndarray | None
    classes: list[str] | None


@dataclass(frozen=True)
class Comparison:
    metric: str
    champion: float
    incumbent: float
    estimate: float  # improvement on the whole split
    low: float | None
    high: float | None
    confidence: float
    resamples: int
    used: int
    skipped: int
    seed: int
    resampling: str  # stratified | rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ resampling
def weight_chunks(
    y: np.ndarray, resamples: int, seed: int, *, stratify: bool
) -> Iterator[np.ndarray]:
    """Resamples as row-count matrices (chunk × n), drawn from one seeded Generator.

    Stratified: for each class (sorted), each resample draws that class's rows with
    replacement, as many as the class has. The chunk size depends only on the data size, so
    the draws (and the interval) depend only on (seed, data, resamples).
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    groups = (
        [np.flatnonzero(y == cls) for cls in sorted(set(y.tolist()))]
        if stratify
        else [np.arange(n)]
    )
    chunk = max(1, min(resamples, CELLS_PER_CHUNK // max(n, 1)))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        counts = np.zeros(size * n, dtype=np.float64)
        offsets = (np.arange(size) * n)[:, None]
        for rows in groups:
            picks = rows[rng.integers(0, len(rows), size=(size, len(rows)))]
            counts += np.bincount((picks + offsets).ravel(), minlength=size * n)
        done += size
        yield counts.reshape(size, n)


# ---------------------------------------------------------------------- weighted metrics
Scorer = Callable[[np.ndarray], np.ndarray]


def weighted(
    metric: str, task: str, y: np.ndarray, scored: PairedScores, W: np.ndarray
) -> np.ndarray:
    """`metric` of one model on each resample (rows of W are row counts); NaN where undefined.

    Each branch is the weighted form of the definition `pipeline.metrics.compute` uses."""
    return scorer(metric, task, y, scored)(W)


def scorer(metric: str, task: str, y: np.ndarray, scored: PairedScores) -> Scorer:
    """`weighted` for one model, as a function of the weights alone.

    Everything that depends only on the rows (labels and predictions as text, class masks,
    per-row losses, the scores' sort order and ties) is computed here once, so scoring a chunk
    of resamples is only the matrix products over its weights: the time per row and resample
    stays flat however many chunks a large split needs. The arithmetic per chunk is the one
    `weighted` always did, in the same order, so the values are bit for bit the same."""
    if task == "regression":
        pred = scored.pred.astype(float)
        yf = y.astype(float)
        err = yf - pred
        if metric == "rmse":
            squared = err**2
            return lambda W: np.sqrt(W @ squared / W.sum(axis=1))
        if metric == "mae":
            absolute = np.abs(err)
            return lambda W: W @ absolute / W.sum(axis=1)
        if metric == "r2":
            squared = err**2

            def r2(W: np.ndarray) -> np.ndarray:
                mean = W @ yf / W.sum(axis=1)
                ss_tot = (W * (yf[None, :] - mean[:, None]) ** 2).sum(axis=1)
                ss_res = W @ squared
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)

            return r2
        raise ValueError(f"unknown regression metric {metric!r}")
    pred = scored.pred.astype(str)
    ys = y.astype(str)
    if metric == "accuracy":
        hits = (pred == ys).astype(float)
        return lambda W: W @ hits / W.sum(axis=1)
    if metric == "balanced_accuracy":
        per_class = [
            ((ys == cls).astype(float), ((ys == cls) & (pred == cls)).astype(float))
            for cls in np.unique(ys)
        ]

        def balanced_accuracy(W: np.ndarray) -> np.ndarray:
            recalls = []
            for in_class, hit in per_class:
                support = W @ in_class
                hits = W @ hit
                with np.errstate(divide="ignore", invalid="ignore"):
                    recalls.append(np.where(support > 0, hits / support, np.nan))
            return np.nanmean(np.vstack(recalls), axis=0)

        return balanced_accuracy
    if metric == "f1_macro":
        vectors = [
            (
                (ys == cls).astype(float),
                (pred == cls).astype(float),
                ((ys == cls) & (pred == cls)).astype(float),
            )
            for cls in np.union1d(np.unique(ys), np.unique(pred))
        ]

        def f1_macro(W: np.ndarray) -> np.ndarray:
            scores, present = [], []
            for is_true, is_pred, is_tp in vectors:
                true_sum = W @ is_true
                pred_sum = W @ is_pred
                tp = W @ is_tp
                denom = true_sum + pred_sum
                with np.errstate(divide="ignore", invalid="ignore"):
                    scores.append(np.where(denom > 0, 2.0 * tp / denom, 0.0))
                present.append(denom > 0)
            stacked, mask = np.vstack(scores), np.vstack(present)
            return (stacked * mask).sum(axis=0) / mask.sum(axis=0)

        return f1_macro
    if scored.proba is None or scored.classes is None:
        return lambda W: np.full(len(W), np.nan)
    classes = [str(c) for c in scored.classes]
    if metric == "log_loss":
        return _log_loss(ys, scored.proba, classes)
    if metric == "roc_auc":
        return _roc_auc(ys, scored.proba, classes)
    raise ValueError(f"unknown classification metric {metric!r}")


def _log_loss(ys: np.ndarray, proba: np.ndarray, classes: list[str]) -> Scorer:
    index = {c: i for i, c in enumerate(classes)}
    if any(v not in index for v in np.unique(ys)):
        return lambda W: np.full(len(W), np.nan)
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    rows = np.fromiter((index[v] for v in ys), dtype=np.int64, count=len(ys))
    losses = -np.log(clipped[np.arange(len(ys)), rows])
    return lambda W: W @ losses / W.sum(axis=1)


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> Scorer:
    """Weighted Mann-Whitney AUC (ties count one half): what roc_auc_score computes. The sort
    order and the runs of tied scores are the rows'; only the weights change per chunk.

    Each resample's weight per run of tied scores is summed by `bincount` over the rows in
    their own order (each row's run index computed once), not by permuting the chunk into score
    order: that gather reads the chunk at random and grew 1.5x per row from 25k to 200k rows
    as a resample's row stopped fitting in the cache. The weights are row counts and `pos` is
    0 or 1, so every sum is an exact integer: the same values in any order."""
    order = np.argsort(score, kind="stable")
    s_sorted = score[order]
    new_run = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    runs = int(new_run.sum())
    run_of = np.empty(len(score), dtype=np.intp)  # each row's run of tied scores, ascending
    run_of[order] = np.cumsum(new_run) - 1
    pos = positive.astype(float)

    def auc(W: np.ndarray) -> np.ndarray:
        size = W.shape[0]
        index = (np.arange(size, dtype=np.intp)[:, None] * runs + run_of).ravel()
        P = np.bincount(index, weights=(W * pos).ravel(), minlength=size * runs)
        N = np.bincount(index, weights=W.ravel(), minlength=size * runs) - P
        P, N = P.reshape(size, runs), N.reshape(size, runs)
        below = np.cumsum(N, axis=1) - N
        p_tot, n_tot = P.sum(axis=1), N.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (P * (below + 0.5 * N)).sum(axis=1) / (p_tot * n_tot)
        return np.where((p_tot > 0) & (n_tot > 0), value, np.nan)

    return auc


def _roc_auc(ys: np.ndarray, proba: np.ndarray, classes: list[str]) -> Scorer:
    if len(classes) == 2:  # NaN when a resample lacks positives or negatives
        return _binary_auc(ys == classes[1], proba[:, 1])
    # one-vs-rest, macro average over the classes present in the resample (as in
    # `metrics.roc_auc`); defined when the resample holds at least two distinct values
    per_class = [_binary_auc(ys == cls, proba[:, i]) for i, cls in enumerate(classes)]
    masks = [(ys == v).astype(float) for v in np.unique(ys)]

    def macro(W: np.ndarray) -> np.ndarray:
        aucs = np.vstack([auc(W) for auc in per_class])
        distinct = (np.vstack([W @ mask > 0 for mask in masks]).sum(axis=0)) >= 2
        defined = np.isfinite(aucs)
        count = defined.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(defined, aucs, 0.0).sum(axis=0) / count
        return np.where(distinct & (count > 0), mean, np.nan)

    return macro


# ------------------------------------------------------------------------------ comparison
def point(metric: str, task: str, y: np.ndarray, scored: PairedScores) -> float | None:
    """The metric on the whole split, by the shared definition."""
    value = metrics.compute(task, y, scored.pred, scored.proba, scored.classes).get(metric)
    return None if value is None else float(value)


def compare(
    metric: str,
    task: str,
    y: Sequence[Any] | np.ndarray,
    champion: PairedScores,
    incumbent: PairedScores,
    *,
    confidence: float,
    resamples: int,
    seed: int,
    memo: Path | None = None,
) -> Comparison | None:
    """The paired bootstrap interval of the improvement; None if the metric is undefined on
    the whole split for either model. With `memo`, a comparison already made is read back
    instead of recomputed (see the module docstring)."""
    y = np.asarray(y)
    if memo is None:
        return _compare(metric, task, y, champion, incumbent, confidence, resamples, seed)
    key = memo_key(
        metric, task, y, champion, incumbent, confidence=confidence, resamples=resamples, seed=seed
    )
    path = memo / f"{key}.json"
    found, kept = _recall(path, key)
    if found:
        return kept
    result = _compare(metric, task, y, champion, incumbent, confidence, resamples, seed)
    with contextlib.suppress(OSError, ValueError):  # unwritable, or NaN (JSON cannot hold it)
        write_json(path, {"format": MEMO_FORMAT, "key": key, "comparison": _as_dict(result)})
    return result


def memo_key(
    metric: str,
    task: str,
    y: np.ndarray,
    champion: PairedScores,
    incumbent: PairedScores,
    *,
    confidence: float,
    resamples: int,
    seed: int,
) -> str:
    """SHA-256 of everything a comparison's result depends on (see the module docstring)."""
    digest = hashlib.sha256()

    def part(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)

    part(MEMO_FORMAT.encode())
    for module in (__file__, metrics.__file__):
        part(Path(str(module)).read_bytes())
    part(f"numpy {np.__version__}; scikit-learn {metadata.version('scikit-learn')}".encode())
    part(json.dumps([metric, task, repr(confidence), resamples, seed]).encode())
    for scored in (champion, incumbent):
        part(_array_bytes(scored.pred))
        part(_array_bytes(scored.proba))
        part(json.dumps(scored.classes, default=repr).encode())
    part(_array_bytes(y))
    return digest.hexdigest()


def _array_bytes(values: np.ndarray | None) -> bytes:
    """An array's exact content: dtype, shape and bytes for numbers, JSON for objects."""
    if values is None:
        return b"null"
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        head = f"{values.dtype.str}{values.shape}".encode()
        return head + np.ascontiguousarray(values).tobytes()
    return json.dumps(values.tolist(), default=repr, ensure_ascii=False).encode()


def _as_dict(result: Comparison | None) -> dict[str, Any] | None:
    return None if result is None else result.to_dict()


def _recall(path: Path, key: str) -> tuple[bool, Comparison | None]:
    """(found, the kept result) of a memo entry; not found when absent or not read back
    exactly."""
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        return False, None
    if not isinstance(doc, dict) or doc.get("format") != MEMO_FORMAT or doc.get("key") != key:
        return False, None
    kept = doc.get("comparison")
    if kept is None:
        return True, None
    names = {f.name for f in fields(Comparison)}
    if not isinstance(kept, dict) or set(kept) != names:
        return False, None
    return True, Comparison(**kept)


def _compare(
    metric: str,
    task: str,
    y: np.ndarray,
    champion: PairedScores,
    incumbent: PairedScores,
    confidence: float,
    resamples: int,
    seed: int,
) -> Comparison | None:
    a, b = point(metric, task, y, champion), point(metric, task, y, incumbent)
    if a is None or b is None:
        return None
    stratify = task == "classification"
    score_a, score_b = scorer(metric, task, y, champion), scorer(metric, task, y, incumbent)
    diffs = [
        metrics.improvement(metric, score_a(W), score_b(W))
        for W in weight_chunks(y, resamples, seed, stratify=stratify)
    ]
    values = np.concatenate(diffs)
    finite = values[np.isfinite(values)]
    skipped = int(len(values) - len(finite))
    alpha = 1.0 - confidence
    low = high = None
    if len(finite) and skipped <= MAX_SKIPPED_SHARE * len(values):
        low, high = (float(v) for v in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    return Comparison(
        metric=metric,
        champion=a,
        incumbent=b,
        estimate=float(metrics.improvement(metric, a, b)),
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        used=len(finite),
        skipped=skipped,
        seed=seed,
        resampling="stratified" if stratify else "rows",
    )


def passes(low: float | None, mode: str, margin: float) -> bool:
    """The decision rule on an interval's low end: superiority (better by more than `margin`)
    or non-inferiority (not worse by more than `margin`); no interval never passes."""
    if low is None:
        return False
    return low > margin if mode == "superiority" else low >= -margin


def judge(comparison: Comparison, mode: str, margin: float) -> tuple[bool, str]:
    """Pass/fail under `mode` (`passes`), and the rule as a sentence for the report."""
    if comparison.low is None:
        return False, (
            f"{comparison.metric} could not be computed on {comparison.skipped} of "
            f"{comparison.resamples} resamples; no interval, no comparison"
        )
    low = comparison.low
    if mode == "superiority":
        rule = f"superiority: interval low {low:+.4f} must exceed +{margin:.4g}"
    else:
        rule = f"non-inferiority: interval low {low:+.4f} must be at least -{margin:.4g}"
    return passes(low, mode, margin), rule
