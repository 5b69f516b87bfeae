"""`reports/monitor/report.html`: one self-contained page, hand-written HTML with inline CSS and
SVG. No script, no font, no image, no link to anything (the favicon is an empty data: URL, so a
browser does not even ask for /favicon.ico): it opens from a CI artifact, a mail attachment or an
air-gapped machine exactly as it does here, and a test renders it in headless Chromium and
asserts zero network requests and no console errors.

Sections: what is judged (the release, its bundle and the reference built from that bundle's
training split) or why nothing is (monitoring skipped); then production traffic, the headline:
the newest production window's verdict (violations first), the history trend (drift share and
the headline metric per window, points coloured by status) with the list of windows, the
per-column verdict table, performance on labelled rows, and reference-vs-current plots for every
monitored column and for the predictions (overlaid histograms on shared bins for numeric data,
paired bars for categories), drifted columns first. Simulated scenarios follow in a labelled
section of their own with the same parts; they never count for `mlops monitor --check` or
maintenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.monitor.assess import BREACH, INSUFFICIENT, NOT_JUDGED, OK, Context
from pipeline.monitor.stats import histogram_counts
from pipeline.monitor.task_metrics import HEADLINE_METRIC, label_metrics
from pipeline.profile.reference import (
    CategoricalReference,
    ColumnReference,
    category_counts,
    numeric_values,
)
from pipeline.profile.sample import Sample
from pipeline.windows import PREDICTION

if TYPE_CHECKING:
    import pandas as pd

BINS = 20
MAX_CATEGORIES = 10
STATUS_WORD = {
    OK: "OK",
    BREACH: "BREACH",
    INSUFFICIENT: "INSUFFICIENT DATA",
    NOT_JUDGED: "NOT JUDGED",
}
STATUS_COLOR = {OK: "#1a7f37", BREACH: "#cf222e", INSUFFICIENT: "#6e7781", NOT_JUDGED: "#9a6700"}

CSS = """
:root { --ok: #1a7f37; --breach: #cf222e; --insufficient: #6e7781; --ref: #8c959f;
  --cur: #0969da; --ink: #1f2328; --muted: #59636e; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0 auto; max-width: 1180px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted { color: var(--muted); } code { font-size: 12px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff;
  font-weight: 600; font-size: 12px; letter-spacing: .03em; }
.ok { background: var(--ok); } .breach { background: var(--breach); }
.insufficient_data { background: var(--insufficient); } .not_judged { background: #9a6700; }
.verdict { border: 1px solid var(--line); border-left: 6px solid var(--ok); border-radius: 6px;
  padding: 12px 16px; background: var(--bg); }
.verdict.breach-box { border-left-color: var(--breach); }
.verdict.insufficient-box { border-left-color: var(--insufficient); }
.verdict.skipped-box { border-left-color: #9a6700; }
section.simulated { border-top: 3px dashed var(--line); margin-top: 32px; }
.verdict ul { margin: 6px 0 0; padding-left: 20px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #ffebe9; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 10px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
figure.drifted { border-color: var(--breach); }
figcaption { font-size: 12px; }
.key { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
"""


def fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return format(float(value), spec)


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share:.1%}"


def badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{STATUS_WORD.get(status, status)}</span>'


# ---------------------------------------------------------------------------------- the verdict
def monitored_line(doc: Mapping[str, Any]) -> str:
    """What is judged: the release, its bundle, and the reference from its training split."""
    mon = doc["monitored"]
    bundle = mon["bundle"]
    what = (
        f"release <b>{escape(mon['release'])}</b>"
        if mon.get("release")
        else "the unreleased champion"
    )
    reference = (
        f"reference: {mon['reference_rows']} training rows of this bundle "
        f"({escape(mon['reference_mode'])})"
        if mon.get("reference_rows") is not None
        else "no reference used"
    )
    line = (
        f"<p class='muted' id='monitored'>judging {what} · bundle "
        f"<code>{escape(bundle['id'])}</code> ({escape(bundle['source'])}, "
        f"<code>{escape(bundle['path'])}</code>) · target <b>{escape(mon['target'])}</b> · "
        f"task {escape(mon['task'])} · {reference}</p>"
    )
    return line + rollout_line(mon.get("rollout"))


def rollout_line(rollout: Mapping[str, Any] | None) -> str:
    """A running rollout beside the judged release (nothing without one)."""
    if not rollout:
        return ""
    share = (
        "scores every request in the shadow (never answered)"
        if rollout["strategy"] == "shadow"
        else f"answers {float(rollout['weight']):.0%} of the traffic"
    )
    return (
        f"<p id='rollout'>{escape(rollout['strategy'])} rollout: candidate "
        f"<b>{escape(rollout['candidate'])}</b> {share}, step {int(rollout['step']) + 1} of "
        f"{int(rollout['steps'])}; last step: {escape(rollout['last_decision'])}. Monitoring "
        "judges the release above; the candidate is judged by <code>mlops rollout analyze</code> "
        "(reports/rollout/).</p>"
    )


def skipped_section(doc: Mapping[str, Any]) -> str:
    skipped = doc.get("skipped")
    if not skipped:
        return ""
    items = "".join(f"<li>{escape(d)}</li>" for d in skipped["differences"])
    return (
        "<div class='verdict skipped-box' id='skipped'>"
        f"<div>{badge(NOT_JUDGED)} <b>Monitoring skipped</b>: {escape(skipped['reason'])}. "
        "No window is judged.</div>"
        + (f"<ul>{items}</ul>" if items else "")
        + f"<p class='muted'>{escape(skipped['hint'])}</p></div>"
    )


def verdict_section(part: Mapping[str, Any], what: str, prefix: str = "") -> str:
    """The newest window of one group (`part`: a section of report.json) and the counts."""
    latest = part["newest"]
    if latest is None:
        return f"<p class='verdict' id='{prefix}verdict'>No {what} windows yet: nothing judged.</p>"
    box = {
        BREACH: "breach-box",
        INSUFFICIENT: "insufficient-box",
        NOT_JUDGED: "skipped-box",
    }.get(latest["status"], "")
    scenario = latest.get("scenario") or {}
    lines = [
        f"<div class='verdict {box}' id='{prefix}verdict'>",
        f"<div>{badge(latest['status'])} newest {what} window <code>{escape(latest['id'])}</code> "
        f"({escape(latest['source'])}"
        + (f", scenario <b>{escape(scenario['scenario'])}</b>" if scenario else "")
        + f") · {latest['rows']} rows, {latest['labelled']} labelled · "
        f"{escape(latest['start'])} → {escape(latest['end'])}</div>",
    ]
    items = [
        f"<li><b>{escape(v['check'])}</b>: {escape(v['message'])}</li>"
        for v in latest["violations"]
    ]
    items += [f"<li class='muted'>{escape(n)}</li>" for n in latest.get("notes") or []]
    if scenario.get("injected"):
        injected = "; ".join(_effect(k, v) for k, v in scenario["injected"].items())
        items.append(f"<li class='muted'>injected by the simulator: {escape(injected)}</li>")
    if items:
        lines.append("<ul>" + "".join(items) + "</ul>")
    lines.append("</div>")
    lines.append(f"<p>{counts_text(part['summary'])}</p>")
    return "".join(lines)


def counts_text(summary: Mapping[str, Any]) -> str:
    by_status = summary["by_status"]
    text = (
        f"{summary['windows']} window(s): {by_status[OK]} ok, {by_status[BREACH]} breach, "
        f"{by_status[INSUFFICIENT]} insufficient data"
    )
    if by_status.get(NOT_JUDGED):
        text += f", {by_status[NOT_JUDGED]} not judged"
    return text + "."


def _effect(name: str, spec: Mapping[str, Any]) -> str:
    """One simulated effect in words: `shift of a, b (by_std 1)`, `label_noise (share 0.3)`."""
    details = ", ".join(f"{k} {v:g}" for k, v in spec.items() if k != "columns")
    columns = f" of {', '.join(spec['columns'])}" if "columns" in spec else ""
    return f"{name}{columns} ({details})"


def checks_table(latest: Mapping[str, Any], prefix: str = "") -> str:
    """Every check of the newest window, violations first (then not judged, then passed)."""
    checks = latest.get("checks") or []
    if not checks:
        return "<p class='muted'>No checks: no verdict for this window (see its notes).</p>"
    word = {False: ("violated", BREACH), None: ("not judged", INSUFFICIENT), True: ("passed", OK)}
    rows = [
        f"<table id='{prefix}checks'><tr><th>result</th><th>check</th><th>subject</th>"
        "<th>detail</th></tr>"
    ]
    for c in checks:
        text, status = word[c["ok"]]
        rows.append(
            f"<tr{' class=bad' if c['ok'] is False else ''}>"
            f"<td><span class='badge {status}'>{text}</span></td><td>{escape(c['check'])}</td>"
            f"<td>{escape(c['subject'])}</td><td>{escape(c['message'])}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


# ---------------------------------------------------------------------------------- the history
def trend_svg(
    results: Sequence[Mapping[str, Any]], task: str, prefix: str = "", offset: int = 0
) -> str:
    """Drift share and the headline metric per window (x: window order), coloured by status."""
    width, height, left, right, top, bottom = 760, 210, 40, 12, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(results)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else 0)

    def y(v: float) -> float:
        return top + plot_h * (1 - min(max(v, 0.0), 1.0))

    metric = HEADLINE_METRIC[task]
    parts = [
        f'<svg id="{prefix}trend" role="img" aria-label="monitoring history" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">'
    ]
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#d0d7de"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick:g}</text>'
        )
    series = {
        "drift share": ("#cf222e", [_dataset(r).get("share") for r in results]),
        metric: ("#0969da", [_perf(r, metric) for r in results]),
    }
    for color, values in series.values():
        points = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None]
        if points:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                f'points="{" ".join(points)}"/>'
            )
    colors = STATUS_COLOR
    for i, r in enumerate(results):
        share = _dataset(r).get("share")
        cy = y(share if share is not None else 0.0)
        tip = f"{r['id']} ({r['source']}): {r['status']}"
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{cy:.1f}" r="5" fill="{colors[r["status"]]}">'
            f"<title>{escape(tip)}</title></circle>"
        )
        value = _perf(r, metric)
        if value is not None:
            parts.append(
                f'<rect x="{x(i) - 3:.1f}" y="{y(value) - 3:.1f}" width="6" height="6" '
                f'fill="#0969da"><title>{escape(f"{metric} {value:.4f}")}</title></rect>'
            )
        if n <= 40 or i % max(1, n // 20) == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="middle">'
                f"{offset + i + 1}</text>"
            )
    parts.append("</svg>")
    legend = (
        "<div class='muted'><span class='key' style='background:#cf222e'></span>drift share"
        f"<span class='key' style='background:#0969da'></span>{escape(metric)} on labelled rows"
        "<span class='key' style='background:#1a7f37;border-radius:5px'></span>ok"
        "<span class='key' style='background:#cf222e;border-radius:5px'></span>breach"
        "<span class='key' style='background:#6e7781;border-radius:5px'></span>insufficient "
        "data<span class='key' style='background:#9a6700;border-radius:5px'></span>not judged"
        " · x: windows in time order (numbered as in the table)</div>"
    )
    return "".join(parts) + legend


def _dataset(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return (result.get("drift") or {}).get("dataset") or {}


def _perf(result: Mapping[str, Any], metric: str) -> float | None:
    perf = (result.get("performance") or {}).get("metrics") or {}
    return perf.get(metric, {}).get("value")


def history_table(
    results: Sequence[Mapping[str, Any]], task: str, prefix: str = "", offset: int = 0
) -> str:
    metric = HEADLINE_METRIC[task]
    rows = [
        f"<table id='{prefix}windows'><tr><th>#</th><th>window</th><th>source</th><th>scenario</th>"
        f"<th>rows</th><th>labelled</th><th>status</th><th>drift share</th><th>{metric}</th>"
        "<th>violations</th></tr>"
    ]
    for i, r in enumerate(results):
        scenario = (r.get("scenario") or {}).get("scenario") or ""
        checks = ", ".join(sorted({v["check"] for v in r["violations"]}))
        if r["status"] == NOT_JUDGED:
            checks = "; ".join(r.get("notes") or [])
        rows.append(
            f"<tr{' class=bad' if r['status'] == BREACH else ''}><td>{offset + i + 1}</td>"
            f"<td><code>{escape(r['id'])}</code></td><td>{escape(r['source'])}</td>"
            f"<td>{escape(scenario)}</td><td class=num>{r['rows']}</td>"
            f"<td class=num>{r['labelled']}</td><td>{badge(r['status'])}</td>"
            f"<td class=num>{fmt(_dataset(r).get('share'), '.2f')}</td>"
            f"<td class=num>{fmt(_perf(r, metric))}</td><td>{escape(checks)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def buckets_table(history: Mapping[str, Any], prefix: str = "") -> str:
    """report.json's `history` buckets: consecutive windows, counted and summarised."""
    rows = [
        f"<p class='muted'>{history['windows']} windows in buckets of {history['bucket_windows']}"
        " consecutive windows; history.csv lists every production window.</p>"
        f"<table id='{prefix}buckets'><tr><th>windows</th><th>from</th><th>to</th><th>rows</th>"
        "<th>ok</th><th>breach</th><th>insufficient</th><th>not judged</th>"
        "<th>dataset drift</th><th>drift share (mean / max)</th></tr>"
    ]
    for b in history["buckets"]:
        by = b["by_status"]
        rows.append(
            f"<tr><td class=num>{b['windows']}</td><td><code>{escape(b['first'])}</code></td>"
            f"<td><code>{escape(b['last'])}</code></td><td class=num>{b['rows']}</td>"
            f"<td class=num>{by[OK]}</td><td class=num>{by[BREACH]}</td>"
            f"<td class=num>{by[INSUFFICIENT]}</td><td class=num>{by[NOT_JUDGED]}</td>"
            f"<td class=num>{b['dataset_drift']}</td><td class=num>"
            f"{fmt(b['drift_share_mean'], '.2f')} / {fmt(b['drift_share_max'], '.2f')}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


# ------------------------------------------------------------------------ the newest window
def columns_table(latest: Mapping[str, Any], prefix: str = "") -> str:
    drift = latest.get("drift")
    if not drift:
        return "<p class='muted'>No verdict for this window.</p>"
    cols = list(drift["columns"].values())
    if latest.get("prediction"):
        cols.append(latest["prediction"])
    cols.sort(
        key=lambda c: (not (c["drifted"] or c["null_share_drifted"]), c["column"] != PREDICTION)
    )
    rows = [
        f"<table id='{prefix}verdicts'><tr><th>column</th><th>kind</th><th>method</th>"
        "<th>statistic</th><th>threshold</th><th>drifted</th>"
        "<th>null share: reference → current</th><th>status</th></tr>"
    ]
    for c in cols:
        bad = c["drifted"] or c["null_share_drifted"]
        null = f"{_percent(c['reference_null_share'])} → {_percent(c['current_null_share'])}"
        null += " ⚠" if c["null_share_drifted"] else ""
        rows.append(
            f"<tr{' class=bad' if bad else ''}><td>{escape(c['column'])}</td>"
            f"<td>{escape(c['kind'])}</td><td>{escape(c['method'] or '–')}</td>"
            f"<td class=num>{fmt(c['statistic'])}</td><td class=num>{fmt(c['threshold'])}</td>"
            f"<td>{fmt(c['drifted'])}</td><td>{escape(null)}</td>"
            f"<td>{escape(c['status'])}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def performance_table(latest: Mapping[str, Any], task: str, prefix: str = "") -> str:
    perf = latest.get("performance")
    if not perf:
        return "<p class='muted'>No verdict for this window.</p>"
    state = {
        "judged": "judged",
        "insufficient_labels": f"not judged: fewer than {perf['min_labelled']} labelled rows",
        "no_labels": "no labels have arrived",
    }[perf["status"]]
    rows = [
        f"<p>{perf['labelled']} labelled row(s) of {latest['rows']} ({escape(state)}); rows "
        f"whose label has not arrived are left out.</p><table id='{prefix}performance'><tr>"
        "<th>metric</th>"
        "<th>window</th><th>test (bundle)</th><th>floor</th><th>worsening</th>"
        "<th>allowed</th><th>ok</th></tr>"
    ]
    for name in label_metrics(task):
        m = perf["metrics"].get(name)
        if m is None:
            continue
        ok = m["floor_ok"] is not False and m["drop_ok"] is not False
        rows.append(
            f"<tr{'' if ok else ' class=bad'}><td>{escape(name)}</td>"
            f"<td class=num>{fmt(m['value'])}</td><td class=num>{fmt(m['test'])}</td>"
            f"<td class=num>{fmt(m['floor'])}</td><td class=num>{fmt(m['worsening'])}</td>"
            f"<td class=num>{fmt(m['allowed_drop'])}</td><td>{fmt(ok)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


# ------------------------------------------------------------------------ distribution plots
def numeric_bins(
    ref: ColumnReference, series: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Shares of reference and current values in equal-width bins over the bulk of both.

    The range is the reference's 5-95% quantile range widened by half its width on each side
    (clipped to the data) joined with the current 1-99% range, so one outlier does not squash
    the plot; values beyond it are counted in the end bins.
    """
    assert not isinstance(ref, CategoricalReference)
    cur, _, _ = numeric_values(series, ref.name, "current")
    cur.sort()
    q5, q95 = float(ref.histogram_edges[0]), float(ref.histogram_edges[-1])
    lo = max(ref.minimum, q5 - (q95 - q5) / 2)
    hi = min(ref.maximum, q95 + (q95 - q5) / 2)
    if cur.size:
        lo = min(lo, float(np.quantile(cur, 0.01)))
        hi = max(hi, float(np.quantile(cur, 0.99)))
    if lo >= hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, BINS + 1)
    open_edges = np.concatenate(([-np.inf], edges[1:-1], [np.inf]))
    ref_counts = histogram_counts(ref.sample, open_edges)
    cur_counts = histogram_counts(Sample(cur), open_edges) if cur.size else np.zeros(BINS)
    return [fmt(lo), fmt(hi)], _shares(ref_counts), _shares(cur_counts)


def category_bins(
    ref: CategoricalReference, series: pd.Series
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Shares of the most common categories (reference and current together), then "other"."""
    keys, counts, _ = category_counts(series)
    cur = dict(zip(keys.tolist(), counts.tolist(), strict=True))
    refd = dict(zip(ref.categories.tolist(), ref.counts.tolist(), strict=True))
    ref_total, cur_total = max(sum(refd.values()), 1), max(sum(cur.values()), 1)
    union = sorted(
        set(refd) | set(cur),
        key=lambda k: (-(refd.get(k, 0) / ref_total + cur.get(k, 0) / cur_total), k),
    )
    shown = union[:MAX_CATEGORIES]
    r = [refd.get(k, 0) / ref_total for k in shown]
    c = [cur.get(k, 0) / cur_total for k in shown]
    if len(union) > MAX_CATEGORIES:
        shown = [*shown, "other"]
        r.append(1 - sum(r))
        c.append(1 - sum(c))
    return shown, np.asarray(r), np.asarray(c)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def panel_svg(labels: list[str], ref: np.ndarray, cur: np.ndarray, categorical: bool) -> str:
    width, height, pad, top, base = 256, 112, 6, 6, 92
    top_share = max(float(ref.max(initial=0)), float(cur.max(initial=0)), 1e-9)
    n = len(ref)
    slot = (width - 2 * pad) / max(n, 1)

    def h(v: float) -> float:
        return (base - top) * v / top_share

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">']
    for i in range(n):
        x0 = pad + i * slot
        if categorical:
            w = slot * 0.4
            parts.append(
                f'<rect x="{x0 + slot * 0.1:.1f}" y="{base - h(ref[i]):.1f}" width="{w:.1f}" '
                f'height="{h(ref[i]):.1f}" fill="#8c959f"/>'
                f'<rect x="{x0 + slot * 0.5:.1f}" y="{base - h(cur[i]):.1f}" width="{w:.1f}" '
                f'height="{h(cur[i]):.1f}" fill="#0969da" fill-opacity="0.8"/>'
            )
        else:
            parts.append(
                f'<rect x="{x0:.1f}" y="{base - h(ref[i]):.1f}" width="{slot:.1f}" '
                f'height="{h(ref[i]):.1f}" fill="#8c959f" fill-opacity="0.6"/>'
                f'<rect x="{x0:.1f}" y="{base - h(cur[i]):.1f}" width="{slot:.1f}" '
                f'height="{h(cur[i]):.1f}" fill="none" stroke="#0969da" stroke-width="1.5"/>'
            )
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{base}" y2="{base}" stroke="#59636e"/>')
    if categorical:
        for i, label in enumerate(labels):
            text = label if len(label) <= 8 else label[:7] + "…"
            parts.append(
                f'<text x="{pad + (i + 0.5) * slot:.1f}" y="{base + 13}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
    else:
        parts.append(
            f'<text x="{pad}" y="{base + 13}">{escape(labels[0])}</text>'
            f'<text x="{width - pad}" y="{base + 13}" text-anchor="end">{escape(labels[1])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def distributions(latest: Mapping[str, Any], frame: pd.DataFrame, ctx: Context) -> str:
    drift = latest.get("drift")
    if not drift:
        return "<p class='muted'>No verdict for this window.</p>"
    verdicts = dict(drift["columns"])
    refs: dict[str, ColumnReference] = dict(ctx.reference.columns)
    if latest.get("prediction"):
        verdicts[PREDICTION] = latest["prediction"]
        refs[PREDICTION] = ctx.prediction_reference.columns[PREDICTION]
    order = sorted(verdicts, key=lambda k: (not verdicts[k]["drifted"], k != PREDICTION, k))
    figures = []
    for name in order:
        ref, verdict = refs[name], verdicts[name]
        series = frame[name]  # absent columns were added as all null (assess.features_frame)
        if isinstance(ref, CategoricalReference):
            labels, r, c = category_bins(ref, series)
            svg = panel_svg(labels, r, c, categorical=True)
        else:
            labels, r, c = numeric_bins(ref, series)
            svg = panel_svg(labels, r, c, categorical=False)
        stat = verdict["status"]
        if verdict["method"]:
            stat = f"{verdict['method']} {fmt(verdict['statistic'])}"
            stat += f" (threshold {fmt(verdict['threshold'])})"
        title = "predictions" if name == PREDICTION else name
        figures.append(
            f"<figure class='{'drifted' if verdict['drifted'] else ''}'>"
            f"<figcaption><b>{escape(title)}</b> · {escape(stat)}"
            + (" · <b style='color:#cf222e'>drift</b>" if verdict["drifted"] else "")
            + f"</figcaption>{svg}</figure>"
        )
    legend = (
        "<p class='muted'><span class='key' style='background:#8c959f'></span>reference "
        "(the judged bundle's training split; its test-split predictions for predictions)"
        "<span class='key' style='background:#0969da'></span>newest window · share of "
        "non-null values per bin (numeric: equal-width bins over both ranges)</p>"
    )
    return legend + "<div class='grid'>" + "".join(figures) + "</div>"


# ------------------------------------------------------------------------------------ the page
def group_body(
    part: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    ctx: Context,
    frame: pd.DataFrame | None,
    what: str,
    prefix: str = "",
) -> list[str]:
    """One group's sections: its newest window's verdict and checks, its history, and the
    newest window's columns, performance and distributions."""
    task = ctx.settings.task
    latest = part["newest"]
    body = [verdict_section(part, what, prefix)]
    if latest is None:
        return body
    body += [f"<h3>Checks · newest {what} window</h3>", checks_table(latest, prefix)]
    history = part["history"]
    shown = results[len(results) - history["detailed"] :]
    offset = len(results) - len(shown)
    if offset:  # more windows than the report details: the whole history, summarised
        body += [
            f"<h3>Whole history · {what} windows</h3>",
            buckets_table(history, prefix),
            f"<h3>History · latest {len(shown)} of {len(results)} {what} windows</h3>",
        ]
    else:
        body.append(f"<h3>History · {what} windows</h3>")
    body += [
        trend_svg(shown, task, prefix, offset),
        history_table(shown, task, prefix, offset),
    ]
    if latest.get("drift"):
        body += [
            f"<h3>Columns · newest {what} window <code>{escape(latest['id'])}</code></h3>",
            columns_table(latest, prefix),
            "<h3>Performance on labelled rows</h3>",
            performance_table(latest, task, prefix),
            f"<h3>Reference vs current · newest {what} window</h3>",
            distributions(latest, frame, ctx) if frame is not None else "",
        ]
    return body


def render(
    doc: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    ctx: Context,
    newest_frames: Mapping[str, pd.DataFrame],
) -> str:
    """The whole page as one string (deterministic: same inputs, same bytes). `newest_frames`:
    the newest judged window's monitored columns per group ("production", "simulated")."""
    from pipeline.monitor.report import PRODUCTION, SIMULATED, split

    groups = split(results)
    body = ["<h1>Monitoring report</h1>", monitored_line(doc), skipped_section(doc)]
    body += ["<h2>Production traffic</h2>"]
    body += group_body(doc, groups[PRODUCTION], ctx, newest_frames.get(PRODUCTION), "production")
    simulated = doc[SIMULATED]
    if simulated["windows"]:
        body += [
            "<section class='simulated' id='simulated'><h2>Simulated scenarios</h2>",
            f"<p class='muted'>{escape(simulated['note'])}.</p>",
            *group_body(
                simulated, groups[SIMULATED], ctx, newest_frames.get(SIMULATED), "simulated", "sim-"
            ),
            "</section>",
        ]
    body.append(
        "<p class='muted'>Written by the <code>monitor</code> stage (<code>dvc repro</code>) or "
        "<code>mlops monitor --input</code>; machine-readable: report.json, metrics.json, "
        "history.csv (production windows only).</p>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'><title>Monitoring report</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
