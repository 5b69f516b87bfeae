"""Stage `reference`: summarise the training split once, so monitoring never re-reads it.

Runs right after `prepare` (develop cannot import monitor, hence its own stage; the outcome is
the same: one reference per training data). Reads `data/prepared/train.parquet`, builds the
drift reference over the monitored columns (`monitored_columns`: features only, numeric
vs categorical by the declared type, datetime features left out) in the configured mode
(`monitor.drift.mode`: exact keeps every value, sketch a quantile sketch), and writes
`data/reference/` byte-reproducibly.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import load_params
from pipeline.errors import DataError
from pipeline.monitor.paths import REFERENCE_DIR, TRAIN_SPLIT
from pipeline.profile.reference import build_reference, monitored_columns
from pipeline.settings import DatasetSpec
from pipeline.stage import log, run


def main(argv: Sequence[str]) -> None:
    import pandas as pd

    params = load_params(hyperparameters=False)
    dataset = DatasetSpec.from_params(params["dataset"])
    columns = monitored_columns(dataset)
    if not columns:
        raise DataError(
            "the dataset declares no numeric or categorical feature to monitor",
            hint="declare feature columns in conf/dataset/ (datetime features are not monitored)",
        )
    if not TRAIN_SPLIT.is_file():
        raise DataError(f"{TRAIN_SPLIT} does not exist", hint="run `dvc repro prepare`")
    train = pd.read_parquet(TRAIN_SPLIT, columns=list(columns))
    reference = build_reference(train, columns, mode=params["monitor"]["drift"]["mode"])
    reference.save(REFERENCE_DIR)
    kinds = sorted(set(columns.values()))
    log(
        f"reference: {len(columns)} column(s) ({', '.join(kinds)}) from {reference.rows} "
        f"training rows, {reference.mode} mode, in {REFERENCE_DIR}/"
    )


if __name__ == "__main__":
    run(main)
