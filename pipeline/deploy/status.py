"""`mlops status`: one screen answering "is what runs what git says should run?".

* config: is params.yaml what conf/ composes to (`config.check`)?
* stages: does `dvc status` report anything to re-run?
* champion: the selected model and its bundle id.
* per target: the declared release (deploy/<target>.json), the last gate decision
  (reports/deploy/<target>.json), and for a service the live release, from
  `GET http://<host>:<port>/version` (`pipeline.deploy.live`, the one client):
  "in sync" when both name the same release and bundle, "out of sync" otherwise,
  "unreachable" when the service does not answer within the timeout; during a rollout, the
  candidate, step and weight too, and the last step's decision.

Nothing here writes a file. The HTTP client and the `dvc status` call are parameters, so tests
can use stand-ins (httpx.MockTransport) and the real thing alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import vcs
from pipeline.bundle_format import MANIFEST
from pipeline.deploy.live import describe, read_version, serves_record, service_url
from pipeline.errors import MlopsError, ToolError
from pipeline.paths import CHAMPION_BUNDLE, CHAMPION_RECORD, release_path, report_path
from pipeline.release_record import ReleaseRecord, read_record

if TYPE_CHECKING:
    import httpx

StagesCheck = Callable[[Path], str]


def dvc_stages(root: Path) -> str:
    """'up to date', or which stages `dvc status` says changed."""
    if vcs.find("dvc") is None:
        return "unknown (dvc not found)"
    try:
        proc = vcs.dvc(root, "status", "--json", check=False, timeout=120)
        changed = json.loads(proc.stdout or "{}") if proc.returncode == 0 else None
    except (ToolError, ValueError):
        changed = None
    if changed is None:
        return "unknown (`dvc status` failed)"
    if not changed:
        return "up to date"
    names = sorted(k for k in changed if not k.endswith(".dvc"))
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{len(changed)} changed ({shown}): run `dvc repro`"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _short(release: str | None) -> str:
    return release or "(none)"


def target_lines(
    root: Path, name: str, spec: Mapping[str, Any], client: httpx.Client | None
) -> list[str]:
    # the one release-record parser: a truncated or hand-edited record is an error (exit 2),
    # never shown as "declared (none)"
    record = read_record(root / release_path(name), name)
    report = _read(root / report_path(name)) or {}
    declared = record.release
    head = f"  {name} ({spec['kind']})"
    lines = [f"{head}: declared {_short(declared)}"]
    if spec.get("pin"):
        lines[0] += f", pinned to {spec['pin']} (rollback)"
    if spec["kind"] == "service" and client is not None:
        serve = spec["serve"]
        live = read_version(service_url(serve["host"], serve["port"]), client=client)
        where = f"{serve['host']}:{serve['port']}"
        if live is None:
            lines.append(f"      live: unreachable at {where}")
        else:
            verdict = "in sync" if serves_record(live, record) else "OUT OF SYNC"
            lines.append(f"      live: {describe(live)} at {where} — {verdict}")
    lines += rollout_lines(root, name, record)
    decision = report.get("decision")
    if decision is None:
        lines.append("      gate: no report (run `dvc repro`)")
    elif decision == "propose":
        release = report["proposal"]["release"]
        lines.append(f"      gate: propose {release} (apply with `mlops release`)")
    elif decision == "blocked":
        reasons = report.get("reasons") or []
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        lines.append(f"      gate: BLOCKED: {reasons[0] if reasons else '?'}{more}")
    else:
        lines.append(f"      gate: {decision}")
    return lines


def rollout_lines(root: Path, name: str, record: ReleaseRecord) -> list[str]:
    """A target's rollout: where it is, and the analysis behind its last step
    (reports/rollout/<target>.json)."""
    rollout = record.rollout
    if rollout is None:
        return []
    candidate = rollout.candidate.release
    if rollout.status != "running":
        return [f"      rollout: {rollout.strategy} of {candidate} ABORTED: {rollout.reason}"]
    lines = [
        f"      rollout: {rollout.strategy} of {candidate} against {record.release}: step "
        f"{rollout.step + 1}/{len(rollout.steps)}, weight {rollout.weight}, hold "
        + ", ".join(f"{v} {k}" for k, v in rollout.hold.items())
    ]
    last = rollout.decisions[-1]
    lines.append(
        f"      last step: {last['action']} by {last['by']}"
        + (f": {last['summary']}" if last.get("summary") else "")
    )
    lines.append(f"      next: `mlops rollout analyze --target {name}` (--apply to act on it)")
    return lines


def render_status(
    root: Path,
    *,
    client: httpx.Client | None = None,
    stages: StagesCheck | None = dvc_stages,
) -> str:
    from pipeline import config

    lines = []
    try:
        config.check(root)
        lines.append("config:   params.yaml is up to date with conf/")
    except MlopsError:
        lines.append("config:   params.yaml is STALE (run `mlops compose`)")
    if stages is not None:
        lines.append(f"stages:   {stages(root)}")
    champion = _read(root / CHAMPION_RECORD)
    bundle = _read(root / CHAMPION_BUNDLE / MANIFEST)
    if champion:
        test = champion["metrics"]["test"]
        shown = ", ".join(f"{k} {v:.4f}" for k, v in list(test.items())[:3])
        lines.append(f"champion: {champion['name']} ({shown})")
    else:
        lines.append("champion: none yet (run `dvc repro`)")
    if bundle:
        from pipeline.io import sha256_file

        lines.append(f"bundle:   {sha256_file(root / CHAMPION_BUNDLE / MANIFEST)[:16]}")
    params = config.read_yaml(root / config.PARAMS_FILE)
    lines.append("targets:")
    for name, spec in params["deploy"]["targets"].items():
        lines += target_lines(root, name, spec, client)
    return "\n".join(lines)
