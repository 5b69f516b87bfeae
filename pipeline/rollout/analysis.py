"""The analysis of a rollout step: a pure function of logged prediction entries (and feedback
labels), like monitoring is of windows. No clock, no service: the same log gives the same
report, byte for byte.

What a step is judged on (thresholds: `deploy.targets.<target>.strategy.analysis`):

* the candidate's error rate (failed model calls per record it was asked to score), with a
  Wilson interval; once the interval's lower bound passes `max_error_rate` the step is aborted
  at once, before its hold ends (a bad canary must not wait out its hold);
* latency: p50/p95/p99 of the model time per release, and the ratio of the candidate's p95 to
  the stable release's (`max_latency_ratio`);
* shadow: agreement with the stable release on the same requests (`min_agreement`, Wilson
  interval; regression: |difference| within `agreement_tolerance`);
* prediction drift between the two releases' predictions in the step (`max_prediction_drift`):
  the Jensen-Shannon distance of the label shares, or the normed Wasserstein distance of the
  values, computed by monitoring's statistics;
* labelled rows (feedback): accuracy (classification) may drop by at most `max_metric_drop`
  below the stable release's, RMSE (regression) rise by at most that share of it, once both
  releases have `min_labelled` labelled rows in the step (shadow: the same rows).

The step's hold (`requests`: records the candidate scored or failed; `seconds`: the span of the
step's logged times) must be reached before anything but the early abort is decided. Verdicts:
`wait` (hold not reached), `advance` (passed, more steps), `promote` (passed the last step),
`abort` (a check breached: the reasons say which).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.params import AnalysisSpec
from pipeline.release_record import ReleaseRecord

WAIT, ADVANCE, PROMOTE, ABORT = "wait", "advance", "promote", "abort"
STABLE, CANDIDATE = "stable", "candidate"


@dataclass
class Arm:
    """What one release did in the step."""

    release: str | None
    times: list[str] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    errors: int = 0


def wilson(successes: int, n: int, confidence: float) -> list[float] | None:
    """Wilson score interval of a proportion (None without observations)."""
    if n == 0:
        return None
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    import numpy as np

    p50, p95, p99 = np.percentile(np.asarray(values, dtype=float), [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


def _span_seconds(times: list[str]) -> float:
    if len(times) < 2:
        return 0.0
    parsed = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (min(times), max(times))]
    return (parsed[1] - parsed[0]).total_seconds()


def collect(
    entries: Iterable[Mapping[str, Any]], record: ReleaseRecord
) -> tuple[Arm, Arm, list[tuple[Any, Any, str]]]:
    """The step's entries split by release: (stable, candidate, shadow pairs of (stable
    prediction, candidate prediction, request id)). Entries of other steps, other rollouts
    and repeated request ids (a retried write) are left out."""
    rollout = record.running_rollout or record.rollout
    assert rollout is not None
    candidate = rollout.candidate.release
    stable, cand = Arm(record.release), Arm(candidate)
    pairs: list[tuple[Any, Any, str]] = []
    seen: set[tuple[str, bool]] = set()
    for entry in entries:
        tag = entry.get("rollout")
        if not isinstance(tag, Mapping) or tag.get("candidate") != candidate:
            continue
        if tag.get("step") != rollout.step:
            continue
        rid = str(entry.get("request_id"))
        failed = "error" in entry and "prediction" not in entry
        if (rid, failed) in seen:
            continue
        seen.add((rid, failed))
        arm = cand if tag.get("arm") == CANDIDATE else stable
        time = entry.get("time")
        if isinstance(time, str):
            arm.times.append(time)
        if failed:
            arm.errors += 1
            continue
        arm.predictions.append(entry.get("prediction"))
        arm.request_ids.append(rid)
        if isinstance(entry.get("model_ms"), int | float):
            arm.model_ms.append(float(entry["model_ms"]))
        shadow = entry.get("shadow")
        if isinstance(shadow, Mapping) and shadow.get("release") == candidate:
            if isinstance(time, str):
                cand.times.append(time)
            if "error" in shadow:
                cand.errors += 1
                continue
            cand.predictions.append(shadow.get("prediction"))
            cand.request_ids.append(rid)
            if isinstance(shadow.get("model_ms"), int | float):
                cand.model_ms.append(float(shadow["model_ms"]))
            pairs.append((entry.get("prediction"), shadow.get("prediction"), rid))
    return stable, cand, pairs


def analyse(
    entries: Iterable[Mapping[str, Any]],
    labels: Mapping[str, Any],
    record: ReleaseRecord,
    spec: AnalysisSpec,
    task: str,
) -> dict[str, Any]:
    """The report of the running rollout's current step (see the module docstring)."""
    rollout = record.running_rollout
    if rollout is None:
        raise ValueError("no running rollout")
    stable, cand, pairs = collect(entries, record)
    conf = spec.confidence
    checks: list[dict[str, Any]] = []

    attempted = len(cand.predictions) + cand.errors
    rate = None if attempted == 0 else cand.errors / attempted
    interval = wilson(cand.errors, attempted, conf)
    early = interval is not None and interval[0] > spec.max_error_rate
    checks.append(
        _check(
            "error_rate",
            None if rate is None else round(rate, 6),
            spec.max_error_rate,
            "<=",
            interval=interval,
            counts={"errors": cand.errors, "scored": len(cand.predictions)},
            passed=None if rate is None else (rate <= spec.max_error_rate and not early),
            stable={"errors": stable.errors, "scored": len(stable.predictions)},
        )
    )
    lat_s, lat_c = percentiles(stable.model_ms), percentiles(cand.model_ms)
    ratio = None
    if lat_s and lat_c and lat_s["p95"] > 0:
        ratio = round(lat_c["p95"] / lat_s["p95"], 4)
    checks.append(
        _check(
            "latency_p95_ratio",
            ratio,
            spec.max_latency_ratio,
            "<=",
            passed=None if ratio is None else ratio <= spec.max_latency_ratio,
            stable=lat_s,
            candidate=lat_c,
        )
    )
    if rollout.strategy == "shadow" and spec.min_agreement is not None:
        agree = sum(_agrees(a, b, task, spec.agreement_tolerance) for a, b, _ in pairs)
        share = None if not pairs else round(agree / len(pairs), 6)
        # two regression models never agree exactly: without a tolerance in the target's
        # units, agreement is not judged (prediction drift still is)
        unjudged = task == "regression" and spec.agreement_tolerance == 0
        checks.append(
            _check(
                "agreement",
                share,
                spec.min_agreement,
                ">=",
                interval=wilson(agree, len(pairs), conf),
                counts={"agreeing": agree, "paired": len(pairs)},
                passed=None if share is None or unjudged else share >= spec.min_agreement,
                note="regression: set agreement_tolerance to judge agreement" if unjudged else None,
            )
        )
    if spec.max_prediction_drift is not None:
        drift, method = prediction_drift(stable.predictions, cand.predictions, task)
        checks.append(
            _check(
                "prediction_drift",
                None if drift is None else round(drift, 6),
                spec.max_prediction_drift,
                "<=",
                method=method,
                counts={"stable": len(stable.predictions), "candidate": len(cand.predictions)},
                passed=None if drift is None else drift <= spec.max_prediction_drift,
            )
        )
    if spec.max_metric_drop is not None:
        checks.append(_labelled(stable, cand, pairs, labels, spec, task))

    hold = rollout.hold
    span = _span_seconds(stable.times + cand.times)
    reached = True
    if "requests" in hold:
        reached &= attempted >= int(hold["requests"])
    if "seconds" in hold:
        reached &= span >= float(hold["seconds"])
    breaches = [c for c in checks if c["passed"] is False]
    if early:
        verdict = ABORT
    elif not reached:
        verdict = WAIT
    elif breaches:
        verdict = ABORT
    else:
        verdict = PROMOTE if rollout.last_step else ADVANCE
    reasons = [_reason(c) for c in breaches] if verdict == ABORT else []
    if verdict == WAIT:
        reasons = [_waiting(hold, attempted, span)]
    return {
        "target": record.target,
        "stable": record.release,
        "candidate": rollout.candidate.release,
        "strategy": rollout.strategy,
        "step": rollout.step,
        "steps": len(rollout.steps),
        "weight": rollout.weight,
        "hold": {
            "declared": dict(hold),
            "candidate_requests": attempted,
            "span_seconds": round(span, 3),
            "reached": reached,
        },
        "confidence": conf,
        "checks": checks,
        "verdict": verdict,
        "reasons": reasons,
    }


def summary(report: Mapping[str, Any]) -> str:
    """One line for the record's decisions and the pull-request title."""
    judged = [c for c in report["checks"] if c["passed"] is not None]
    shown = ", ".join(f"{c['name']} {c['value']}" for c in judged) or "nothing judged yet"
    text = (
        f"{report['verdict']} at step {report['step'] + 1}/{report['steps']} "
        f"({report['hold']['candidate_requests']} candidate requests): {shown}"
    )
    if report["reasons"]:
        text += "; " + "; ".join(report["reasons"])
    return text


def _check(
    name: str, value: Any, threshold: Any, op: str, *, passed: bool | None, **evidence: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "op": op,
        "passed": passed,
        **{k: v for k, v in evidence.items() if v is not None},
    }


def _reason(check: Mapping[str, Any]) -> str:
    interval = check.get("interval")
    shown = f" (interval {interval[0]}..{interval[1]})" if interval else ""
    return f"{check['name']} {check['value']}{shown} breaches {check['op']} {check['threshold']}"


def _waiting(hold: Mapping[str, Any], requests: int, span: float) -> str:
    parts = []
    if "requests" in hold:
        parts.append(f"{requests} of {hold['requests']} candidate requests")
    if "seconds" in hold:
        parts.append(f"{span:.0f} of {hold['seconds']} seconds of traffic")
    return "holding: " + ", ".join(parts)


def _agrees(a: Any, b: Any, task: str, tolerance: float) -> bool:
    if task == "regression":
        try:
            return abs(float(a) - float(b)) <= tolerance
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)


def prediction_drift(
    stable: list[Any], candidate: list[Any], task: str
) -> tuple[float | None, str]:
    """Drift of the candidate's predictions from the stable release's: Jensen-Shannon distance
    of the label shares (classification) or normed Wasserstein distance of the values
    (regression), as monitoring computes them (`pipeline.monitor.stats`)."""
    import numpy as np

    from pipeline.monitor import stats

    if task == "regression":
        method = "wasserstein_normed"
        ref = np.sort(np.asarray([float(v) for v in stable if v is not None], dtype=float))
        cur = np.sort(np.asarray([float(v) for v in candidate if v is not None], dtype=float))
        if ref.size == 0 or cur.size == 0:
            return None, method
        from pipeline.profile.sample import Sample

        value = stats.wasserstein_norm(Sample(ref), Sample(cur), float(np.std(ref)))
        return float(value), method
    method = "jensenshannon"
    if not stable or not candidate:
        return None, method
    keys = sorted({str(v) for v in stable} | {str(v) for v in candidate})
    ref_counts = np.array([sum(str(v) == k for v in stable) for k in keys], dtype=float)
    cur_counts = np.array([sum(str(v) == k for v in candidate) for k in keys], dtype=float)
    return float(stats.jensen_shannon(ref_counts, cur_counts)), method


def _labelled(
    stable: Arm,
    cand: Arm,
    pairs: list[tuple[Any, Any, str]],
    labels: Mapping[str, Any],
    spec: AnalysisSpec,
    task: str,
) -> dict[str, Any]:
    """Accuracy (classification) or RMSE (regression) of both releases on the step's labelled
    rows: the same rows in shadow mode, each release's own rows in a canary."""
    if pairs:
        rows = [(a, b, labels[rid]) for a, b, rid in pairs if rid in labels]
        s_rows = [(a, y) for a, _, y in rows]
        c_rows = [(b, y) for _, b, y in rows]
    else:
        s_rows = [
            (p, labels[r])
            for p, r in zip(stable.predictions, stable.request_ids, strict=True)
            if r in labels
        ]
        c_rows = [
            (p, labels[r])
            for p, r in zip(cand.predictions, cand.request_ids, strict=True)
            if r in labels
        ]
    limit = spec.max_metric_drop
    assert limit is not None
    metric = "rmse" if task == "regression" else "accuracy"
    counts = {"stable": len(s_rows), "candidate": len(c_rows)}
    if min(len(s_rows), len(c_rows)) < spec.min_labelled:
        return _check(
            f"labelled_{metric}_drop",
            None,
            spec.max_metric_drop,
            "<=",
            passed=None,
            counts=counts,
            needs=spec.min_labelled,
        )
    if task == "regression":
        s_val = math.sqrt(sum((float(p) - float(y)) ** 2 for p, y in s_rows) / len(s_rows))
        c_val = math.sqrt(sum((float(p) - float(y)) ** 2 for p, y in c_rows) / len(c_rows))
        drop = (c_val - s_val) / s_val if s_val > 0 else (0.0 if c_val == 0 else math.inf)
        intervals = None
    else:
        s_hits = sum(str(p) == str(y) for p, y in s_rows)
        c_hits = sum(str(p) == str(y) for p, y in c_rows)
        s_val, c_val = s_hits / len(s_rows), c_hits / len(c_rows)
        drop = s_val - c_val
        intervals = {
            "stable": wilson(s_hits, len(s_rows), spec.confidence),
            "candidate": wilson(c_hits, len(c_rows), spec.confidence),
        }
    return _check(
        f"labelled_{metric}_drop",
        round(drop, 6),
        spec.max_metric_drop,
        "<=",
        passed=drop <= limit,
        counts=counts,
        stable=round(s_val, 6),
        candidate=round(c_val, 6),
        intervals=intervals,
    )
