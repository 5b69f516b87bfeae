"""Scoring a fitted model, shared by the bundle, the gates, the smoke test and batch scoring.

One definition of "the model's output" keeps the smoke test honest: the offline predictions in
a bundle, the smoke test's fresh-process predictions and `mlops predict` are all computed here,
and all equal the raw `model.predict` / `model.predict_proba` exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.bundle_format import ROW as ROW  # predictions.parquet: the row in the test split
from pipeline.windows import FLAGS_COLUMN, PREDICTION_COLUMN, PROBA_PREFIX

# The output columns of batch scoring are owned by `pipeline.windows` (the format of scored
# traffic), because `mlops logs import` and `mlops monitor --input` read them back.
PREDICTION = PREDICTION_COLUMN
FLAGS = FLAGS_COLUMN


def proba_column(cls: str) -> str:
    return f"{PROBA_PREFIX}{cls}"


def predict(model: Any, X: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, class probabilities or None) of `model` on `X`.

    A scikit-learn Pipeline is transformed once and its final estimator asked for both outputs:
    exactly what `Pipeline.predict` and `Pipeline.predict_proba` compute, at the cost of one
    preprocessing pass instead of two (batch scoring is measured against raw `model.predict`).
    """
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        Xt = model[:-1].transform(X)
        final = steps[-1][1]
    else:
        Xt, final = X, model
    pred = np.asarray(final.predict(Xt))
    proba = None
    if task == "classification" and hasattr(final, "predict_proba"):
        proba = np.asarray(final.predict_proba(Xt), dtype=float)
    pred = pred.astype(str).astype(object) if task == "classification" else pred.astype(float)
    return pred, proba


def predictions_frame(
    pred: np.ndarray, proba: np.ndarray | None, classes: list[str] | None, rows: Any = None
) -> pd.DataFrame:
    """The predictions.parquet layout: row, prediction, proba_<class>... (in `classes` order)."""
    import pandas as pd

    columns: dict[str, Any] = {}
    if rows is not None:
        columns[ROW] = np.asarray(rows, dtype=np.int64)
    columns[PREDICTION] = pred
    if proba is not None and classes is not None:
        for i, cls in enumerate(classes):
            columns[proba_column(cls)] = proba[:, i]
    return pd.DataFrame(columns)
