"""Where the monitor stages read and write: the artifact contract with dvc.yaml, in one place.

Monitoring reads the other layers' artifacts by their documented paths and formats (it never
imports `pipeline.develop` or `pipeline.deploy`): the prepared splits are Parquet files, a bundle
is a directory with `bundle.json` (and the drift reference in `reference/`), and
`deploy/<target>.json` names the released bundle.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.paths import PRODUCTION_DIR as PRODUCTION_DIR

# develop's and deploy's outputs, read by path
POOL_SPLIT = Path("data/prepared/pool.parquet")
CHAMPION_BUNDLE = Path("models/bundle")  # the champion's bundle (output of `package`)
DEPLOY_DIR = Path("deploy")  # deploy/<target>.json: the release a target should serve

# monitor's own
SIMULATED_DIR = Path("data/simulated")  # simulated windows (output of `simulate`)
SCENARIOS_FILE = "scenarios.json"  # in SIMULATED_DIR: what each simulated window injects
REPORT_DIR = Path("reports/monitor")  # the `monitor` stage's reports
MANUAL_REPORT_DIR = Path("reports/monitor-manual")  # `mlops monitor --input` (outside the graph)

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
METRICS_JSON = "metrics.json"
HISTORY_CSV = "history.csv"


def release_path(target: str) -> Path:
    return DEPLOY_DIR / f"{target}.json"
