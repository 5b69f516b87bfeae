"""`mlops maintain --apply`: carry out the `maintain` stage's decision as a reviewable change.

A stage cannot feed data back into `prepare` (DVC refuses the cycle), so this command does it,
outside the graph, and records what it did in the committed ledger (maintain/ledger.json),
which the `maintain` stage reads: cooldowns work from it, and a decision already in it is
never applied twice.

* retrain: the labelled production rows of the decision's windows (deduplicated by request id
  where a row has one, else by the whole row and its time, against earlier feedback too),
  checked against the declared dataset schema and tagged with their release, window and time,
  become `data/feedback/<dataset>/<decision id>.parquet` (tracked with `dvc add`: training
  only, never the test split); then `dvc repro` retrains, and the new champion still has to pass the
  deploy gates before `mlops release` ships it. Every labelled row is counted as kept,
  duplicate or refused (schema violations, described) in the output and the ledger entry.
* rollback: the declarative pin of `mlops rollback` (a generated conf file, recomposed).
* alert: the message, recorded once.

Everything is checked first; the change is one transaction (`pipeline.journal`): a failure
undoes every file it wrote, so configs, data and the ledger stay byte-identical, and when the
command is killed half-way the next `mlops maintain --apply` rolls that back first, then
applies the decision whole.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import vcs
from pipeline.errors import DataError, MlopsError, ToolError
from pipeline.io import atomic_write_text, dumps_json, read_json, sha256_file
from pipeline.journal import Journal, transaction
from pipeline.maintain.stage import read_ledger
from pipeline.params import Params
from pipeline.paths import DECISION, DVC_LOCK, LEDGER, PINS_FILE, PRODUCTION_DIR, feedback_dir
from pipeline.windows import LABEL, RELEASE, REQUEST_ID, TIME, WINDOW

REPRO_ERROR_LINES = 12  # of dvc repro's stderr: the failing stage's message and DVC's verdict


@dataclass
class Applied:
    action: str
    decision_id: str | None
    message: str
    changed: list[str]


@dataclass
class FeedbackCounts:
    """How every labelled row of the decision's windows was accounted for: each one is kept,
    a duplicate (repeated in the windows, or already in earlier feedback) or refused (breaks
    the declared dataset schema); `problems` says why rows were refused."""

    labelled: int = 0
    kept: int = 0
    duplicate: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        return {
            "labelled": self.labelled,
            "kept": self.kept,
            "duplicate": self.duplicate,
            "refused": self.refused,
        }


# Frame-level violations (a declared column absent from the windows...) are not about rows:
# they refuse the apply instead of refusing every row.
_FRAME_CHECKS = ("empty", "missing_column", "extra_column", "duplicate_key")


def feedback_rows(root: Path, params: Params, windows: list[str]) -> tuple[Any, FeedbackCounts]:
    """Labelled rows of the decision's production windows, as training rows with provenance,
    and how every labelled row was counted.

    A row is identified by its request id where it has one (the latest label wins), else by
    all of its values: features, label and time. Rows already fed back (files under
    data/feedback/) are duplicates. Rows that break the declared dataset schema are refused:
    dropped, counted and described, never silently (the windows are immutable, so refusing the
    whole apply would block every later retrain on one bad label).
    """
    import pandas as pd

    from pipeline.monitor.windowing import collect

    spec = params.dataset
    wanted = set(windows)
    found = [
        w
        for w in collect({"production": root / PRODUCTION_DIR}, params.monitor.windows)
        if w.id in wanted
    ]
    if {w.id for w in found} != wanted:
        missing = sorted(wanted - {w.id for w in found})
        raise DataError(
            f"production windows {', '.join(missing)} are not in the workspace",
            hint="run `dvc pull data/production` and `dvc repro maintain`",
        )
    parts = []
    for window in found:
        rows = window.frame[window.frame[LABEL].notna()].copy()
        rows[WINDOW] = window.id
        parts.append(rows)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    counts = FeedbackCounts(labelled=len(frame))
    if len(frame) == 0:
        return frame, counts
    names = [c.name for c in spec.features]
    out = frame[[c for c in names if c in frame.columns]].copy()
    out[spec.target] = frame[LABEL].to_numpy()
    for col in (REQUEST_ID, RELEASE, WINDOW, TIME):
        out[col] = frame[col].to_numpy()
    keep = _first_seen(out, _earlier_feedback(root / feedback_dir(spec.name)), spec)
    counts.duplicate = int((~keep).sum())
    out = out.loc[keep].reset_index(drop=True)
    declared = replace(
        spec, key=None, columns=tuple(c for c in spec.columns if c.role in ("feature", "target"))
    )
    bad, counts.problems = _refused(out, declared)
    counts.refused = int(bad.sum())
    out = out.loc[~bad].reset_index(drop=True)
    counts.kept = len(out)
    return out, counts


def _row_keys(frame: Any, spec: Any) -> list[str]:
    """A row's identity without a request id: every declared value, its label and its time
    (`pipeline.splits.row_keys` over those columns)."""
    from pipeline.settings import ColumnSpec
    from pipeline.splits import row_keys

    columns = (
        *(c for c in spec.columns if c.role in ("feature", "target")),
        ColumnSpec(TIME, "datetime", "feature", False, None, None, None, "", False),
    )
    return row_keys(frame, replace(spec, key=None, columns=columns))


def _earlier_feedback(directory: Path) -> list[Any]:
    import pandas as pd

    return [pd.read_parquet(path) for path in sorted(directory.glob("*.parquet"))]


def _first_seen(frame: Any, earlier: list[Any], spec: Any) -> Any:
    """True for the rows to keep: the last row of each request id, the first of each identical
    row without one, and none that earlier feedback already holds."""
    import numpy as np
    import pandas as pd

    ids = frame[REQUEST_ID]
    has_id = ids.notna().to_numpy()
    keep = np.zeros(len(frame), dtype=bool)
    keep[has_id] = ~ids[has_id].duplicated(keep="last").to_numpy()
    seen_ids: set[str] = set()
    seen_rows: set[str] = set()
    for old in earlier:
        if REQUEST_ID in old.columns:
            seen_ids |= set(old[REQUEST_ID].dropna())
            anonymous = old.loc[old[REQUEST_ID].isna()]
        else:
            anonymous = old
        if TIME in old.columns:  # files written before times were recorded have no row keys
            seen_rows |= set(_row_keys(anonymous, spec))
    keep &= ~ids.isin(seen_ids).to_numpy()
    if (~has_id).any():
        rows = frame.loc[~has_id]
        keys = pd.Series(_row_keys(rows, spec), index=rows.index)
        fresh = ~keys.duplicated(keep="first") & ~keys.isin(seen_rows)
        keep[~has_id] = fresh.to_numpy()
    return keep


def _refused(frame: Any, spec: Any) -> tuple[Any, list[str]]:
    """The rows of `frame` that break `spec` (by `check_data`'s rules, narrowed down to rows by
    bisection: `check_data` reports counts and examples, not a mask) and the problems found."""
    import numpy as np

    from pipeline.data_checks import check_data

    columns = [c.name for c in spec.columns]
    checked = frame[[c for c in columns if c in frame.columns]]
    bad = np.zeros(len(frame), dtype=bool)
    if len(frame) == 0:
        return bad, []
    report = check_data(checked, spec)
    if report.ok:
        return bad, []
    whole = [v for v in report.violations if v.check in _FRAME_CHECKS]
    if whole:
        lines = "\n".join(f"  - {v.render()}" for v in whole)
        raise DataError(
            f"labelled production rows break the declared schema:\n{lines}",
            hint="fix the dataset declaration or the traffic; nothing was written",
        )

    def visit(lo: int, hi: int) -> None:
        if check_data(checked.iloc[lo:hi], spec).ok:
            return
        if hi - lo == 1:
            bad[lo] = True
            return
        mid = (lo + hi) // 2
        visit(lo, mid)
        visit(mid, hi)

    mid = len(frame) // 2
    if len(frame) == 1:
        bad[0] = True
    else:
        visit(0, mid)
        visit(mid, len(frame))
    problems = []
    for v in report.violations:
        where = f"column {v.column!r}: " if v.column else ""
        shown = "; ".join(
            f"{e['value']!r} in window {frame.iloc[e['row'] - 1][WINDOW]}" for e in v.examples
        )
        examples = f"; e.g. {shown}" if shown else ""
        problems.append(f"{where}{v.message} ({v.count} row(s){examples})")
    return bad, problems


def apply(root: Path, *, repro: bool = True) -> Applied:
    """Carry out the decision as one transaction (`pipeline.journal`): a failure, or a kill
    at any point, leaves configs, data, dvc.lock and the ledger as they were (a kill: once the
    next `mlops maintain --apply` has rolled it back), so a retry always completes."""
    try:
        with transaction(root, "mlops maintain --apply") as journal:
            return _apply(root, repro, journal)
    except _ReproError as exc:  # the files are restored: say so, and put outputs back
        raise _undone(root, exc.action, exc) from exc


def _apply(root: Path, repro: bool, journal: Journal) -> Applied:
    from pipeline import config

    decision = read_json(root / DECISION)
    ledger = read_ledger(root / LEDGER)
    action, did = decision["action"], decision.get("decision_id")
    if action != "none" and any(e.get("decision_id") == did for e in ledger):
        return Applied("none", did, f"{action} {did} was already applied", [])
    recorded = (decision.get("inputs") or {}).get("ledger", {}).get("sha256")
    current = sha256_file(root / LEDGER) if (root / LEDGER).is_file() else None
    if recorded != current:
        raise MlopsError(
            f"{DECISION} was decided on another ledger than {LEDGER}",
            hint="run `dvc repro maintain` first",
        )
    if action == "none":
        return Applied("none", None, f"nothing to apply: {decision['reason']}", [])
    params = config.load_config(root, hyperparameters=False)
    repro = repro and action in ("retrain", "rollback")
    if repro:
        journal.file(DVC_LOCK)  # a failed repro has re-recorded the stages that ran
    entry, changed, message = _carry_out(root, decision, params, journal)
    atomic_write_text(journal.file(LEDGER), dumps_json({"entries": [*ledger, entry]}))
    changed.append(LEDGER.as_posix())
    if repro:
        _repro(root, action)
    return Applied(action, did, message, changed)


class _ReproError(Exception):
    """`dvc repro` failed after the decision's files were written (internal: becomes the
    MlopsError of `_undone` once the files are restored)."""

    def __init__(self, message: str, action: str) -> None:
        super().__init__(message)
        self.action = action


def _repro(root: Path, action: str) -> None:
    """`dvc repro`, its progress shown as it runs; stderr (where a failing stage and DVC say
    why) is kept for the one error message, and echoed when the run succeeds."""
    proc = vcs.dvc(root, "repro", check=False, capture=False)
    if proc.returncode == 0:
        sys.stderr.write(proc.stderr)
        return
    raise _ReproError(_why(proc.stderr) or f"exit status {proc.returncode}", action)


def _why(stderr: str) -> str:
    """The failing stage's own message (from its last `error:` line) and DVC's verdict, cut to
    a readable length: a schema violation can list dozens of columns."""
    lines = list(dict.fromkeys(line for line in stderr.splitlines() if line.strip()))
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    block = lines[starts[-1] :] if starts else lines[-REPRO_ERROR_LINES:]
    verdict = [line for line in block if line.startswith("ERROR:")]
    body = [line for line in block if not line.startswith("ERROR:")]
    if len(body) > REPRO_ERROR_LINES:
        cut = len(body) - REPRO_ERROR_LINES + 2
        body = [*body[: REPRO_ERROR_LINES - 3], f"... ({cut} more line(s))", *body[-2:]]
    return "\n".join(body + verdict)


def _undone(root: Path, action: str, exc: _ReproError) -> MlopsError:
    """The failed repro as one message; the files are already restored. Stage outputs are put
    back in step with the restored dvc.lock from DVC's cache when it can."""
    try:
        checked_out = vcs.dvc(root, "checkout", "--quiet", check=False).returncode == 0
    except ToolError:
        checked_out = False
    outputs = (
        "stage outputs checked out as recorded in dvc.lock"
        if checked_out
        else "run `dvc checkout` to put the stage outputs back"
    )
    indented = "\n".join(f"  {line}" for line in str(exc).splitlines())
    return MlopsError(
        f"`dvc repro` failed, so the {action} was not applied:\n{indented}\n"
        f"restored: {LEDGER}, dvc.lock and every file the {action} wrote; {outputs}",
        hint="fix what the failing stage reports, then run `mlops maintain --apply` again "
        "(`git checkout reports` restores reports a failed stage rewrote)",
    )


def _carry_out(
    root: Path, decision: Mapping[str, Any], params: Params, journal: Journal
) -> tuple[dict[str, Any], list[str], str]:
    action, did = decision["action"], decision["decision_id"]
    entry = {
        "decision_id": did,
        "action": action,
        "target": decision["target"],
        "as_of": decision["as_of"],
        "release": decision["release"],
        "reason": decision["reason"],
        "windows": [],
        "line": decision.get("line"),
    }
    changed: list[str] = []
    if action == "retrain":
        rows, counts = feedback_rows(root, params, decision["feedback_windows"])
        entry["windows"] = list(decision["feedback_windows"])
        entry["rows"] = len(rows)
        entry["feedback"] = {**counts.to_dict(), "problems": counts.problems}
        if len(rows):
            folder = feedback_dir(params.dataset.name)
            rel = folder / f"{did}.parquet"
            from pipeline.tables import write_parquet

            journal.file(f"{rel}.dvc")
            journal.file(folder / ".gitignore")
            write_parquet(rows, journal.file(rel))
            vcs.dvc(root, "add", "--quiet", rel.as_posix())
            changed += [f"{rel}.dvc", (folder / ".gitignore").as_posix()]
        message = (
            f"retrain: {len(rows)} labelled production row(s) added to training "
            f"from {len(entry['windows'])} window(s) ({counts.labelled} labelled: "
            f"{counts.kept} kept, {counts.duplicate} duplicate, {counts.refused} refused)"
        )
        if counts.problems:
            message += "\nrefused (they break the declared dataset schema):\n" + "\n".join(
                f"  - {p}" for p in counts.problems
            )
    elif action == "rollback":
        from pipeline.config import PARAMS_FILE
        from pipeline.deploy.release import rollback

        evidence = next(p for p in decision["policies"] if p["policy"] == "rollback")
        outcome = rollback(root, decision["target"], evidence["evidence"].get("previous"))
        entry["pinned"] = outcome.pin
        changed += [PINS_FILE.as_posix(), PARAMS_FILE]
        message = f"rollback: {decision['target']} pinned back ({decision['reason']})"
    else:
        message = f"alert: {decision['reason']}"
    return entry, changed, message
