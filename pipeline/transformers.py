"""The project's own scikit-learn transformers: few, stateless, and trusted by the model loader.

Model files are loaded with an explicit trusted-type list (never a bare pickle), so any class
that ends up inside a fitted pipeline must be listed, by its exact name, in
`pipeline.model_types.PREPROCESSING`; keeping them here keeps that list short and reviewable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class DateTimeExpander(TransformerMixin, BaseEstimator):
    """Expand datetime columns into numeric parts (year, month, weekday, ...).

    Accepts datetimes or ISO strings, so the same fitted pipeline scores a Parquet file (typed
    datetimes) and a JSON request (strings); unparseable or missing values become NaN for the
    imputer that follows.
    """

    def __init__(self, parts: Sequence[str] = ("year", "month", "day_of_week")) -> None:
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DateTimeExpander:
        self.n_features_in_ = np.asarray(X).shape[1] if np.ndim(X) == 2 else 1
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        return self

    def transform(self, X: Any) -> np.ndarray:
        import pandas as pd

        frame = X if hasattr(X, "columns") else pd.DataFrame(np.asarray(X, dtype=object))
        blocks = []
        for name in frame.columns:
            col = frame[name]
            if not pd.api.types.is_datetime64_any_dtype(col):
                col = pd.to_datetime(col.astype("string"), errors="coerce", format="ISO8601")
            for part in self.parts:
                blocks.append(getattr(col.dt, part).to_numpy(dtype=float, na_value=np.nan))
        return np.column_stack(blocks) if blocks else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = (
            input_features
            if input_features is not None
            else getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        )
        return np.asarray([f"{n}_{p}" for n in names for p in self.parts], dtype=object)
