"""Stage `ingest`: materialise the declared dataset as `data/raw/<name>.parquet`.

Bundled scikit-learn datasets are written out (so every dataset the graph reads is a file DVC
tracks); a user's CSV or Parquet file under `data/external/` is read as it is, with declared
category columns kept as text (so "01234" stays "01234"), and written as Parquet. No checking
happens here: that is `validate`'s job, and it reports every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import load_params
from pipeline.data import read_table, write_parquet
from pipeline.develop.paths import raw_path
from pipeline.settings import DatasetSpec
from pipeline.stage import log, run

if TYPE_CHECKING:
    import pandas as pd


# Class labels by name, so predictions, reports and the API read as words, not codes.
_LABELS = {
    "breast_cancer": ["malignant", "benign"],
}


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def load_bundled(loader: str) -> pd.DataFrame:
    """One of scikit-learn's bundled datasets as a frame with snake_case columns and a `target`."""
    from sklearn import datasets

    kwargs: dict[str, Any] = {"as_frame": True}
    if loader == "diabetes":
        kwargs["scaled"] = False  # original units: ages in years, sex as 1/2, ...
    bunch = getattr(datasets, f"load_{loader}")(**kwargs)
    frame = bunch.frame.rename(columns=snake)
    names = _LABELS.get(loader) or list(getattr(bunch, "target_names", []))
    if len(names) and loader != "diabetes":
        frame["target"] = [names[int(i)] for i in frame["target"]]
    if loader == "diabetes":
        frame["sex"] = frame["sex"].astype(int)
    return frame


def materialise(spec: DatasetSpec) -> pd.DataFrame:
    source = spec.source
    if source["kind"] == "sklearn":
        return load_bundled(source["loader"])
    text_columns = [c.name for c in spec.columns if c.type == "category"]
    return read_table(
        Path(source["path"]), source["format"], source.get("csv"), text_columns=text_columns
    )


def main(argv: Sequence[str]) -> None:
    spec = DatasetSpec.from_params(load_params(hyperparameters=False)["dataset"])
    frame = materialise(spec)
    out = raw_path(spec.name)
    write_parquet(frame, out)
    log(f"ingest: {len(frame)} rows x {frame.shape[1]} columns -> {out}")


if __name__ == "__main__":
    run(main)
