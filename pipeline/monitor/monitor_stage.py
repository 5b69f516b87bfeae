"""Stage `monitor`: every window of `data/production/` and `data/simulated/` against the bundle
released to `monitor.target` (and the drift reference that bundle carries); writes
`reports/monitor/`.

Pure: the result depends only on the declared deps (the windows, the target's release record,
the released bundles and the champion's bundle) and params; windows are ordered by id, and
nothing reads the clock. See `pipeline.monitor.assess` for the verdicts and
`pipeline.monitor.report` for the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.config import load_params
from pipeline.monitor.engine import load_context, monitor
from pipeline.monitor.paths import PRODUCTION_DIR, REPORT_DIR, SIMULATED_DIR
from pipeline.monitor.windowing import collect
from pipeline.stage import log, run


def main(argv: Sequence[str]) -> None:
    params = load_params(hyperparameters=False)
    ctx = load_context(Path.cwd(), params)
    windows = collect(
        {"production": PRODUCTION_DIR, "simulated": SIMULATED_DIR}, ctx.settings.windows
    )
    document, _ = monitor(windows, ctx, REPORT_DIR)
    summary = document["summary"]
    by_status = summary["by_status"]
    log(
        f"monitor: {summary['windows']} window(s) against bundle {ctx.bundle.id} "
        f"({ctx.bundle.source}, target {ctx.settings.target}): {by_status['ok']} ok, "
        f"{by_status['breach']} breach, {by_status['insufficient_data']} insufficient data; "
        f"newest {summary['newest']}: {summary['newest_status']}"
    )


if __name__ == "__main__":
    run(main)
