"""Stage `validate`: check the raw data against the declared dataset schema, and the target
against what the task needs (two classes or more for classification).

Writes `reports/validate.json` (config and data checks, every violation with counts and example
rows) whether or not the data passes, then fails the stage on any violation so that nothing is
trained on data that breaks its declaration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipeline.config import load_config
from pipeline.data_checks import Violation, check_data
from pipeline.errors import DataError
from pipeline.io import sha256_file, write_json
from pipeline.paths import VALIDATE_REPORT, raw_path
from pipeline.settings import DatasetSpec
from pipeline.stage import log, run
from pipeline.tables import read_table
from pipeline.values import canonical_category

if TYPE_CHECKING:
    import pandas as pd


def target_violations(frame: pd.DataFrame, spec: DatasetSpec, task: str) -> list[Violation]:
    """What the task needs of the target beyond its column declaration: two classes or more
    for classification, more than one value for regression. Otherwise training ends in a
    traceback from deep inside scikit-learn instead of a message about the data."""
    if spec.target not in frame.columns:
        return []  # reported as a missing column
    labels = frame[spec.target].dropna()
    if task == "classification":
        values = sorted({canonical_category(v) for v in labels})
        if len(values) < 2:
            only = f"every labelled row is {values[0]!r}" if values else "no row has a label"
            return [
                Violation(
                    "single_class",
                    spec.target,
                    len(labels),
                    f"a classification target needs at least two classes; {only} "
                    "(check the data, or dataset.target)",
                )
            ]
    elif len(labels) and labels.nunique() < 2:
        return [
            Violation(
                "constant_target",
                spec.target,
                len(labels),
                f"a regression target needs more than one value; every labelled row is "
                f"{labels.tolist()[0]!r} (check the data, or dataset.target)",
            )
        ]
    return []


def main(argv: Sequence[str]) -> None:
    params = load_config(hyperparameters=False)
    spec = params.dataset
    path = raw_path()
    frame = read_table(path, "parquet")
    report = check_data(frame, spec)
    report.violations += target_violations(frame, spec, params.task)
    write_json(
        VALIDATE_REPORT,
        {
            "dataset": spec.name,
            "file": {"path": path.as_posix(), "sha256": sha256_file(path)},
            "config": {"status": "passed"},
            "data": report.to_dict(),
        },
    )
    if report.missing_target_rows and spec.missing_target == "drop":
        log(f"validate: {report.missing_target_rows} row(s) without a target will be dropped")
    if not report.ok:
        lines = "\n".join(f"  - {v.render()}" for v in report.violations)
        raise DataError(
            f"{path}: {len(report.violations)} violation(s) of the declared schema of dataset "
            f"{spec.name!r}:\n{lines}",
            hint=f"fix the data or its declaration (conf/dataset/); details in {VALIDATE_REPORT}",
        )
    log(f"validate: {report.rows} rows x {report.columns} columns match the declared schema")


if __name__ == "__main__":
    run(main)
