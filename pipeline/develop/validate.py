"""Stage `validate`: check the raw data against the declared dataset schema.

Writes `reports/validate.json` (config and data checks, every violation with counts and example
rows) whether or not the data passes, then fails the stage on any violation so that nothing is
trained on data that breaks its declaration.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import load_params
from pipeline.data import check_data, read_table
from pipeline.develop.paths import VALIDATE_REPORT, raw_path
from pipeline.errors import DataError
from pipeline.io import sha256_file, write_json
from pipeline.settings import DatasetSpec
from pipeline.stage import log, run


def main(argv: Sequence[str]) -> None:
    spec = DatasetSpec.from_params(load_params(hyperparameters=False)["dataset"])
    path = raw_path(spec.name)
    frame = read_table(path, "parquet")
    report = check_data(frame, spec)
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
