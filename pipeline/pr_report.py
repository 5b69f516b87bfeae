"""`mlops report --pr`: the one pull-request comment that says what a change did.

Compares two revisions of the repository (the pull request's base and the working tree after
`dvc repro`): the params that changed, the stages that re-ran (their entries in dvc.lock
differ), the metrics diff, the gate verdicts with their intervals, the rendered desired state
of kubernetes and systemd targets (a diff of their manifests and units), the monitoring verdict
and, when the `maintain` stage has written one, the maintenance decision. Missing reports are said,
never guessed; table cells are escaped (a `|` in a reason must not break the table).
It reads committed files only (`git show BASE:path` and the working tree), so it runs and is
tested locally exactly as CI runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from pipeline import vcs
from pipeline.config import PARAMS_FILE, flatten
from pipeline.paths import (
    DECISION,
    DEVELOP_METRICS,
    DVC_LOCK,
    MONITOR_METRICS,
    MONITOR_REPORT,
    SELECTION_REPORT,
    release_path,
    report_path,
    rollout_report_path,
)
from pipeline.release_record import ReleaseRecord, parse_record

MARKER = "<!-- gitops-mlops:pr-report -->"
Reader = Callable[[str], str | None]


def git_reader(root: Path, rev: str) -> Reader:
    """Read a file as of `rev` (None when it does not exist there)."""

    def read(path: str) -> str | None:
        proc = vcs.git(root, "show", f"{rev}:./{path}", check=False)  # ./: the project's
        return proc.stdout if proc.returncode == 0 else None

    return read


def tree_reader(root: Path) -> Reader:
    def read(path: str) -> str | None:
        file = root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None

    return read


def _yaml(text: str | None) -> Any:
    return yaml.safe_load(text) if text else None


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _leaves(data: Any) -> dict[str, Any]:
    return {k: v for k, v in flatten(data or {}).items() if not isinstance(v, Mapping)}


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell: a `|` or a newline would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if not isinstance(value, str) else value
    return _cell(text if len(text) <= 60 else text[:57] + "...")


def _number(value: Any) -> TypeGuard[int | float]:
    """A number with a meaningful difference (a bool is a flag: no delta)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def params_section(base: Reader, head: Reader) -> list[str]:
    before, after = _leaves(_yaml(base(PARAMS_FILE))), _leaves(_yaml(head(PARAMS_FILE)))
    keys = sorted(set(before) | set(after))
    changed = [k for k in keys if before.get(k, "<absent>") != after.get(k, "<absent>")]
    lines = ["### Params", ""]
    if not changed:
        return [*lines, "No params changed.", ""]
    lines += ["| key | base | this PR |", "|---|---|---|"]
    for key in changed[:60]:
        old = _fmt(before[key]) if key in before else "*absent*"
        new = _fmt(after[key]) if key in after else "*absent*"
        lines.append(f"| `{key}` | {old} | {new} |")
    if len(changed) > 60:
        lines.append(f"| ... | {len(changed) - 60} more | |")
    return [*lines, ""]


def stages_section(base: Reader, head: Reader) -> list[str]:
    before = (_yaml(base(DVC_LOCK.as_posix())) or {}).get("stages", {})
    after = (_yaml(head(DVC_LOCK.as_posix())) or {}).get("stages", {})
    reran = sorted(s for s in after if before.get(s) != after[s])
    removed = sorted(set(before) - set(after))
    lines = ["### Stages", ""]
    if not reran and not removed:
        return [*lines, "No stage re-ran: outputs are unchanged.", ""]
    if reran:
        lines.append(
            "Re-ran (their dvc.lock entries changed): " + ", ".join(f"`{s}`" for s in reran)
        )
    if removed:
        lines.append("Removed: " + ", ".join(f"`{s}`" for s in removed))
    return [*lines, ""]


def metrics_section(
    base: Reader,
    head: Reader,
    files: tuple[str, ...] = (DEVELOP_METRICS.as_posix(), MONITOR_METRICS.as_posix()),
) -> list[str]:
    lines = ["### Metrics", ""]
    rows = []
    for file in files:
        before, after = _leaves(_json(base(file))), _leaves(_json(head(file)))
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key), after.get(key)
            if old == new or not isinstance(new if new is not None else old, int | float):
                continue
            delta = f"{new - old:+.4g}" if _number(old) and _number(new) else ""
            rows.append(
                f"| `{file}` | `{key}` | {_fmt(old) if old is not None else '—'} | "
                f"{_fmt(new) if new is not None else '—'} | {delta} |"
            )
    if not rows:
        return [*lines, "No metric changed.", ""]
    return [
        *lines,
        "| file | metric | base | this PR | change |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def selection_section(head: Reader) -> list[str]:
    selection = _json(head(SELECTION_REPORT.as_posix()))
    if not selection:
        return []
    return ["### Champion", "", f"**{selection['champion']}** — {selection['reason']}.", ""]


# ------------------------------------------------------------------------------ gates
DECISION_MARK = {"propose": "✅ propose", "already_released": "➖ already released"}


def _targets(head: Reader, base: Reader) -> list[str]:
    """Targets in params order (fan-in iterates over declared keys, never over a folder)."""
    names: dict[str, None] = {}
    for read in (head, base):
        params = _yaml(read(PARAMS_FILE)) or {}
        names.update(dict.fromkeys((params.get("deploy") or {}).get("targets") or {}))
    return list(names)


def _interval(compare: Mapping[str, Any]) -> str:
    """The compare gate as one cell: estimate, interval, incumbent and the rule it met or not."""
    if not compare:
        return "—"
    if isinstance(compare.get("skipped"), str):  # a number there counts skipped resamples
        return f"skipped: {compare['skipped']}"
    metric = compare.get("metric", "?")
    if compare.get("estimate") is None:
        return f"{metric}: {compare.get('rule') or compare.get('problem') or 'not computed'}"
    low, high = compare.get("low"), compare.get("high")
    level = f"{float(compare.get('confidence', 0)):.0%}"
    ci = "no CI" if low is None or high is None else f"{level} CI [{low:+.4f}, {high:+.4f}]"
    versus = f" vs {compare['incumbent_release']}" if compare.get("incumbent_release") else ""
    verdict = "passed" if compare.get("passed") else "FAILED"
    return (
        f"{metric} {compare['estimate']:+.4f}, {ci}{versus}: {verdict} "
        f"({compare.get('mode')}, margin {_margin(compare.get('margin'))})"
    )


def _margin(margin: Any) -> str:
    """`0.0099 (relative 0.01)`, `0.02`; older reports recorded a plain number."""
    if not isinstance(margin, Mapping):
        return str(margin)
    kind, value = next(iter((margin.get("declared") or {}).items()), ("?", "?"))
    if "resolved" not in margin:
        return f"{kind} {value}"
    resolved = f"{margin['resolved']:.4g}"
    return f"{resolved} ({kind} {value})" if kind == "relative" else resolved


def _floors(floors: Mapping[str, Any]) -> str:
    cells = []
    for check in (floors or {}).get("checks", []):
        bound, sign = (check["ceiling"], "≤") if "ceiling" in check else (check.get("floor"), "≥")
        value = "n/a" if check.get("value") is None else f"{check['value']:.4f}"
        mark = "✅" if check.get("passed") else "❌"
        shown = "unresolved" if bound is None else f"{bound:.4g}"
        if check.get("source") == "baseline":
            base = check.get("baseline")
            shown += " (baseline " + ("undefined" if base is None else f"{base:.4g}") + ")"
        cells.append(f"{mark} {check['metric']} {value} {sign} {shown}")
    return "; ".join(cells) or "—"


def _released_evidence(
    target: str, doc: Mapping[str, Any], base: Reader, head: Reader, shown: str
) -> tuple[Mapping[str, Any], str]:
    """An already released champion has no gate run of its own (the gate found it released):
    its evidence is the one its release record (deploy/<target>.json) keeps from the gate run
    that let it through, which is what a reviewer of a release needs to see; and a release made
    by this pull request says so."""
    record = _record(head, target, "the pull request")
    current = (doc.get("current") or {}).get("release")
    if record is None or record.release != current:
        return doc.get("gates") or {}, shown
    before = _record(base, target, "the base")
    if (None if before is None else before.release) != current:
        shown += " (released by this PR)"
    return record.data.get("gates") or {}, shown


def _record(read: Reader, target: str, where: str) -> ReleaseRecord | None:
    """deploy/<target>.json as of one side (None when it has none), read with the one parser
    every reader uses: a broken record is an error here too."""
    path = release_path(target).as_posix()
    text = read(path)
    return None if text is None else parse_record(text, f"{path} ({where})", target)


def gates_section(base: Reader, head: Reader) -> list[str]:
    """Each target's gate decision (reports/deploy/<target>.json) with its evidence."""
    rows, blocked = [], []
    new_lines: list[tuple[str, Mapping[str, Any]]] = []
    for target in _targets(head, base):
        path = report_path(target).as_posix()
        doc = _json(head(path))
        if not doc:
            rows.append(f"| `{target}` | no report | — | — | — |")
            continue
        decision = str(doc.get("decision"))
        before = (_json(base(path)) or {}).get("decision")
        shown = DECISION_MARK.get(decision, f"⛔ **{decision}**")
        if before is not None and before != decision:
            shown += f" (base: {before})"
        proposal = doc.get("proposal") or {}
        release = (
            f"{proposal['release']} (parent {proposal.get('parent') or 'none'})"
            if proposal
            else (doc.get("current") or {}).get("release") or "—"
        )
        gates = doc.get("gates") or {}
        if decision == "already_released":
            gates, shown = _released_evidence(target, doc, base, head, shown)
        rows.append(
            f"| `{target}` | {shown} | {release} | {_cell(_interval(gates.get('compare') or {}))} "
            f"| {_floors(gates.get('floors') or {})} |"
        )
        if decision == "blocked":
            blocked.append((target, doc.get("reasons") or []))
        line = proposal.get("new_line") if proposal else None
        if line:
            new_lines.append((target, line))
    lines = ["### Deployment gates", ""]
    if not rows:
        return [*lines, "No deployment target is declared.", ""]
    lines += [
        "| target | decision | release | compare (improvement over the incumbent) | floors |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    for target, line in new_lines:
        lines.append(
            f"**`{target}` starts a new line of releases:** the incumbent "
            f"{line.get('replaces')} is not comparable, so there is no comparison with it; only "
            "the absolute gates (floors) and the smoke test applied. Why:"
        )
        lines += [f"- {_cell(d)}" for d in line.get("differences") or []]
        lines.append("")
    for target, reasons in blocked:
        lines.append(f"**`{target}` is blocked:**")
        lines += [f"- {reason}" for reason in reasons] or ["- (no reason recorded)"]
        lines.append("")
    return lines


# --------------------------------------------------------------------------- rollouts
def _rollout_state(record: ReleaseRecord | None) -> str:
    if record is None:
        return "—"
    rollout = record.rollout
    if rollout is None:
        return f"{record.release or '(none)'} serves everything"
    if rollout.status != "running":
        return f"{rollout.candidate.release} aborted ({rollout.reason}); {record.release} serves"
    return (
        f"{rollout.strategy} of {rollout.candidate.release}: step {rollout.step + 1}/"
        f"{len(rollout.steps)}, weight {rollout.weight}"
    )


def rollout_section(base: Reader, head: Reader) -> list[str]:
    """Each target with a rollout on either side: where it was and is, and the analysis behind
    the step this pull request makes (reports/rollout/<target>.json). Nothing without one."""
    lines: list[str] = []
    for target in _targets(head, base):
        before, after = _record(base, target, "the base"), _record(head, target, "the pull request")
        if not any(r is not None and r.rollout is not None for r in (before, after)):
            continue
        if not lines:
            lines = ["### Rollouts", ""]
        lines.append(
            f"**`{target}`**: {_cell(_rollout_state(before))} → {_cell(_rollout_state(after))}"
        )
        lines.append("")
        report = _json(head(rollout_report_path(target).as_posix()))
        if not report or (after is not None and after == before):
            continue
        lines += [
            f"Analysis of step {report['step'] + 1}/{report['steps']} ({report['strategy']}, "
            f"{report['hold']['candidate_requests']} candidate requests, hold "
            f"{'reached' if report['hold']['reached'] else 'not reached'}): "
            f"**{report['verdict']}**",
            "",
            "| check | value | threshold | interval | evidence | |",
            "|---|---|---|---|---|---|",
        ]
        for check in report["checks"]:
            interval = check.get("interval")
            shown = "—" if not interval else f"[{interval[0]}, {interval[1]}]"
            counts = ", ".join(f"{k} {v}" for k, v in (check.get("counts") or {}).items())
            mark = {True: "✅", False: "❌", None: "➖ not judged"}[check["passed"]]
            lines.append(
                f"| {check['name']} | {_fmt(check['value'])} | {check['op']} "
                f"{_fmt(check['threshold'])} | {shown} | {_cell(counts or '—')} | {mark} |"
            )
        lines += [""] + [f"- {_cell(r)}" for r in report.get("reasons") or []] + [""]
    return lines


# ------------------------------------------------------------------------- monitoring
MAX_VIOLATIONS = 10


# ----------------------------------------------------------------------- environments
DIFF_LINES = 150  # per target: a long rendering diff is cut, the files stay in the PR's diff


def _environment_files(params: Mapping[str, Any], target: str) -> list[str]:
    """The files a kubernetes or systemd target's rendering may hold, by path."""
    from pipeline.deploy.environments import kubernetes, systemd
    from pipeline.paths import environment_dir

    spec = ((params.get("deploy") or {}).get("targets") or {}).get(target) or {}
    kind = spec.get("kind")
    if kind not in ("kubernetes", "systemd"):
        return []
    folder = (spec.get(kind) or {}).get("path") or environment_dir(kind, target).as_posix()
    names = kubernetes.FILES if kind == "kubernetes" else systemd.unit_names(target)
    return [f"{folder}/{name}" for name in names]


def environments_section(base: Reader, head: Reader) -> list[str]:
    """The rendered desired state of kubernetes and systemd targets, as a diff from the base
    (what the cluster's GitOps controller or the machines' reconciler will apply)."""
    import difflib

    out: list[str] = []
    params = [_yaml(read(PARAMS_FILE)) or {} for read in (base, head)]
    for target in _targets(head, base):
        paths = list(
            dict.fromkeys(
                _environment_files(params[1], target) + _environment_files(params[0], target)
            )
        )
        lines: list[str] = []
        for path in paths:
            before, after = base(path), head(path)
            if before == after:
                continue
            lines += difflib.unified_diff(
                (before or "").splitlines(),
                (after or "").splitlines(),
                fromfile="/dev/null" if before is None else f"a/{path}",
                tofile="/dev/null" if after is None else f"b/{path}",
                lineterm="",
            )
        if not lines:
            continue
        cut = len(lines) > DIFF_LINES
        out += [f"**{_cell(target)}**", "", "```diff", *lines[:DIFF_LINES]]
        out += [f"... ({len(lines) - DIFF_LINES} more lines)"] if cut else []
        out += ["```", ""]
    if not out:
        return []
    return ["### Deployment environments (rendered desired state)", "", *out]


def monitor_section(base: Reader, head: Reader) -> list[str]:
    """What monitoring judged, the newest production window's verdict, its violations and the
    counts per status; the simulated scenarios in one line apart (they never count)."""
    lines = ["### Monitoring", ""]
    doc = _json(head(MONITOR_REPORT.as_posix()))
    if not doc:
        return [*lines, "No monitoring report (the `monitor` stage has not run).", ""]
    monitored = doc.get("monitored") or {}
    skipped = doc.get("skipped")
    if skipped:
        lines += [f"**Monitoring skipped**, no window judged: {skipped.get('reason')}.", ""]
        lines += [f"- {d}" for d in skipped.get("differences") or []]
        lines += [f"- hint: {skipped.get('hint')}", ""]
    elif monitored.get("label"):
        lines += [f"Judged against {monitored['label']}.", ""]
    summary, newest = doc.get("summary") or {}, doc.get("newest")
    simulated = ((doc.get("simulated") or {}).get("summary")) or {}
    if simulated.get("windows"):
        sim = simulated.get("by_status") or {}
        lines += [
            f"Simulated scenarios (never counted): {simulated['windows']} window(s), "
            f"{sim.get('breach', 0)} breach, {sim.get('ok', 0)} ok.",
            "",
        ]
    if not newest:
        return [*lines, "No production windows yet.", ""]
    status = str(newest.get("status"))
    was = ((_json(base(MONITOR_REPORT.as_posix())) or {}).get("summary") or {}).get("newest_status")
    change = f" (base: {was})" if was is not None and was != status else ""
    lines.append(
        f"**{status.upper()}**{change}: newest production window `{newest.get('id')}` "
        f"({newest.get('source', '?')}), {newest.get('rows')} rows, "
        f"{newest.get('labelled')} labelled."
    )
    counts = summary.get("by_status") or {}
    lines += [
        "",
        f"Production windows: {summary.get('windows', 0)} — {counts.get('ok', 0)} ok, "
        f"{counts.get('breach', 0)} breach, {counts.get('insufficient_data', 0)} "
        f"insufficient data, {counts.get('not_judged', 0)} not judged.",
        "",
    ]
    violations = newest.get("violations") or []
    if violations:
        lines.append(f"Violations in the newest window ({len(violations)}):")
        for v in violations[:MAX_VIOLATIONS]:
            lines.append(f"- `{v.get('check')}` ({v.get('subject')}): {v.get('message')}")
        if len(violations) > MAX_VIOLATIONS:
            lines.append(f"- ... {len(violations) - MAX_VIOLATIONS} more")
        lines.append("")
    return lines


# ------------------------------------------------------------------------ maintenance
MAINTAIN_DECISION = DECISION.as_posix()


def maintain_section(head: Reader, decision: Mapping[str, Any] | None = None) -> list[str]:
    """The maintenance decision, when the `maintain` stage has written one; or `decision`, the
    one that caused this change (`mlops maintain --apply` re-runs the stage, whose new
    decision then only says that the cause was applied)."""
    doc = decision if decision is not None else _json(head(MAINTAIN_DECISION))
    if not doc:
        return []
    action = str(doc.get("action"))
    cause = f" (decision `{doc['decision_id']}`)" if decision and doc.get("decision_id") else ""
    lines = ["### Maintenance", "", f"**{action}**{cause}: {doc.get('reason', '')}", ""]
    policies = doc.get("policies") or []
    if policies:
        lines += ["| policy | fired | reason |", "|---|---|---|"]
        for policy in policies:
            fired = "**yes**" if policy.get("fired") else "no"
            reason = _cell(policy.get("reason", ""))
            lines.append(f"| `{policy.get('policy')}` | {fired} | {reason} |")
        lines.append("")
    return lines


def problem_section(problem: str) -> list[str]:
    """Why no impact can be shown for the newest push (a failed check or `dvc repro`): the
    comment says so instead of keeping the previous push's numbers as if current. The headline
    is the step's `::error::` annotation (or its last error line), then the output itself."""
    lines = problem.strip().splitlines() or ["(no output)"]
    annotated = [line.split("::", 2)[2] for line in lines if line.startswith("::error")]
    errors = [line for line in lines if line.lower().startswith("error")]
    headline = (annotated or errors or lines)[-1 if annotated or errors else 0]
    return [
        "### ⛔ Not reproduced",
        "",
        f"**{_cell(headline)}**",
        "",
        "The impact of this push is unknown until this is fixed; earlier results no longer apply.",
        "",
        "```",
        *lines[:80],
        *(["..."] if len(lines) > 80 else []),
        "```",
        "",
    ]


def render(
    base: Reader,
    head: Reader,
    extra: list[list[str]] | None = None,
    *,
    problem: str | None = None,
    decision: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> str:
    """The markdown comment: marker first, so CI can find and update it in place. With
    `problem`, only that (see `problem_section`); with `decision`, the maintenance section
    shows it rather than the head's decision.json; `note` (e.g. the stages a fork's pull
    request could not reproduce) comes first, quoted."""
    parts = [MARKER, "## gitops-mlops: impact of this pull request", ""]
    if problem is not None:
        return "\n".join([*parts, *problem_section(problem)]).rstrip() + "\n"
    if note and note.strip():
        parts += [
            f"> ⚠️ {line}" if i == 0 else f"> {line}"
            for i, line in enumerate(note.strip().splitlines())
        ]
        parts.append("")
    parts += selection_section(head)
    parts += params_section(base, head)
    parts += stages_section(base, head)
    parts += metrics_section(base, head)
    parts += gates_section(base, head)
    parts += rollout_section(base, head)
    parts += environments_section(base, head)
    parts += monitor_section(base, head)
    parts += maintain_section(head, decision)
    for section in extra or []:
        parts += section
    return "\n".join(parts).rstrip() + "\n"
