"""Stage `monitor`: every window of `data/production/` and `data/simulated/` against the bundle
released to `monitor.target` (and the drift reference that bundle carries); writes
`reports/monitor/`.

Pure: the result depends only on the declared deps (the windows, the target's release record,
the released bundles and the champion's bundle) and params; windows are ordered by id, and
nothing reads the clock. See `pipeline.monitor.assess` for the verdicts and
`pipeline.monitor.report` for the outputs. When the monitored bundle cannot judge this
project's traffic (another line of releases, or a bundle without a reference), the stage still
succeeds: it writes reports that say so and judge no window, so `dvc repro` stays usable and the
new line can be gated and released.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.monitor.engine import load_context, monitor
from pipeline.monitor.kept import KeptStore
from pipeline.monitor.retention import read_archive
from pipeline.monitor.windowing import survey
from pipeline.paths import (
    MONITOR_ARCHIVE,
    MONITOR_KEPT,
    MONITOR_REPORTS,
    PRODUCTION_DIR,
    SCENARIOS_FILE,
    SIMULATED_DIR,
)
from pipeline.stage import log, run


def counted(summary: Mapping[str, Any]) -> str:
    """`3 window(s): 1 ok, 2 breach` (statuses with no window left out)."""
    parts = [f"{n} {status.replace('_', ' ')}" for status, n in summary["by_status"].items() if n]
    return f"{summary['windows']} window(s)" + (": " + ", ".join(parts) if parts else "")


def log_line(document: Mapping[str, Any]) -> str:
    """One line naming what was judged, the production verdict, and the simulated scenarios."""
    mon, production = document["monitored"], document["summary"]
    simulated = document["simulated"]["summary"]
    if document["skipped"]:
        head = f"monitor: skipped, no window judged: {document['skipped']['reason']}"
    else:
        head = f"monitor: judged against {mon['label']}"
    line = f"{head}; production: {counted(production)}"
    if production["newest"] is not None:
        line += f", newest {production['newest']}: {production['newest_status']}"
    elif not document["skipped"]:
        line += " (no production window yet)"
    if simulated["windows"]:
        line += f"; simulated scenarios (not counted): {counted(simulated)}"
    return line


def main(argv: Sequence[str]) -> None:
    params = load_config(hyperparameters=False)
    ctx = load_context(Path.cwd(), params.monitor, params.dataset)
    kept = KeptStore(MONITOR_KEPT)
    traffic = survey(
        {"production": PRODUCTION_DIR, "simulated": SIMULATED_DIR},
        ctx.settings.windows,
        also={"simulated": (SCENARIOS_FILE,)},
        kept=kept,
    )
    archived = read_archive(MONITOR_ARCHIVE)
    document, _ = monitor(traffic, ctx, MONITOR_REPORTS, params.compute, kept, archived)
    kept.prune()
    log(log_line(document))
    log(f"monitor: {kept.hits} kept entries reused, {kept.misses} computed")
    if ctx.refusal is not None:
        for difference in ctx.refusal.differences:
            log(f"  - {difference}")
        log(f"  hint: {ctx.refusal.hint}")


if __name__ == "__main__":
    run(main)
