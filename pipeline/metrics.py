"""Metrics, defined once: the cross-validation scorers, the test-split metrics and the gates
all use these definitions, so "roc_auc" means the same thing in selection, deployment and
monitoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.settings import MINIMIZED_METRICS, metrics_for

# scikit-learn scorer names; minimized metrics are negated by scikit-learn, and flipped back here.
_SCORERS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "f1_macro": "f1_macro",
    "log_loss": "neg_log_loss",
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
}


def scorers(task: str, n_classes: int = 2) -> dict[str, str]:
    """Scorer names for every metric of `task`, for `cross_validate` / `*SearchCV`."""
    out = {}
    for metric in metrics_for(task):
        if metric == "roc_auc":
            out[metric] = "roc_auc" if n_classes <= 2 else "roc_auc_ovr"
        else:
            out[metric] = _SCORERS[metric]
    return out


def from_scorer(metric: str, value: float) -> float:
    """Undo scikit-learn's sign flip for minimized metrics."""
    return -float(value) if metric in MINIMIZED_METRICS else float(value)


def compute(
    task: str,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Every metric of `task` on one set of predictions (probabilities needed for roc_auc and
    log_loss; they are skipped, not guessed, when absent)."""
    from sklearn import metrics as m

    if task == "regression":
        return {
            "rmse": float(m.root_mean_squared_error(y_true, y_pred)),
            "mae": float(m.mean_absolute_error(y_true, y_pred)),
            "r2": float(m.r2_score(y_true, y_pred)),
        }
    out = {
        "accuracy": float(m.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(m.balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(m.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    if proba is not None and classes is not None:
        labels = list(classes)
        present = set(np.asarray(y_true).tolist())
        if len(present) >= 2:
            if len(labels) == 2:
                out["roc_auc"] = float(
                    m.roc_auc_score(np.asarray(y_true) == labels[1], proba[:, 1])
                )
            elif present == set(labels):
                out["roc_auc"] = float(
                    m.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)
                )
        out["log_loss"] = float(m.log_loss(y_true, proba, labels=labels))
    return out


def better(metric: str, a: float, b: float) -> bool:
    """Whether value `a` is strictly better than `b` for `metric`."""
    return a < b if metric in MINIMIZED_METRICS else a > b


def meets_floor(metric: str, value: float, floor: float) -> bool:
    """A floor is the worst acceptable value: a minimum for maximized metrics, a maximum else."""
    return value <= floor if metric in MINIMIZED_METRICS else value >= floor
