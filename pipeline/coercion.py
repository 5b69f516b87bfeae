"""Turning checked data into the model frame `pipeline.values` defines, the one the service and
batch scoring build from requests and files too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline import values
from pipeline.errors import DataError
from pipeline.settings import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd


def coerce(df: pd.DataFrame, spec: DatasetSpec, *, with_target: bool = True) -> pd.DataFrame:
    """Declared columns in declared order, as the model frame `pipeline.values` defines: numbers
    as float64 (NaN for missing), categories and bools as canonical text (NaN for missing),
    dates as datetime64[ns]. The service and batch scoring build their frames the same way.
    Assumes `check_data` passed."""
    kinds: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for col in spec.columns:
        if col.role == "target" and not with_target:
            continue
        if col.name not in df.columns:
            raise DataError(f"column {col.name!r} is missing", hint="check the data file")
        kinds[col.name] = col.type
        parsed[col.name], _ = values.parse_column(col.type, df[col.name])
    frame = values.model_frame(kinds, parsed)
    frame.index = df.index
    return frame


def drop_missing_target(df: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    mask = df[spec.target].isna().to_numpy()
    return df.loc[~mask].reset_index(drop=True), int(mask.sum())
