"""Maintenance policies: from the monitoring history, the ledger of applied decisions and the
live release, decide whether to retrain, roll back, alert, or do nothing.

Every function here is pure: the decision depends only on its inputs. Time is the newest
window's end (never the clock), so the same history and ledger always give the same decision,
and `dvc repro` can cache it. Precedence when several policies fire: rollback (a better model
is one release away) > retrain > alert > none; a cooldown after an applied retrain or rollback
suppresses the next one until it has passed, and a decision already in the ledger is not
proposed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline import paired_bootstrap
from pipeline.params import MaintainSettings as Settings  # typed in the params tree
from pipeline.params import RollbackSpec

ACTIONS = ("none", "alert", "retrain", "rollback")
RANK = {name: i for i, name in enumerate(ACTIONS)}
DRIFT = "dataset_drift"
PERFORMANCE = ("performance_floor", "performance_drop")


@dataclass
class Finding:
    policy: str
    action: str  # what it asks for when it fires
    fired: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "action": self.action,
            "fired": self.fired,
            "reason": self.reason,
            "evidence": self.evidence,
        }


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _checks(row: Mapping[str, Any]) -> set[str]:
    return {c for c in str(row.get("checks") or "").split(";") if c}


VERDICTS = ("ok", "breach")  # insufficient-data windows are neither good nor bad


def judged(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Windows that got a verdict."""
    return [r for r in history if r.get("status") in VERDICTS]


def considered(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The windows maintenance decides on, oldest first: production traffic that monitoring
    judged against the monitored release, or found too small to judge. Simulated windows never
    count, nor do windows monitoring did not judge (skipped, or traffic of another line)."""
    rows = [
        r for r in history if r.get("source") == "production" and r.get("status") != "not_judged"
    ]
    return sorted(rows, key=lambda r: r["window"])


def no_window_reason(
    history: Sequence[Mapping[str, Any]], monitoring: Mapping[str, Any] | None
) -> str:
    """Why there is nothing to decide on, from the history and the monitor's report.json
    (what it skipped and how many simulated windows it showed)."""
    monitoring = monitoring or {}
    skipped = (monitoring.get("skipped") or {}).get("reason")
    production = [r for r in history if r.get("source") == "production"]
    if not production:
        parts = ["no production window yet"]
        if skipped:
            parts.append(f"monitoring was skipped ({skipped})")
    elif skipped:
        parts = [f"no production window was judged: monitoring was skipped ({skipped})"]
    else:
        parts = [
            f"no production window was judged against the monitored release: "
            f"{len(production)} window(s) of traffic it cannot judge (see reports/monitor/)"
        ]
    simulated = ((monitoring.get("simulated") or {}).get("summary") or {}).get("windows") or 0
    if simulated:
        parts.append(f"{simulated} simulated window(s) are never used for maintenance")
    return "; ".join(parts)


def drift_policy(history: Sequence[Mapping[str, Any]], k: int) -> Finding:
    run = 0
    for row in reversed(judged(history)):
        if DRIFT not in _checks(row):
            break
        run += 1
    recent = [r["window"] for r in judged(history)[-run:]] if run else []
    return Finding(
        "drift",
        "retrain",
        run >= k,
        f"dataset drift in the last {run} judged window(s) in a row (policy: {k})",
        {"consecutive": run, "required": k, "windows": recent},
    )


def performance_policy(history: Sequence[Mapping[str, Any]]) -> Finding:
    newest = next((r for r in reversed(judged(history)) if int(r.get("labelled") or 0) > 0), None)
    if newest is None:
        return Finding("performance", "retrain", False, "no judged window has labels yet")
    broken = sorted(_checks(newest) & set(PERFORMANCE))
    reason = (
        f"window {newest['window']} breaks {', '.join(broken)}"
        if broken
        else f"window {newest['window']} meets the performance floors"
    )
    return Finding(
        "performance",
        "retrain",
        bool(broken),
        reason,
        {"window": newest["window"], "checks": broken},
    )


def age_policy(
    history: Sequence[Mapping[str, Any]], release: str | None, max_days: float
) -> Finding:
    """Age of the live release, from the data: the time between the first window it scored and
    the newest window (a release that scored nothing yet has no age)."""
    served = [r for r in history if release and r.get("release") == release]
    if not served:
        return Finding("age", "retrain", False, "the live release has scored no window yet")
    start = min(parse_time(r["start"]) for r in served)
    end = max(parse_time(r["end"]) for r in history)
    days = (end - start) / timedelta(days=1)
    return Finding(
        "age",
        "retrain",
        days > max_days,
        f"the live release has served {days:.1f} day(s) (policy: {max_days:g})",
        {
            "first_window": min(r["window"] for r in served),
            "days": round(days, 3),
            "window": max(r["window"] for r in history),
        },
    )


def new_labels_policy(
    history: Sequence[Mapping[str, Any]], used: set[str], min_rows: int
) -> Finding:
    fresh = [r for r in history if r["window"] not in used and int(r.get("labelled") or 0) > 0]
    rows = sum(int(r["labelled"]) for r in fresh)
    return Finding(
        "new_labels",
        "retrain",
        rows >= min_rows,
        f"{rows} labelled row(s) in windows not yet fed back (policy: {min_rows})",
        {"rows": rows, "windows": [r["window"] for r in fresh]},
    )


def rollback_policy(comparison: Mapping[str, Any] | None, spec: RollbackSpec, note: str) -> Finding:
    """`comparison` is the paired bootstrap of (previous release - live release) on the same
    labelled production rows, improvement-signed: positive means the previous one is better;
    it fires when the previous one is superior by more than the margin, by the gate's rule
    (`pipeline.paired_bootstrap.passes`).
    The margin is an amount (`settings.Amount`): absolute in the metric's units, or relative to
    the live release's score on those rows, as the deploy gate's margin is to the incumbent's."""
    if comparison is None:
        return Finding("rollback", "rollback", False, note)
    amount = spec.margin
    margin = amount.resolve(comparison.get("incumbent"))
    low = comparison.get("low")
    fired = paired_bootstrap.passes(low, "superiority", margin)
    shown = "n/a" if low is None else f"{low:+.4f}"
    reason = (
        f"previous release better than the live one on {comparison['metric']} by "
        f"{comparison['estimate']:+.4f} (interval low {shown}; margin "
        f"{amount.describe(comparison.get('incumbent'), 'the live release')})"
    )
    evidence = {**comparison, "margin": amount.record(comparison.get("incumbent"))}
    return Finding("rollback", "rollback", fired, reason, evidence)


def alert_policy(history: Sequence[Mapping[str, Any]], checks: Sequence[str]) -> Finding:
    newest = judged(history)[-1] if judged(history) else None
    if newest is None:
        return Finding("alert", "alert", False, "no judged window")
    hit = sorted(_checks(newest) & set(checks))
    return Finding(
        "alert",
        "alert",
        bool(hit),
        f"window {newest['window']} violates {', '.join(hit)}"
        if hit
        else f"window {newest['window']} raises no alert",
        {"window": newest["window"], "checks": hit},
    )


def decision_id(action: str, target: str, release: str | None, evidence: Sequence[str]) -> str:
    """Same action on the same evidence = same id: applying it twice is detectable."""
    text = json.dumps([action, target, release, sorted(evidence)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decide(
    history: Sequence[Mapping[str, Any]],
    ledger: Sequence[Mapping[str, Any]],
    *,
    target: str,
    release: str | None,
    settings: Settings,
    comparison: Mapping[str, Any] | None = None,
    comparison_note: str = "not evaluated",
    monitoring: Mapping[str, Any] | None = None,
    line: str | None = None,
) -> dict[str, Any]:
    """The decision document (reports/maintain/decision.json without its inputs section).

    `monitoring` is the monitor's report.json, read only to say why no window counts. `line`
    names the live release's line of releases (`comparability.line_id`): cooldowns and earlier
    decisions of another line (a dataset selected before, with its own time range) do not
    apply; ledger entries written before lines were recorded count for every line."""
    ledger = [e for e in ledger if e.get("line") in (None, line)]
    windows = considered(history)
    as_of = max((r["end"] for r in windows), default=None)
    if not windows:
        return {
            "action": "none",
            "target": target,
            "release": release,
            "as_of": None,
            "decision_id": None,
            "reason": no_window_reason(history, monitoring),
            "policies": [],
            "cooldown": None,
            "line": line,
        }
    used = {w for entry in ledger for w in entry.get("windows", [])}
    findings = []
    if settings.rollback is not None:
        findings.append(rollback_policy(comparison, settings.rollback, comparison_note))
    if settings.drift_consecutive:
        findings.append(drift_policy(windows, settings.drift_consecutive))
    if settings.performance:
        findings.append(performance_policy(windows))
    if settings.max_age_days is not None:
        findings.append(age_policy(windows, release, settings.max_age_days))
    if settings.new_labels:
        findings.append(new_labels_policy(windows, used, settings.new_labels))
    if settings.alert_checks:
        findings.append(alert_policy(windows, settings.alert_checks))
    fired = [f for f in findings if f.fired]
    action = max((f.action for f in fired), key=RANK.__getitem__, default="none")
    cooldown = _cooldown(ledger, as_of, settings.cooldown_days, target)
    reason = "; ".join(f.reason for f in fired if f.action == action) or "no policy fired"
    if action in ("retrain", "rollback") and cooldown["active"]:
        reason = f"{action} suppressed by the cooldown until {cooldown['until']} ({reason})"
        action = "alert" if any(f.action == "alert" for f in fired) else "none"
    evidence = sorted({w for f in fired if f.action == action for w in _windows(f)})
    did = decision_id(action, target, release, evidence) if action != "none" else None
    if did is not None and any(e.get("decision_id") == did for e in ledger):
        reason = f"{action} {did} was already applied ({reason})"
        action, did, evidence = "none", None, []
    feed = [
        r["window"] for r in windows if r["window"] not in used and int(r.get("labelled") or 0) > 0
    ]
    return {
        "action": action,
        "target": target,
        "release": release,
        "as_of": as_of,
        "decision_id": did,
        "reason": reason,
        "evidence_windows": evidence,
        "feedback_windows": feed if action == "retrain" else [],
        "policies": [f.to_dict() for f in findings],
        "cooldown": cooldown,
        "line": line,
    }


def _windows(finding: Finding) -> list[str]:
    ev = finding.evidence
    return list(ev.get("windows") or ([ev["window"]] if "window" in ev else []))


def _cooldown(
    ledger: Sequence[Mapping[str, Any]], as_of: str | None, days: float, target: str
) -> dict[str, Any]:
    acted = [
        e
        for e in ledger
        if e.get("action") in ("retrain", "rollback")
        and e.get("target") == target
        and e.get("as_of")
    ]
    if not acted or as_of is None:
        return {"active": False, "days": days, "last": None, "until": None}
    last = max(acted, key=lambda e: e["as_of"])
    until = parse_time(last["as_of"]) + timedelta(days=days)
    return {
        "active": parse_time(as_of) < until,
        "days": days,
        "last": {
            "decision_id": last.get("decision_id"),
            "action": last["action"],
            "as_of": last["as_of"],
        },
        "until": until.isoformat(),
    }
