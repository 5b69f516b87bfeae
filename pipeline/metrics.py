"""Metrics, defined once: the cross-validation scorers, the test-split metrics and the gates
all use these definitions, so "roc_auc" means the same thing in selection, deployment and
monitoring.

ROC AUC is the one-vs-rest macro average over the model's classes that occur in the scored
rows (binary: the second class's probability against the first). A class absent from a small
test split (or a cross-validation fold) is left out of the average instead of making the whole
metric undefined; the metric is undefined only when the rows hold a single class, and then
`explain` says so. Nothing here returns NaN: a metric is a number or absent with a reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipeline.settings import MINIMIZED_METRICS, metrics_for

# scikit-learn scorer names; minimized metrics are negated by scikit-learn, and flipped back here.
_SCORERS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1_macro": "f1_macro",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


def roc_auc(y_true: Any, proba: Any, classes: Sequence[Any]) -> float | None:
    """ROC AUC by the definition above; None when the rows hold fewer than two classes."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    labels = list(classes)
    if len(labels) == 2:
        positive = y == labels[1]
        if positive.all() or not positive.any():
            return None
        return float(roc_auc_score(positive, proba[:, 1]))
    if len(set(y.tolist())) < 2:
        return None
    present = [i for i, c in enumerate(labels) if (y == c).any()]
    if not present:
        return None
    return float(np.mean([roc_auc_score(y == labels[i], proba[:, i]) for i in present]))


def log_loss(y_true: Any, proba: Any, classes: Sequence[Any]) -> float | None:
    """Log loss over the model's classes; None when a row's class is unknown to the model."""
    from sklearn.metrics import log_loss as sk_log_loss

    labels = list(classes)
    if not set(np.asarray(y_true).tolist()) <= set(labels):
        return None
    return float(sk_log_loss(y_true, proba, labels=labels))


def _roc_auc_scorer(estimator: Any, X: Any, y: Any) -> float:
    """Cross-validation scorer for multiclass ROC AUC by the shared definition (scikit-learn's
    `roc_auc_ovr` fails on a fold that lacks a class)."""
    value = roc_auc(y, estimator.predict_proba(X), estimator.classes_)
    return float("nan") if value is None else value


def _neg_log_loss_scorer(estimator: Any, X: Any, y: Any) -> float:
    """Cross-validation scorer for log loss over the model's classes (scikit-learn's
    `neg_log_loss` fails on a fold that lacks a class); negated like scikit-learn's."""
    value = log_loss(y, estimator.predict_proba(X), estimator.classes_)
    return float("nan") if value is None else -value


def scorers(task: str, n_classes: int = 2) -> dict[str, str | Callable[..., float]]:
    """Scorers for every metric of `task`, for `cross_validate` / `*SearchCV`. Binary ROC AUC
    keeps scikit-learn's scorer (it ranks by the decision function where there is one; the
    ranking, and so the AUC, is the probability's)."""
    out: dict[str, str | Callable[..., float]] = {}
    for metric in metrics_for(task):
        if metric == "roc_auc":
            out[metric] = "roc_auc" if n_classes <= 2 else _roc_auc_scorer
        elif metric == "log_loss":
            out[metric] = "neg_log_loss" if n_classes <= 2 else _neg_log_loss_scorer
        else:
            out[metric] = _SCORERS[metric]
    return out


def from_scorer(metric: str, value: float) -> float:
    """Undo scikit-learn's sign flip for minimized metrics (its scorers are `oriented`)."""
    return oriented(metric, value)


def explain(
    task: str,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Every metric of `task` on one set of predictions: (the values that are defined, and why
    each other one is not). Probabilities are needed for roc_auc and log_loss; they are skipped,
    not guessed, when absent."""
    from sklearn import metrics as m

    if task == "regression":
        return {
            "rmse": float(m.root_mean_squared_error(y_true, y_pred)),
            "mae": float(m.mean_absolute_error(y_true, y_pred)),
            "r2": float(m.r2_score(y_true, y_pred)),
        }, {}
    with warnings.catch_warnings():
        # balanced accuracy averages recall over the classes present in the rows: a predicted
        # class that the rows lack is expected on a small split, not worth a warning
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = float(m.balanced_accuracy_score(y_true, y_pred))
    out = {
        "accuracy": float(m.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "f1_macro": float(m.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    why: dict[str, str] = {}
    if proba is None or classes is None:
        for metric in ("roc_auc", "log_loss"):
            why[metric] = "the model gives no class probabilities"
        return out, why
    present = sorted({str(v) for v in np.asarray(y_true).tolist()})
    auc = roc_auc(y_true, proba, classes)
    if auc is None:
        why["roc_auc"] = (
            f"undefined on rows that hold a single class ({', '.join(present) or 'no rows'})"
        )
    else:
        out["roc_auc"] = auc
    loss = log_loss(y_true, proba, classes)
    if loss is None:
        unknown = sorted(set(present) - {str(c) for c in classes})
        why["log_loss"] = f"the rows hold classes the model does not know ({', '.join(unknown)})"
    else:
        out["log_loss"] = loss
    return out, why


def compute(
    task: str,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """The defined metrics of `task` on one set of predictions (see `explain` for the others)."""
    return explain(task, y_true, y_pred, proba, classes)[0]


# ------------------------------------------------------------------------- which way is better
# `settings.MINIMIZED_METRICS` says which metrics are losses; these two functions are the only
# code that turns that into a direction, for selection, floors, the gate's comparison, the
# rollback policy and monitoring alike.
def oriented(metric: str, value: float) -> float:
    """`value` on a scale where higher is better: negated for a minimized metric (a loss).
    scikit-learn orients its scorers this way, so this also undoes their sign flip."""
    return -float(value) if metric in MINIMIZED_METRICS else float(value)


def improvement(metric: str, new: Any, old: Any) -> Any:
    """How much `new` is better than `old` on `metric` (positive: better; works elementwise on
    arrays): `new - old` for a maximized metric, `old - new` for a minimized one."""
    return old - new if metric in MINIMIZED_METRICS else new - old
