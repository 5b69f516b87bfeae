"""One verdict per monitoring window: drift, null shares, prediction drift, performance.

`assess(window, context)` is a pure function of the window's rows, the reference, the monitored
bundle and the settings. Its result (a JSON-ready dict) lists every finding; the window's status
is

* `not_judged` when the window cannot be compared with the monitored bundle at all: monitoring
  was refused for every window (`pipeline.monitor.compat.refusal`: the project declares another
  line than the bundle's, or the bundle carries no drift reference), or this window's traffic
  belongs to another line (`compat.window_problem`); the note says which;
* `insufficient_data` when it has fewer than `windows.min_rows` rows: no verdict is given;
* `breach` when any check is violated, each violation listed (`check`, `subject`, `message`):
  `dataset_drift` (share of drifted columns >= `drift.drift_share`), `null_share` (a column's
  null share rose by more than allowed, predictions included), `prediction_drift` (the served
  predictions against the bundle's offline predictions on the test split), `performance_floor`
  and `performance_drop` (on labelled rows only, against `performance.floors` and the bundle's
  test metrics, judged once at least `performance.min_labelled` labels have arrived);
* `ok` otherwise.

Drifted columns below the dataset share are findings, not violations (Evidently's verdict).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import metrics
from pipeline.floors import Baseline, Floor, binding
from pipeline.floors import resolve as resolve_floors
from pipeline.monitor.compat import Refusal, scored_by, window_problem
from pipeline.monitor.drift import (
    ColumnDrift,
    DriftReport,
    DriftSettings,
    compute_drift,
    rejudged,
    summarise,
)
from pipeline.monitor.monitored_bundle import BundleInfo
from pipeline.monitor.task_metrics import label_metrics
from pipeline.monitor.windowing import MonitorWindow
from pipeline.params import MonitorSettings, PerformanceSpec, ReportSpec
from pipeline.profile.reference import ColumnKind, Reference, build_reference
from pipeline.values import canonical_category
from pipeline.windows import LABEL, PREDICTION, RELEASE, TIME

if TYPE_CHECKING:
    import pandas as pd

OK, BREACH, INSUFFICIENT, NOT_JUDGED = "ok", "breach", "insufficient_data", "not_judged"
STATUSES = (OK, BREACH, INSUFFICIENT, NOT_JUDGED)
VERDICTS = (OK, BREACH)  # the statuses that are a verdict on the monitored release's traffic


@dataclass(frozen=True)
class Context:
    """What every window is compared with; built once per run.

    With a `refusal` no window is judged, and both references are empty."""

    settings: MonitorSettings
    reference: Reference
    bundle: BundleInfo
    prediction_reference: Reference
    scenarios: Mapping[str, Any]  # simulated window file id -> what the simulator injected
    refusal: Refusal | None = None
    declared: frozenset[str] = frozenset()  # the project's dataset columns (not evidence of
    # another line when a window carries them)
    types: Mapping[str, str] = dataclasses.field(default_factory=dict)  # feature -> declared type


def prediction_kind(task: str) -> ColumnKind:
    return "categorical" if task == "classification" else "numeric"


EMPTY = Reference(mode="exact", rows=0, columns={})


def build_context(
    settings: MonitorSettings,
    reference: Reference,
    bundle: BundleInfo,
    scenarios: Mapping[str, Any] | None = None,
    declared: Collection[str] = (),
) -> Context:
    """Bundle the inputs; the prediction reference is built here from the bundle's predictions
    (a hundred-odd test rows: cheaper to rebuild than to store)."""
    kind = prediction_kind(bundle.task)
    predictions = bundle.reference_predictions()
    pred_ref = build_reference(predictions, {PREDICTION: kind}, mode="exact")
    return Context(
        settings,
        reference,
        bundle,
        pred_ref,
        dict(scenarios or {}),
        None,
        frozenset(declared),
        bundle.field_types(),
    )


def refused_context(
    settings: MonitorSettings,
    bundle: BundleInfo,
    refusal: Refusal,
    scenarios: Mapping[str, Any] | None = None,
) -> Context:
    """A context that judges no window: every window is listed as not judged, with the reason."""
    return Context(settings, EMPTY, bundle, EMPTY, dict(scenarios or {}), refusal)


def prediction_settings(settings: MonitorSettings) -> DriftSettings:
    """Drift settings for the prediction column: `monitor.prediction`'s method and threshold,
    the drift section's rules otherwise; always exact (the reference predictions are few)."""
    if prediction_kind(settings.task) == "categorical":
        return dataclasses.replace(
            settings.drift, categorical=settings.prediction, columns={}, mode="exact"
        )
    return dataclasses.replace(
        settings.drift, numeric=settings.prediction, columns={}, mode="exact"
    )


# ------------------------------------------------------------------------------------ the checks
# Every check yields entries {check, subject, ok, message}: ok is True (passed), False (a
# violation) or None (not judged, e.g. too few labels). Violations are the entries with ok False.
Check = dict[str, Any]


def check(name: str, subject: str, ok: bool | None, message: str) -> Check:
    return {"check": name, "subject": subject, "ok": ok, "message": message}


def violations(checks: list[Check]) -> list[dict[str, str]]:
    return [
        {"check": c["check"], "subject": c["subject"], "message": c["message"]}
        for c in checks
        if c["ok"] is False
    ]


def drift_checks(report: DriftReport) -> list[Check]:
    word = ">=" if report.drifted else "<"
    listed = f": {', '.join(report.drifted_columns)}" if report.drifted_columns else ""
    out = [
        check(
            "dataset_drift",
            "dataset",
            not report.drifted,
            f"{report.count} of {report.total} columns drifted (share {report.share or 0:.2f} "
            f"{word} {report.drift_share:g}){listed}",
        )
    ]
    bad = [c for c in report.columns if c.null_share_drifted]
    out += [null_check(c) for c in bad]
    if not bad:
        out.append(
            check(
                "null_share",
                "all columns",
                True,
                "no column's null share rose by more than allowed",
            )
        )
    return out


def null_check(col: ColumnDrift) -> Check:
    return check(
        "null_share",
        col.column,
        not col.null_share_drifted,
        f"null share of {col.column} rose from {col.reference_null_share:.1%} to "
        f"{col.current_null_share or 0:.1%} (allowed: +{col.null_share_max_increase:.0%})",
    )


def prediction_checks(col: ColumnDrift) -> list[Check]:
    if col.status == "all_null":
        detail = "every prediction is null"
    elif col.statistic is None:
        detail = col.note or col.status
    else:
        detail = f"{col.method} {col.statistic:.4g}, threshold {col.threshold:g}"
    out = [
        check(
            "prediction_drift",
            PREDICTION,
            not col.drifted,
            ("predictions drifted" if col.drifted else "predictions did not drift")
            + f" from the bundle's test-split predictions ({detail})",
        )
    ]
    if col.null_share_drifted:
        out.append(null_check(col))
    return out


def performance(
    labels: pd.Series,
    predictions: pd.Series,
    task: str,
    test_metrics: Mapping[str, float],
    spec: PerformanceSpec,
    baseline: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Check]]:
    """Label metrics on the labelled rows (labels not null) and their floor / drop checks.

    Floors are the declared absolute ones and, with `baseline` (the trivial model the bundle
    records, `pipeline.floors.Baseline`), the baseline ones: the model must beat what a model
    that learned nothing scores *on the same labelled rows* by the declared amount, the rule
    the champion was selected and gated by. Rows whose label has not arrived are left out
    entirely, as are rows without a prediction. With fewer than `spec.min_labelled` labelled
    rows the metrics are shown but not judged.
    """
    mask = labels.notna().to_numpy() & predictions.notna().to_numpy()
    count = int(mask.sum())
    result: dict[str, Any] = {"labelled": count, "min_labelled": spec.min_labelled, "metrics": {}}
    not_judged = check(
        "performance",
        "labelled rows",
        None,
        f"not judged: {count} labelled row(s) < performance.min_labelled {spec.min_labelled}",
    )
    if count == 0:
        result["status"] = "no_labels"
        return result, [not_judged]
    y_true, y_pred = _typed(labels[mask], task), _typed(predictions[mask], task)
    with warnings.catch_warnings():  # a class absent from a small window's labels is expected
        warnings.simplefilter("ignore")
        values = metrics.compute(task, y_true, y_pred)
    judged = count >= spec.min_labelled
    result["status"] = "judged" if judged else "insufficient_labels"
    floors, notes = _floors(spec, baseline, y_true, label_metrics(task))
    if notes:
        result["notes"] = notes
    found: list[Check] = []
    for name in label_metrics(task):
        entry, checks = _metric_checks(
            name, values[name], test_metrics.get(name), spec, count, floors.get(name, [])
        )
        result["metrics"][name] = entry
        found += checks
    return result, found if judged else [not_judged]


def _floors(
    spec: PerformanceSpec,
    baseline: Mapping[str, Any] | None,
    y_true: Any,
    judged: Collection[str],
) -> tuple[dict[str, list[Floor]], list[str]]:
    """The floors per label metric, and notes on baseline floors that cannot be checked."""
    beat = {m: a for m, a in spec.baseline.items() if m in judged}
    notes = [
        f"baseline floor on {m} not checked: it needs the model's probabilities, which a "
        "window does not hold"
        for m in spec.baseline
        if m not in judged
    ]
    scores = None
    if beat and baseline is None:
        notes.append("baseline floors not checked: the bundle records no baseline (re-release)")
        beat = {}
    elif beat and baseline is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores, _ = Baseline.from_dict(baseline).score(y_true)
    out: dict[str, list[Floor]] = {}
    for floor in resolve_floors(spec.floors, beat, scores):
        out.setdefault(floor.metric, []).append(floor)
    return out, notes


def _typed(series: pd.Series, task: str) -> Any:
    import numpy as np

    if task == "classification":
        return np.asarray([canonical_category(v) for v in series.tolist()], dtype=object)
    return series.to_numpy(dtype=float)


def _metric_checks(
    name: str,
    value: float,
    test: float | None,
    spec: PerformanceSpec,
    count: int,
    floors: Sequence[Floor] = (),
) -> tuple[dict[str, Any], list[Check]]:
    allowed = None if test is None else spec.allowed_drop(name, test)
    worsening = None if test is None else metrics.improvement(name, test, value)
    verdicts = [floor.check(value) for floor in floors]
    entry = {
        "value": value,
        "test": test,
        "floor": None if not floors else binding(floors),
        "floors": [f.to_dict() for f in floors],
        "allowed_drop": allowed,
        "worsening": worsening,
        "floor_ok": None if not floors else all(ok for ok, _ in verdicts),
        "drop_ok": None if allowed is None or worsening is None else worsening <= allowed,
    }
    found = []
    on = f"{name} {value:.4f} on {count} labelled rows"
    for floor, (ok, why) in zip(floors, verdicts, strict=True):
        if ok:
            found.append(
                check("performance_floor", name, True, f"{on} {floor.met()} {floor.shown()}")
            )
        else:
            found.append(check("performance_floor", name, False, f"{why} on {count} labelled rows"))
    if allowed is not None and worsening is not None and test is not None:
        ok = bool(entry["drop_ok"])
        found.append(
            check(
                "performance_drop",
                name,
                ok,
                f"{on} is {worsening:.4f} worse than at test ({test:.4f}); allowed: {allowed:.4f}"
                if worsening > 0
                else f"{on} is not worse than at test ({test:.4f})",
            )
        )
    return entry, found


# ----------------------------------------------------------------------------------- one window
def features_frame(
    frame: pd.DataFrame, columns: list[str], types: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The monitored columns of a window, read by `pipeline.values`' rules for their declared
    types (`types`), so a window holds what training held: "yes" is the bool "true", "2.0" the
    category "2", a value that is not of its type is missing. A column absent from the file
    counts as all null."""
    from pipeline import values

    missing = [c for c in columns if c not in frame.columns]
    current = frame.reindex(columns=columns)
    if not types:
        return current, missing
    parsed = {}
    for name in columns:
        cells, invalid = values.parse_column(types[name], current[name])
        if invalid.any():
            cells = cells.copy()
            cells[invalid] = None
        parsed[name] = cells
    return values.model_frame({name: types[name] for name in columns}, parsed), missing


def describe(window: MonitorWindow) -> dict[str, Any]:
    """What a window is, whatever its verdict: id, source, span, rows, labels, releases."""
    frame = window.frame
    releases = frame[RELEASE].dropna().astype(str).value_counts()
    ordered = sorted(releases.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "id": window.id,
        "source": window.source,
        "files": list(window.files),
        "start": frame[TIME].iloc[0].isoformat(),
        "end": frame[TIME].iloc[-1].isoformat(),
        "rows": len(frame),
        "labelled": int(frame[LABEL].notna().sum()),
        "release": ordered[0][0] if ordered else None,
        "releases": {k: int(v) for k, v in ordered},
        "duplicates_dropped": window.duplicates,
    }


def scenario_of(window: MonitorWindow, scenarios: Mapping[str, Any]) -> Any:
    """What the simulator injected into the window's rows, when they all come from one
    simulated file (scenarios are recorded per window file)."""
    return scenario_for(window.source, window.files, scenarios)


def scenario_for(source: str, files: Sequence[str], scenarios: Mapping[str, Any]) -> Any:
    """`scenario_of` a window given by its source and file names (a kept result's)."""
    if source != "simulated":
        return None
    found = {Path(name).stem for name in files}
    if len(found) != 1:
        return None
    return scenarios.get(found.pop())


def _no_verdict(result: dict[str, Any], status: str, notes: list[str]) -> dict[str, Any]:
    result.update(
        status=status,
        violations=[],
        checks=[],
        drift=None,
        prediction=None,
        performance=None,
        notes=notes,
    )
    return result


def assess(window: MonitorWindow, ctx: Context) -> dict[str, Any]:
    """The full verdict for one window (see the module docstring)."""
    result = measure(window, ctx)
    result.pop(PERFORMANCE_CHECKS, None)
    return result


def measure(window: MonitorWindow, ctx: Context) -> dict[str, Any]:
    """`assess`'s verdict in the form it is kept in: with the performance checks in their
    order (PERFORMANCE_CHECKS), which `rejudge` needs to judge it again."""
    result = describe(window)
    result["scenario"] = scenario_of(window, ctx.scenarios)
    if ctx.refusal is not None:
        return _no_verdict(result, NOT_JUDGED, [f"not judged: {ctx.refusal.message}"])
    problem = window_problem(window.frame, ctx.bundle, ctx.declared)
    if problem is not None:  # traffic of another line of releases (an earlier dataset's)
        result["other_line"] = True
        return _no_verdict(
            result, NOT_JUDGED, [f"not judged against {ctx.bundle.label}: {problem}"]
        )
    notes: list[str] = []
    others = [r for r in result["releases"] if not scored_by(r, ctx.bundle)]
    if others:
        notes.append(f"scored by release(s) {', '.join(others)}; compared with {ctx.bundle.label}")
    min_rows = ctx.settings.windows.min_rows
    if len(window.frame) < min_rows:
        notes.append(f"{len(window.frame)} rows < windows.min_rows {min_rows}: no verdict")
        return _no_verdict(result, INSUFFICIENT, notes)
    current, missing = features_frame(window.frame, list(ctx.reference.columns), ctx.types)
    if missing:
        notes.append("columns absent from the window, counted as all null: " + ", ".join(missing))
    drift = compute_drift(ctx.reference, current, ctx.settings.drift)
    pred_report = compute_drift(
        ctx.prediction_reference, window.frame[[PREDICTION]], prediction_settings(ctx.settings)
    )
    (pred,) = pred_report.columns
    perf, perf_checks = performance(
        window.frame[LABEL],
        window.frame[PREDICTION],
        ctx.settings.task,
        ctx.bundle.test_metrics,
        ctx.settings.performance,
        ctx.bundle.meta.get("baseline"),
    )
    result["performance_checks"] = perf_checks
    return judge(result, drift, pred, perf, notes)


PERFORMANCE_CHECKS = "performance_checks"  # a kept result's performance checks, in order


def judge(
    result: dict[str, Any],
    drift: DriftReport,
    pred: ColumnDrift,
    perf: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """The window's checks, violations and status from its drift and performance findings
    (`result` carries the performance checks in their order under PERFORMANCE_CHECKS)."""
    perf_checks = list(result[PERFORMANCE_CHECKS])
    checks = drift_checks(drift) + prediction_checks(pred) + perf_checks
    checks.sort(key=lambda c: {False: 0, None: 1, True: 2}[c["ok"]])  # violations first
    found = violations(checks)
    result.update(
        status=BREACH if found else OK,
        violations=found,
        checks=checks,
        drift=drift.to_dict(),
        prediction=pred.to_dict(),
        performance=perf,
        notes=notes,
    )
    return result


def measured(settings: MonitorSettings) -> MonitorSettings:
    """`settings` without what only judges a statistic (the drift and null-share thresholds,
    the dataset drift share, the prediction threshold) or only bounds the reports and the raw
    windows: a window's kept statistics depend on these settings only, and `rejudge` applies
    the thresholds."""
    drift = settings.drift
    return dataclasses.replace(
        settings,
        drift=dataclasses.replace(
            drift,
            numeric=dataclasses.replace(drift.numeric, threshold=None),
            categorical=dataclasses.replace(drift.categorical, threshold=None),
            columns={  # an override of thresholds only measures as no override
                name: dataclasses.replace(over, threshold=None, null_share_max_increase=None)
                for name, over in drift.columns.items()
                if over.method is not None
            },
            drift_share=0.0,
            null_share_max_increase=0.0,
        ),
        prediction=dataclasses.replace(settings.prediction, threshold=None),
        report=ReportSpec(0, 0),  # what the reports show and keep: never a statistic
        keep_raw_days=None,
    )


def rejudge(kept: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """A kept assessment (`measure`'s result) judged again under `ctx`'s thresholds, without
    touching the window's rows: `measure` under `ctx` when only what `measured` leaves out
    differs."""
    result = dict(kept)
    if result.get("drift") is None:  # no verdict: nothing a threshold decides
        return result
    settings = ctx.settings
    columns = [
        rejudged(ColumnDrift(**column), settings.drift)
        for column in result["drift"]["columns"].values()
    ]
    drift = summarise(columns, settings.drift)
    pred = rejudged(ColumnDrift(**result["prediction"]), prediction_settings(settings))
    return judge(result, drift, pred, result["performance"], list(result["notes"]))


def read_scenarios(directory: Path) -> dict[str, Any]:
    """The simulator's record of what each simulated window injects (empty when absent)."""
    from pipeline.io import read_json
    from pipeline.paths import SCENARIOS_FILE

    path = directory / SCENARIOS_FILE
    if not path.is_file():
        return {}
    return dict(read_json(path).get("windows", {}))
