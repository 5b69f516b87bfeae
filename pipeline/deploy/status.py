"""`mlops status`: one screen answering "is what runs what git says should run?".

* config: is params.yaml what conf/ composes to (`config.check`)?
* stages: does `dvc status` report anything to re-run?
* champion: the selected model and its bundle id.
* per target: the declared release (deploy/<target>.json), the last gate decision
  (reports/deploy/<target>.json), and for a service the live release, from
  `GET http://<host>:<port>/version` (`pipeline.deploy.live`, the one client):
  "in sync" when both name the same release and bundle, "out of sync" otherwise,
  "unreachable" when the service does not answer within the timeout; during a rollout, the
  candidate, step and weight too, and the last step's decision. A systemd target's service
  is asked the same way. A kubernetes target shows the release its rendered workload serves
  (deploy/k8s/<target>/) against the declared one, and against the live one only when a
  kubeconfig is given (`--kubeconfig`: the workload's release annotation through
  `kubectl get -o json`; "not checked" without one, or without kubectl).

Nothing here writes a file. The HTTP client and the `dvc status` call are parameters, so tests
can use stand-ins (httpx.MockTransport) and the real thing alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
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
# runs `kubectl ARGS` in the root: its stdout, None when kubectl is not installed, a ToolError
# when it fails (a parameter, so tests can stand in for a cluster)
Kubectl = Callable[[Sequence[str], Path], "str | None"]


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
    root: Path,
    name: str,
    spec: Mapping[str, Any],
    client: httpx.Client | None,
    kubeconfig: Path | None = None,
    kubectl: Kubectl | None = None,
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
    if spec["kind"] in ("service", "systemd") and client is not None:
        serve = spec["serve"]
        live = read_version(service_url(serve["host"], serve["port"]), client=client)
        where = f"{serve['host']}:{serve['port']}"
        if live is None:
            lines.append(f"      live: unreachable at {where}")
        else:
            verdict = "in sync" if serves_record(live, record) else "OUT OF SYNC"
            lines.append(f"      live: {describe(live)} at {where} — {verdict}")
    if spec["kind"] == "kubernetes":
        lines += kubernetes_lines(root, name, spec, record, kubeconfig, kubectl)
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


def run_kubectl(args: Sequence[str], root: Path) -> str | None:
    """`kubectl args` (stdout), or None when kubectl is not installed; a ToolError when it
    fails (an unreachable cluster, a missing object)."""
    if vcs.find("kubectl") is None:
        return None
    return vcs.run("kubectl", root, list(args), timeout=30).stdout


def rendered_workload(root: Path, name: str, spec: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(kind, object) of the workload rendered for a kubernetes target (deployment.yaml or
    rollout.yaml in its folder), or None when none is rendered."""
    import yaml

    from pipeline.paths import environment_dir

    folder = root / (spec.get("kubernetes", {}).get("path") or environment_dir("kubernetes", name))
    for file, kind in (("deployment.yaml", "deployment"), ("rollout.yaml", "rollout")):
        try:
            return kind, yaml.safe_load((folder / file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
    return None


def _annotation(obj: Any, key: str) -> str | None:
    try:
        value = obj["metadata"]["annotations"][key]
    except (KeyError, TypeError):
        return None
    return str(value)


def kubernetes_lines(
    root: Path,
    name: str,
    spec: Mapping[str, Any],
    record: ReleaseRecord,
    kubeconfig: Path | None,
    kubectl: Kubectl | None,
) -> list[str]:
    """The rendered manifests' release against the declared one (the workload release: the
    candidate of a running canary rollout, else the release), and against the live one only
    when a kubeconfig is given: the workload's release annotation, read with kubectl."""
    from pipeline.deploy.environments.kubernetes import ANNOTATION, app_name
    from pipeline.deploy.image import workload_release

    key = f"{ANNOTATION}/release"
    serving = workload_release(record)
    declared = None if serving is None else serving.release
    found = rendered_workload(root, name, spec)
    if found is None:
        lines = [
            "      rendered: nothing yet (no image recorded: `mlops image record --target "
            f"{name} --digest sha256:...`)"
        ]
        kind = None
        rendered = None
    else:
        kind, obj = found
        rendered = _annotation(obj, key)
        verdict = (
            "matches the declared release"
            if rendered == declared
            else (f"WAITING: {_short(declared)} is declared (its image is not recorded yet)")
        )
        lines = [f"      rendered: {_short(rendered)} ({kind}) — {verdict}"]
    if kubeconfig is None:
        lines.append("      live: not checked (give --kubeconfig to read the cluster)")
        return lines
    if kind is None:
        lines.append("      live: not checked (no workload rendered)")
        return lines
    namespace = (spec.get("kubernetes") or {}).get("namespace", "default")
    args = ["--kubeconfig", str(kubeconfig), "--namespace", namespace, "get", kind]
    args += [app_name(name), "--output", "json", "--request-timeout", "20s"]
    try:
        out = (kubectl or run_kubectl)(args, root)
    except ToolError as exc:
        first = str(exc).splitlines()[0]
        lines.append(f"      live: unknown ({first})")
        return lines
    if out is None:
        lines.append("      live: not checked (no kubectl)")
        return lines
    try:
        live = _annotation(json.loads(out), key)
    except ValueError:
        live = None
    verdict = "in sync" if live == rendered else "OUT OF SYNC"
    lines.append(f"      live: {_short(live)} ({kind}/{app_name(name)} in {namespace}) — {verdict}")
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
    kubeconfig: Path | None = None,
    kubectl: Kubectl | None = None,
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
        lines += target_lines(root, name, spec, client, kubeconfig, kubectl)
    return "\n".join(lines)
