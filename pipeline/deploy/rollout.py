"""`mlops rollout advance|promote|abort`: the steps of a progressive rollout, each a reviewable
change of `deploy/<target>.json` (the rollout's history is the file's git history).

A rollout starts with `mlops release` on a target whose strategy is shadow or canary
(`pipeline/deploy/release.py`). From then on the record names the stable release, the candidate
and where the rollout is (step, weight); the service routes by it and `mlops sync` follows it.

* advance: the next step (its weight, its hold); at the last step there is none: promote.
* promote: the candidate's own record replaces the stable one (exactly what a direct release
  would have written; its parent is the stable release).
* abort: the rollout is marked aborted with its reason (the stable release serves everything
  again) and the candidate is rejected the way `mlops rollback` rejects a release: added to
  `deploy.targets.<target>.rejected` in the generated pins file, params.yaml recomposed, so the
  gate never proposes that bundle again.

Whether a step is due is the analysis' call (`pipeline/rollout/`, which reads the prediction
log); it passes its verdict and a summary here, written into the record's `decisions`. A person
may step by hand (`by="hand"`). Every transition is journaled like a release: all or nothing,
also when killed, and a refused one leaves every file byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import GateError
from pipeline.io import atomic_write_text, dumps_json, write_json
from pipeline.journal import Journal, transaction
from pipeline.paths import release_path
from pipeline.release_record import (
    ReleaseRecord,
    read_record,
    rollout_aborted,
    rollout_promoted,
    rollout_stepped,
)

ADVANCE, PROMOTE, ABORT = "advance", "promote", "abort"


@dataclass
class StepOutcome:
    target: str
    action: str  # advance | promote | abort
    candidate: str
    stable: str
    step: int  # the step the rollout is at afterwards
    weight: float
    detail: str


def running(root: Path, target: str) -> ReleaseRecord:
    """The target's record, which must have a running rollout (a GateError otherwise)."""
    record = read_record(root / release_path(target), target)
    if record.running_rollout is None:
        aborted = record.rollout
        raise GateError(
            f"{release_path(target)}: no rollout is running on {target}"
            + (f" (the rollout of {aborted.candidate.release} was aborted)" if aborted else ""),
            hint="a rollout starts with `mlops release` on a target whose strategy is shadow "
            "or canary (deploy.targets.<target>.strategy.kind)",
        )
    return record


def step(
    root: Path,
    target: str,
    action: str,
    *,
    by: str = "hand",
    summary: str | None = None,
    report: tuple[Path, Mapping[str, Any]] | None = None,
) -> StepOutcome:
    """Advance, promote or abort the running rollout of `target`; `report` (path, content) is
    the analysis evidence, written in the same transaction."""
    with transaction(root, f"mlops rollout {action}") as journal:
        return _step(root, target, action, by, summary, report, journal)


def _step(
    root: Path,
    target: str,
    action: str,
    by: str,
    summary: str | None,
    report: tuple[Path, Mapping[str, Any]] | None,
    journal: Journal,
) -> StepOutcome:
    record = running(root, target)
    rollout = record.running_rollout
    assert rollout is not None and record.release is not None
    candidate = str(rollout.candidate.release)
    if action == ADVANCE:
        if rollout.last_step:
            raise GateError(
                f"{target}: the rollout of {candidate} is at its last step "
                f"({rollout.step + 1} of {len(rollout.steps)}); nothing to advance to",
                hint=f"promote it: `mlops rollout promote --target {target}`",
            )
        data = rollout_stepped(record, by, summary)
    elif action == PROMOTE:
        if not rollout.last_step and by != "hand":
            raise GateError(f"{target}: the analysis may promote only from the last step")
        data = rollout_promoted(record)
    elif action == ABORT:
        data = rollout_aborted(record, by, summary or "aborted by hand")
        _reject(root, target, candidate, journal)
    else:  # pragma: no cover - the CLI offers only these
        raise ValueError(action)
    if report is not None:
        path, content = report
        journal.file(path)
        write_json(root / path, dict(content))
    journal.file(release_path(target))
    atomic_write_text(root / release_path(target), dumps_json(data))
    after = ReleaseRecord(target, data["release"], data).rollout
    return StepOutcome(
        target,
        action,
        candidate,
        record.release,
        -1 if action == PROMOTE or after is None else after.step,
        0.0 if after is None else after.weight,
        summary or "",
    )


def _reject(root: Path, target: str, candidate: str, journal: Journal) -> None:
    """Add the candidate to the target's rejected releases (the generated pins file, as
    `mlops rollback` does) and recompose params.yaml, journaled with the record."""
    from pipeline import config
    from pipeline.deploy.release import read_pins, target_pins, write_pins_and_compose

    config.check(root)  # recomposing must change nothing but the rejected list
    spec = config.load_config(root, hyperparameters=False).deploy.target(target)
    pins = read_pins(root)
    entry = target_pins(pins, target)
    entry["rejected"] = list(dict.fromkeys([*spec.rejected, candidate]))
    write_pins_and_compose(root, pins, journal)
