"""Stage `prepare`: drop rows without a target (as declared), coerce to the declared types and
split into train / test / production pool by a stable hash.

Labelled production rows appended by `mlops maintain --apply` (`data/feedback/<dataset>/`)
are checked against the same declared schema and join the TRAIN split only: the test split stays
comparable across retrains, and no model is ever judged on rows it was fed back.

Outputs `data/prepared/{train,test,pool}.parquet` and `reports/develop/split.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.coercion import coerce, drop_missing_target
from pipeline.config import load_config
from pipeline.data_checks import check_data
from pipeline.errors import DataError
from pipeline.io import read_json, write_json
from pipeline.paths import (
    FEEDBACK_DIR,
    SPLIT_REPORT,
    SPLITS,
    VALIDATE_REPORT,
    feedback_dir,
    raw_path,
    split_path,
    stray_feedback,
)
from pipeline.settings import DatasetSpec
from pipeline.splits import assign_splits
from pipeline.stage import log, run
from pipeline.tables import read_table, write_parquet
from pipeline.windows import is_reserved

if TYPE_CHECKING:
    import pandas as pd


def read_feedback(directory: Path, spec: DatasetSpec) -> tuple[pd.DataFrame, list[str]]:
    """Every feedback file (in name order), checked against the declared schema and coerced;
    reserved columns (`__request_id__`, ...) are provenance, not features, and are dropped."""
    import pandas as pd

    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    # Production traffic carries the model's inputs and the label, not id or ignored columns.
    spec = replace(
        spec, key=None, columns=tuple(c for c in spec.columns if c.role in ("feature", "target"))
    )
    frames = []
    for path in files:
        raw = read_table(path, "parquet")
        raw = raw[[c for c in raw.columns if not is_reserved(c)]]
        report = check_data(raw, spec)
        if not report.ok:
            lines = "\n".join(f"  - {v.render()}" for v in report.violations)
            raise DataError(
                f"{path}: feedback rows break the declared schema:\n{lines}",
                hint="feedback is written by `mlops maintain --apply`; fix or remove "
                "the file (and its .dvc pointer)",
            )
        kept, _ = drop_missing_target(raw, spec)
        frames.append(coerce(kept, spec))
    names = [p.name for p in files]
    if not frames:
        return pd.DataFrame(), names
    return pd.concat(frames, ignore_index=True), names


def main(argv: Sequence[str]) -> None:
    params = load_config(hyperparameters=False)
    spec, split = params.dataset, params.split
    if read_json(VALIDATE_REPORT)["data"]["status"] != "passed":
        raise DataError(f"{VALIDATE_REPORT} does not say the data passed; run `dvc repro validate`")
    frame = read_table(raw_path(), "parquet")
    frame, dropped = drop_missing_target(frame, spec)
    typed = coerce(frame, spec)
    labels = assign_splits(typed, spec, split)
    stray = stray_feedback(Path.cwd())
    if stray:
        raise DataError(
            f"{', '.join(p.name for p in stray)}: feedback files directly under "
            f"{FEEDBACK_DIR}/, not in a dataset's folder",
            hint=f"move each into {FEEDBACK_DIR}/<the dataset it came from>/ (with its .dvc "
            "file) so only that dataset trains on it",
        )
    feedback, files = read_feedback(feedback_dir(spec.name), spec)
    summary: dict[str, Any] = {
        "method": split.method,
        "dropped_missing_target": dropped,
        "feedback": {"files": files, "rows": len(feedback)},
        "rows": {},
        "classes": {},
    }
    import pandas as pd

    for name in SPLITS:
        part = typed.loc[labels == name].reset_index(drop=True)
        if name == "train" and len(feedback):
            part = pd.concat([part, feedback], ignore_index=True)
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
    log(
        f"prepare: {summary['rows']} (dropped {dropped} row(s) without a target; "
        f"{len(feedback)} feedback row(s) added to train)"
    )


if __name__ == "__main__":
    run(main)
