"""`mlops rollout analyze|advance|promote|abort`: read the prediction log, judge the running
step (`analysis.analyse`) and carry the verdict out as the next reviewable change of
`deploy/<target>.json` (`pipeline.deploy.rollout`), with the evidence in
`reports/rollout/<target>.json`, in one journaled transaction.

`advance` and `promote` by hand run the same analysis and refuse unless it allows the step
(`--force` steps anyway, recorded as `by: hand`); `abort` always may. The log is the target's
`serve.log.dir` on the serving machine, or a directory `mlops logs fetch` downloaded (`--logs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.deploy import rollout as steps
from pipeline.errors import GateError
from pipeline.paths import release_path, rollout_report_path
from pipeline.release_record import read_record
from pipeline.rollout import analysis

VERDICT_ACTION = {
    analysis.ADVANCE: steps.ADVANCE,
    analysis.PROMOTE: steps.PROMOTE,
    analysis.ABORT: steps.ABORT,
}


@dataclass
class Analysed:
    report: dict[str, Any]
    outcome: steps.StepOutcome | None  # what was applied, if anything


def log_entries(log_dir: Path) -> Iterator[dict[str, Any]]:
    """Every prediction log entry under `log_dir`, in write order (rotated files first)."""
    from pipeline.deploy.service.predlog import PREDICTIONS, iter_entries, log_paths

    for path in log_paths(log_dir, PREDICTIONS):
        yield from iter_entries(path)


def _service(root: Path, target: str) -> None:
    """A declared service target (a ConfigError naming the declared ones otherwise)."""
    from pipeline import config

    config.load_config(root, hyperparameters=False).deploy.service(target)


def analyse(root: Path, target: str, log_dir: Path | None = None) -> dict[str, Any]:
    """The analysis of `target`'s running rollout from its prediction log and feedback."""
    from pipeline import config
    from pipeline.deploy.service.snapshot import feedback_labels

    params = config.load_config(root, hyperparameters=False)
    params.deploy.service(target)
    spec = params.deploy.target(target)
    record = steps.running(root, target)
    strategy = spec.strategy
    assert strategy is not None  # a running rollout is on a service target
    directory = log_dir if log_dir is not None else params.deploy.service(target).log_dir
    if not directory.is_dir():
        raise GateError(
            f"{directory}: no prediction log to analyse",
            hint="run it where the service logs (serve.log.dir), or name a fetched copy with "
            "--logs DIR (`mlops logs fetch`)",
        )
    return analysis.analyse(
        log_entries(directory),
        feedback_labels(directory),
        record,
        strategy.analysis,
        params.task,
    )


def analyse_and_apply(
    root: Path, target: str, log_dir: Path | None = None, *, apply: bool = False
) -> Analysed:
    """Analyse; with `apply`, carry out an advance, promote or abort verdict (a wait changes
    nothing)."""
    report = analyse(root, target, log_dir)
    action = VERDICT_ACTION.get(report["verdict"])
    if not apply or action is None:
        return Analysed(report, None)
    outcome = steps.step(
        root,
        target,
        action,
        by="analysis",
        summary=analysis.summary(report),
        report=(rollout_report_path(target), report),
    )
    return Analysed(report, outcome)


def by_hand(
    root: Path,
    target: str,
    action: str,
    *,
    log_dir: Path | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Analysed:
    """`mlops rollout advance|promote|abort`: advance and promote need the analysis to allow
    them (or `force`); abort always may."""
    _service(root, target)
    if action == steps.ABORT:
        outcome = steps.step(root, target, action, by="hand", summary=reason or "aborted by hand")
        return Analysed({}, outcome)
    record = steps.running(root, target)
    running = record.running_rollout
    assert running is not None
    if action == steps.PROMOTE and not running.last_step and not force:
        raise GateError(
            f"{target}: the rollout of {running.candidate.release} is at step "
            f"{running.step + 1} of {len(running.steps)}; promote comes after the last",
            hint=f"`mlops rollout advance --target {target}`, or --force to promote now",
        )
    report: dict[str, Any] = {}
    if not force:
        report = analyse(root, target, log_dir)
        allowed = {steps.ADVANCE: analysis.ADVANCE, steps.PROMOTE: analysis.PROMOTE}[action]
        if report["verdict"] != allowed:
            raise GateError(
                f"{target}: the analysis says {report['verdict']}, not {allowed}: "
                + analysis.summary(report),
                hint="wait for the hold (`mlops rollout analyze`), abort, or step anyway with "
                "--force (recorded as by hand)",
            )
    summary = analysis.summary(report) if report else (reason or "forced by hand")
    outcome = steps.step(
        root,
        target,
        action,
        by="analysis" if report else "hand",
        summary=summary,
        report=(rollout_report_path(target), report) if report else None,
    )
    return Analysed(report, outcome)


def status_line(root: Path, target: str) -> str | None:
    """`mlops status`'s line for a target's rollout, or None when there is none."""
    record = read_record(root / release_path(target), target)
    rollout = record.rollout
    if rollout is None:
        return None
    if rollout.status != "running":
        return f"rollout of {rollout.candidate.release} aborted: {rollout.reason}"
    return (
        f"{rollout.strategy} rollout of {rollout.candidate.release} against {record.release}: "
        f"step {rollout.step + 1}/{len(rollout.steps)}, weight {rollout.weight}"
    )
