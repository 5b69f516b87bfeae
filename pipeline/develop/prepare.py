"""Stage `prepare`: drop rows without a target (as declared), coerce to the declared types and
split into train / test / production pool by a stable hash.

Outputs `data/prepared/{train,test,pool}.parquet` and `reports/develop/split.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.config import load_params
from pipeline.data import assign_splits, coerce, drop_missing_target, read_table, write_parquet
from pipeline.develop.paths import SPLIT_REPORT, SPLITS, VALIDATE_REPORT, raw_path, split_path
from pipeline.errors import DataError
from pipeline.io import read_json, write_json
from pipeline.settings import DatasetSpec, SplitSpec
from pipeline.stage import log, run


def main(argv: Sequence[str]) -> None:
    params = load_params(hyperparameters=False)
    spec = DatasetSpec.from_params(params["dataset"])
    split = SplitSpec.from_params(params["split"])
    if read_json(VALIDATE_REPORT)["data"]["status"] != "passed":
        raise DataError(f"{VALIDATE_REPORT} does not say the data passed; run `dvc repro validate`")
    frame = read_table(raw_path(spec.name), "parquet")
    frame, dropped = drop_missing_target(frame, spec)
    typed = coerce(frame, spec)
    labels = assign_splits(typed, spec, split)
    summary: dict[str, Any] = {
        "method": split.method,
        "dropped_missing_target": dropped,
        "rows": {},
        "classes": {},
    }
    for name in SPLITS:
        part = typed.loc[labels == name].reset_index(drop=True)
        write_parquet(part, split_path(name))
        summary["rows"][name] = len(part)
        if spec.target_column.is_categorical:
            counts = part[spec.target].value_counts().sort_index()
            summary["classes"][name] = {str(k): int(v) for k, v in counts.items()}
    if summary["rows"]["train"] == 0 or summary["rows"]["test"] == 0:
        raise DataError(
            f"the split left {summary['rows']} rows: train and test both need rows",
            hint="check split.test_size / pool_size (or the dates of a time split)",
        )
    write_json(SPLIT_REPORT, summary)
    log(f"prepare: {summary['rows']} (dropped {dropped} row(s) without a target)")


if __name__ == "__main__":
    run(main)
