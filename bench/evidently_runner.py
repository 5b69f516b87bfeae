"""Run Evidently 0.7's DataDriftPreset on Parquet files; executed by the *Evidently* venv only.

Evidently is never a dependency of the project: ``bench/bench_drift.py`` and the parity test in
``tests/monitor`` start this script with the interpreter of a separate virtualenv (see
bench/README.md) and exchange data through Parquet and JSON files.

    python evidently_runner.py SPEC.json OUT.json

SPEC: {"cases": [{"name", "reference", "current", "numeric": [...], "categorical": [...],
"per_column_method": {...} | null, "per_column_threshold": {...} | null, "drift_share": 0.5,
"repeat": 1}]}. OUT: per case, per column {"method", "score", "threshold", "drifted"} with our
method names, the dataset share, wall seconds and the peak extra RSS in MiB (or {"error": ...}).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import traceback
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the watermark is the process peak
        Path("/proc/self/clear_refs").write_text("5")


def _names() -> dict[str, str]:
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    out = {}
    for name, by_type in _registered_stat_tests.items():
        for test in by_type.values():
            out[test.display_name] = name
    return out


def _run_case(case: dict, names: dict[str, str]) -> dict:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = case["numeric"] + case["categorical"]
    ref = pd.read_parquet(case["reference"], columns=columns)
    cur = pd.read_parquet(case["current"], columns=columns)
    definition = DataDefinition(
        numerical_columns=case["numeric"], categorical_columns=case["categorical"]
    )
    preset = DataDriftPreset(
        drift_share=case.get("drift_share", 0.5),
        per_column_method=case.get("per_column_method"),
        per_column_threshold=case.get("per_column_threshold"),
    )
    _reset_peak()
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    for _ in range(case.get("repeat", 1)):
        report = Report([preset], include_tests=True)
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
    seconds = (time.perf_counter() - start) / case.get("repeat", 1)
    peak = _status_kib("VmHWM")
    return _extract(snapshot.dict(), names) | {
        "seconds": seconds,
        "peak_extra_mib": (peak - base) / 1024,
    }


def _extract(data: dict, names: dict[str, str]) -> dict:
    columns: dict[str, dict] = {}
    share = count = None
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share, count = metric["value"]["share"], metric["value"]["count"]
        elif config["type"].endswith("ValueDrift"):
            score = metric["value"]
            columns[config["column"]] = {
                "method": names.get(config["method"], config["method"]),
                "score": score if isinstance(score, float) and math.isfinite(score) else None,
                "threshold": config["threshold"],
                "drifted": None,
            }
    for test in data["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            columns[params["column"]]["drifted"] = test["status"] == "FAIL"
    return {"columns": columns, "share": share, "count": count}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    names = _names()
    out = {}
    for case in spec["cases"]:
        try:
            out[case["name"]] = _run_case(case, names)
        except Exception as exc:  # noqa: BLE001 - Evidently's own failures are a result here
            out[case["name"]] = {
                "error": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(limit=3),
            }
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
