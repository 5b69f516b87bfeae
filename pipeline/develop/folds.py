"""Cross-validation folds and fold scores, shared by `train` (the candidates) and `evaluate`
(the trivial baseline, scored on the very same folds so that its floors compare like with
like)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline import metrics
from pipeline.settings import SplitSpec, TrainSpec


def make_cv(task: str, split: SplitSpec, train: TrainSpec) -> Any:
    """Folds that respect the split: grouped when groups were kept apart, stratified for classes."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    if split.method == "group":
        return GroupKFold(n_splits=train.cv, shuffle=True, random_state=train.seed)
    if task == "classification":
        return StratifiedKFold(n_splits=train.cv, shuffle=True, random_state=train.seed)
    return KFold(n_splits=train.cv, shuffle=True, random_state=train.seed)


def cv_summary(metric: str, raw: Any) -> dict[str, Any]:
    """Mean, std and folds of one metric's fold scores. A fold on which the metric is undefined
    (ROC AUC on a grouped fold holding one class) is kept as null and counted, and the mean is
    over the other folds: never a NaN, and null when no fold defines it."""
    folds = [None if np.isnan(v) else metrics.from_scorer(metric, v) for v in raw]
    defined = [v for v in folds if v is not None]
    out: dict[str, Any] = {
        "mean": float(np.mean(defined)) if defined else None,
        "std": float(np.std(defined)) if defined else None,
        "folds": folds,
    }
    if len(defined) < len(folds):
        out["undefined_folds"] = len(folds) - len(defined)
    return out
