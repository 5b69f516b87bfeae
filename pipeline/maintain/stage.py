"""Stage `maintain`: decide from declared policies whether to retrain, roll back or alert.

Reads the monitoring history (reports/monitor/history.csv: production windows only), the
monitor's report.json (only to say why no window counts: monitoring skipped, simulated windows
that never count), the ledger of applied decisions (maintain/ledger.json, committed), the live
release (deploy/<target>.json) and, for the rollback policy, the labelled production rows the
live release scored, rescored by the live and the previous release's bundles (only the windows
that hold such rows are read: the monitor's kept file summaries say which). Writes
reports/maintain/decision.json: the action, every policy evaluated with its evidence, and the
inputs it used. Nothing here reads the clock.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.comparability import from_record, line_id
from pipeline.config import load_config
from pipeline.errors import ArtifactError, DataError
from pipeline.io import read_json, sha256_file, write_json
from pipeline.maintain.policy import decide
from pipeline.params import Params, RollbackSpec, WindowSpec
from pipeline.paths import (
    DECISION,
    LEDGER,
    MONITOR_HISTORY,
    MONITOR_KEPT,
    MONITOR_REPORT,
    PRODUCTION_DIR,
    release_path,
    released_bundle,
)
from pipeline.stage import log, run
from pipeline.windows import LABEL, RELEASE, is_reserved


def read_history(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist", hint="run `dvc repro monitor` first")
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def read_monitoring(path: Path) -> dict[str, Any]:
    """The monitor's report.json, or nothing when it is absent or not an object."""
    if not path.is_file():
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The applied decisions; a missing ledger is an empty one, a broken one an error."""
    if not path.is_file():
        return []
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise DataError(
            f'{path}: expected {{"entries": [...]}}',
            hint="the ledger is written by `mlops maintain --apply`; restore it from git",
        )
    return list(data["entries"])


def labelled_rows(windows: WindowSpec, release: str) -> Any:
    """Labelled production rows scored by `release`, from the production windows that hold
    some: the summaries the monitor stage keeps (reports/monitor/kept) say which files do
    without parsing them, so the cost follows the live release's traffic, not the history's
    length (with nothing kept, every file is read once to find out)."""
    import pandas as pd

    from pipeline.monitor.kept import KeptStore
    from pipeline.monitor.windowing import survey

    kept = KeptStore(MONITOR_KEPT, read_only=True)
    traffic = survey({"production": PRODUCTION_DIR}, windows, kept=kept)
    frames = [w.frame for w in traffic.labelled_by(release)]
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    return rows[(rows[RELEASE] == release) & rows[LABEL].notna()].reset_index(drop=True)


def rollback_evidence(
    params: Params,
    release: str | None,
    parent: str | None,
    spec: RollbackSpec | None,
) -> tuple[dict[str, Any] | None, str]:
    """The paired bootstrap of (previous - live) on the live release's labelled rows, or why
    there is none."""
    if spec is None:
        return None, "rollback policy disabled"
    if release is None:
        return None, "nothing is released"
    if parent is None:
        return None, f"{release} has no previous release to roll back to"
    rows = labelled_rows(params.monitor.windows, release)
    if len(rows) < spec.min_labelled:
        return None, (
            f"{len(rows)} labelled row(s) scored by {release} < min_labelled "
            f"{spec.min_labelled}: no verdict"
        )
    from pipeline import paired_bootstrap
    from pipeline.deploy.bundle import load_bundle
    from pipeline.deploy.columns import validate_columns
    from pipeline.deploy.scoring import predict
    from pipeline.release_record import parse_release_id

    scored = []
    ok = None
    bundles = []
    for rel in (parent, release):
        wanted = parse_release_id(rel)[1]
        path = released_bundle(wanted)
        try:
            loaded = load_bundle(path)
            if loaded.id != wanted:  # the manifest digest must be the one the release names
                raise ArtifactError(f"{path}: bundle digest {loaded.digest} is not bundle {wanted}")
            bundles.append(loaded)
        except ArtifactError as exc:
            return None, f"bundle of {rel} unavailable ({exc}); `dvc pull` it"
    features = rows[[c for c in rows.columns if not is_reserved(c)]]
    checked = [
        validate_columns(
            b.signature, features[[c for c in b.signature.names if c in features.columns]]
        )
        for b in bundles
    ]
    for check in checked:
        ok = check.ok if ok is None else ok & check.ok
    assert ok is not None
    if ok.sum() < spec.min_labelled:
        return None, "too few labelled rows are valid inputs for both releases"
    task = bundles[1].task
    for bundle in bundles:
        result = validate_columns(bundle.signature, features.loc[ok, bundle.signature.names])
        pred, proba = predict(bundle.model, result.frame, task)
        classes = bundle.meta["model"].get("classes")
        scored.append(paired_bootstrap.PairedScores(pred, proba, classes))
    y = rows.loc[ok, LABEL].to_numpy()
    y = y.astype(str).astype(object) if task == "classification" else y.astype(float)
    comparison = paired_bootstrap.compare(
        spec.metric,
        task,
        y,
        scored[0],
        scored[1],
        confidence=spec.confidence,
        resamples=spec.resamples,
        seed=spec.seed,
    )
    if comparison is None:
        return None, f"{spec.metric} cannot be computed on these rows"
    return {
        **comparison.to_dict(),
        "previous": parent,
        "live": release,
        "rows": int(ok.sum()),
    }, "evaluated"


def main(argv: Sequence[str]) -> None:
    from pipeline.release_record import read_record

    params = load_config(hyperparameters=False)
    settings, target = params.maintain.policies, params.maintain.target
    history = read_history(MONITOR_HISTORY)
    ledger = read_ledger(LEDGER)
    record = read_record(release_path(target), target)
    comparison, note = rollback_evidence(params, record.release, record.parent, settings.rollback)
    decision = decide(
        history,
        ledger,
        target=target,
        release=record.release,
        settings=settings,
        comparison=comparison,
        comparison_note=note,
        monitoring=read_monitoring(MONITOR_REPORT),
        line=line_id(from_record(record.data.get("model"))) if record.release else None,
    )
    decision["inputs"] = {
        "history": {
            "path": MONITOR_HISTORY.as_posix(),
            "sha256": sha256_file(MONITOR_HISTORY),
            "windows": len(history),
        },
        "ledger": {
            "path": LEDGER.as_posix(),
            "sha256": sha256_file(LEDGER) if LEDGER.is_file() else None,
            "entries": len(ledger),
        },
        "release": record.release,
    }
    write_json(DECISION, decision)
    log(f"maintain: {decision['action']} — {decision['reason']}")


if __name__ == "__main__":
    run(main)
