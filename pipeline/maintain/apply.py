"""`mlops maintain --apply`: carry out the `maintain` stage's decision as a reviewable change.

A stage cannot feed data back into `prepare` (DVC refuses the cycle), so this command does it,
outside the graph, and records what it did in the committed ledger (maintain/ledger.json),
which the `maintain` stage reads: cooldowns work from it, and a decision already in it is
never applied twice.

* retrain: the labelled production rows of the decision's windows (deduplicated by request id,
  against earlier feedback too), checked against the declared dataset schema and tagged with
  their release and window, become `data/feedback/<decision id>.parquet` (tracked with
  `dvc add`: training only, never the test split); then `dvc repro` retrains, and the new
  champion still has to pass the deploy gates before `mlops release` ships it.
* rollback: the declarative pin of `mlops rollback` (a generated conf file, recomposed).
* alert: the message, recorded once.

Everything is checked first; a failure undoes every file it wrote, so configs, data and the
ledger stay byte-identical.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.errors import DataError, MlopsError
from pipeline.io import dumps_json, read_json, sha256_file
from pipeline.maintain.paths import DECISION, FEEDBACK_DIR, LEDGER
from pipeline.maintain.stage import LABEL, RELEASE, read_ledger

REQUEST_ID = "__request_id__"
LOCK_FILE = "dvc.lock"
REPRO_ERROR_LINES = 12  # of dvc repro's stderr: the failing stage's message and DVC's verdict
WINDOW = "__window__"


@dataclass
class Applied:
    action: str
    decision_id: str | None
    message: str
    changed: list[str]


class Files:
    """Remembers the bytes of every file before it is touched, to restore them on failure."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.saved: dict[Path, bytes | None] = {}

    def touch(self, rel: Path | str) -> Path:
        path = self.root / rel
        if path not in self.saved:
            self.saved[path] = path.read_bytes() if path.is_file() else None
        return path

    def restore(self) -> None:
        for path, data in self.saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)


def _dvc(root: Path, *args: str) -> None:
    exe = Path(sys.executable).parent / "dvc"
    proc = subprocess.run(
        [str(exe) if exe.exists() else "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise MlopsError(f"`dvc {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}")


def feedback_rows(root: Path, params: Mapping[str, Any], windows: list[str]) -> Any:
    """Labelled rows of the decision's production windows, as training rows with provenance."""
    import pandas as pd

    from pipeline.data import check_data
    from pipeline.monitor.paths import PRODUCTION_DIR
    from pipeline.monitor.settings import WindowSpec
    from pipeline.monitor.windowing import collect
    from pipeline.settings import DatasetSpec

    spec = DatasetSpec.from_params(params["dataset"])
    wanted = set(windows)
    found = [
        w
        for w in collect(
            {"production": root / PRODUCTION_DIR}, WindowSpec(**params["monitor"]["windows"])
        )
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
    if len(frame) == 0:
        return frame
    frame = frame.drop_duplicates(REQUEST_ID, keep="last")
    seen = set()
    for path in sorted((root / FEEDBACK_DIR).glob("*.parquet")):
        seen |= set(pd.read_parquet(path, columns=[REQUEST_ID])[REQUEST_ID].dropna())
    frame = frame[~frame[REQUEST_ID].isin(seen)]
    names = [c.name for c in spec.features]
    out = frame[[c for c in names if c in frame.columns]].copy()
    out[spec.target] = frame[LABEL].to_numpy()
    for col in (REQUEST_ID, RELEASE, WINDOW):
        out[col] = frame[col].to_numpy()
    out = out.reset_index(drop=True)
    declared = replace(
        spec, key=None, columns=tuple(c for c in spec.columns if c.role in ("feature", "target"))
    )
    report = check_data(out[[c.name for c in declared.columns if c.name in out.columns]], declared)
    if not report.ok:
        lines = "\n".join(f"  - {v.render()}" for v in report.violations)
        raise DataError(
            f"labelled production rows break the declared schema:\n{lines}",
            hint="fix the dataset declaration or the traffic; nothing was written",
        )
    return out


def apply(root: Path, *, repro: bool = True) -> Applied:
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
    params = config.load_params(root, hyperparameters=False)
    files = Files(root)
    repro = repro and action in ("retrain", "rollback")
    if repro:
        files.touch(LOCK_FILE)  # a failed repro has re-recorded the stages that ran
    try:
        entry, changed, message = _carry_out(root, decision, params, files)
        ledger_path = files.touch(LEDGER)
        from pipeline.io import atomic_write_text

        atomic_write_text(ledger_path, dumps_json({"entries": [*ledger, entry]}))
        changed.append(LEDGER.as_posix())
        if repro:
            _repro(root)
    except BaseException as exc:
        files.restore()
        if isinstance(exc, _ReproError):
            raise _undone(root, action, exc) from exc
        raise
    return Applied(action, did, message, changed)


class _ReproError(Exception):
    """`dvc repro` failed after the decision's files were written (internal: becomes the
    MlopsError of `_undone` once the files are restored)."""


def _repro(root: Path) -> None:
    """`dvc repro`, its progress shown as it runs; stderr (where a failing stage and DVC say
    why) is kept for the one error message, and echoed when the run succeeds."""
    exe = Path(sys.executable).parent / "dvc"
    proc = subprocess.run(
        [str(exe) if exe.exists() else "dvc", "repro"],
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        sys.stderr.write(proc.stderr)
        return
    raise _ReproError(_why(proc.stderr) or f"exit status {proc.returncode}")


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
    exe = Path(sys.executable).parent / "dvc"
    checkout = subprocess.run(
        [str(exe) if exe.exists() else "dvc", "checkout", "--quiet"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    outputs = (
        "stage outputs checked out as recorded in dvc.lock"
        if checkout.returncode == 0
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
    root: Path, decision: Mapping[str, Any], params: Mapping[str, Any], files: Files
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
    }
    changed: list[str] = []
    if action == "retrain":
        rows = feedback_rows(root, params, decision["feedback_windows"])
        entry["windows"] = list(decision["feedback_windows"])
        entry["rows"] = len(rows)
        if len(rows):
            rel = FEEDBACK_DIR / f"{did}.parquet"
            from pipeline.data import write_parquet

            write_parquet(rows, files.touch(rel))
            files.touch(f"{rel}.dvc")
            files.touch(FEEDBACK_DIR / ".gitignore")
            _dvc(root, "add", "--quiet", rel.as_posix())
            changed += [f"{rel}.dvc", (FEEDBACK_DIR / ".gitignore").as_posix()]
        message = (
            f"retrain: {len(rows)} labelled production row(s) added to training "
            f"from {len(entry['windows'])} window(s)"
        )
    elif action == "rollback":
        from pipeline.deploy.paths import PINS_FILE
        from pipeline.deploy.release import rollback

        files.touch(PINS_FILE)
        files.touch("params.yaml")
        evidence = next(p for p in decision["policies"] if p["policy"] == "rollback")
        outcome = rollback(root, decision["target"], evidence["evidence"].get("previous"))
        entry["pinned"] = outcome.pin
        changed += [PINS_FILE.as_posix(), "params.yaml"]
        message = f"rollback: {decision['target']} pinned back ({decision['reason']})"
    else:
        message = f"alert: {decision['reason']}"
    return entry, changed, message
