"""The GitOps loop as it runs on GitHub: every workflow's `run:` steps, on fresh checkouts of a
local "GitHub" (tests/actions.py: a bare origin and a fork, local DVC remotes, a recording fake
`gh`), for every path a maintainer meets: pull requests from this repository and from forks,
data commits, re-runs, scheduled monitoring per decision, deploys and the reconciler.

`make install` is simulated (the checkout's `.venv` links to this interpreter's environment and
PYTHONPATH points at the checkout, so its own `pipeline/` runs); everything else runs as on a
hosted runner, from a cold DVC cache. The scenarios run several workflows each and are marked
slow (`make test-slow`); tests/test_ci_scripts.py covers the helper scripts in the default suite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.actions import Event, Hub
from tests.conftest import BIN, dvc, mlops

# the scenarios run several workflows each: far beyond the default per-test timeout
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]


@pytest.fixture
def hub(project: Path, tmp_path: Path) -> Hub:
    return Hub(project, tmp_path / "github", BIN / "dvc")


def add_feedback(hub: Hub, name: str = "new-labels", rows: int = 60) -> None:
    """New labelled data lands on main: a feedback file, tracked by DVC and pushed."""
    pool = pd.read_parquet(hub.dev / "data/prepared/pool.parquet")
    folder = hub.dev / "data/feedback/breast_cancer"  # feedback is kept per dataset
    folder.mkdir(parents=True, exist_ok=True)
    pool.head(rows).to_parquet(folder / f"{name}.parquet", index=False)
    dvc("add", "--quiet", f"data/feedback/breast_cancer/{name}.parquet", cwd=hub.dev)
    hub.commit_all("new labelled data")
    hub.dvc_cmd("push", "--quiet")
    hub.git("push", "-q", "origin", "main")


def record(path: Path, target: str = "local") -> dict:
    return json.loads((path / f"deploy/{target}.json").read_text())


def release_on_main(hub: Hub) -> str:
    """A maintainer releases the reproduced champion on main (`mlops release`, `dvc repro`,
    `dvc push`, push): main then has a release, as every real project soon does."""
    mlops("release", cwd=hub.dev)
    dvc("repro", cwd=hub.dev)
    hub.commit_all("release")
    hub.dvc_cmd("push", "--quiet")
    hub.git("push", "-q", "origin", "main")
    released = record(hub.dev)["release"]
    assert released is not None
    return str(released)


def traffic(
    hub: Hub,
    n: int,
    *,
    start: str,
    seed: int,
    scale: float = 1.0,
    null: str | None = None,
    rows: pd.DataFrame | None = None,
    labels: list | None = None,
) -> None:
    """What the live service logs for `n` requests (rows of the production pool, or `rows`),
    scored by the declared release, with labels (feedback) for every row; then the serving
    machine ships its log (`mlops logs ship`, the command under test) to the ship location."""
    from pipeline.deploy.bundle import load_bundle
    from pipeline.deploy.scoring import predict

    released = record(hub.dev)
    bundle = load_bundle(hub.dev / released["bundle"]["path"])
    pool = pd.read_parquet(hub.dev / "data/prepared/pool.parquet")
    sample = rows if rows is not None else pool.sample(n, replace=True, random_state=seed)
    sample = sample.reset_index(drop=True)
    features = sample[bundle.signature.names].astype(float) * scale
    if null is not None:
        features[null] = None
    predicted, _ = predict(bundle.model, features, bundle.task)
    truth = labels if labels is not None else sample["target"].tolist()
    logs = hub.dev / "logs/local"
    logs.mkdir(parents=True, exist_ok=True)
    begin = pd.Timestamp(start)
    with (logs / "predictions.jsonl").open("a") as out, (logs / "feedback.jsonl").open("a") as fb:
        for i in range(len(sample)):
            rid = f"{seed}-{i:05d}"
            stamp = (begin + pd.Timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            inputs = {k: (None if pd.isna(v) else float(v)) for k, v in features.iloc[i].items()}
            value = predicted[i].item() if hasattr(predicted[i], "item") else predicted[i]
            entry = {
                "request_id": rid,
                "time": stamp,
                "release": released["release"],
                "bundle": released["bundle"]["id"],
                "inputs": inputs,
                "prediction": value,
                "flags": [],
            }
            out.write(json.dumps(entry) + "\n")
            label = truth[i].item() if hasattr(truth[i], "item") else truth[i]
            fb.write(json.dumps({"request_id": rid, "label": label, "time": stamp}) + "\n")
    shipped = mlops("logs", "ship", "--url", str(hub.github.base / "shipped-logs"), cwd=hub.dev)
    assert "shipped" in shipped.stdout


def comment(hub: Hub, number: int) -> dict:
    (found,) = [c for c in hub.github.gh["comments"] if c["issue"] == number]
    return found


def disagreements(hub: Hub, older: str, newer: str, n: int) -> tuple[pd.DataFrame, list]:
    """`n` inputs on which two releases' models predict differently, each labelled with the
    older one's prediction: on segments between pool rows the two models predict other classes,
    each model's class boundary is found by bisection, and the point between the two
    boundaries is one that only the older model gets right."""
    import numpy as np

    from pipeline.deploy.bundle import load_bundle
    from pipeline.deploy.scoring import predict
    from pipeline.release_record import parse_release_id

    old, new = (load_bundle(hub.dev / "bundles" / parse_release_id(r)[1]) for r in (older, newer))
    names = old.signature.names
    pool = pd.read_parquet(hub.dev / "data/prepared/pool.parquet")[names].astype(float)
    rng = np.random.default_rng(0)
    a = pool.to_numpy()[rng.integers(0, len(pool), 4 * n)]
    b = pool.to_numpy()[rng.integers(0, len(pool), 4 * n)]

    def classes(bundle, x: np.ndarray) -> np.ndarray:
        return np.asarray(predict(bundle.model, pd.DataFrame(x, columns=names), bundle.task)[0])

    ends = classes(old, a) != classes(old, b)
    a, b = a[ends], b[ends]

    def crossing(bundle) -> np.ndarray:
        low, high = np.zeros(len(a)), np.ones(len(a))
        at_a = classes(bundle, a)
        for _ in range(40):
            mid = (low + high) / 2
            same = classes(bundle, a + mid[:, None] * (b - a)) == at_a
            low, high = np.where(same, mid, low), np.where(same, high, mid)
        return (low + high) / 2

    t_old, t_new = crossing(old), crossing(new)
    mid = (t_old + t_new) / 2
    x = a + mid[:, None] * (b - a)
    label = classes(old, x)
    differ = label != classes(new, x)
    assert differ.sum() >= n, f"only {differ.sum()} disagreements between {older} and {newer}"
    rows = pd.DataFrame(x[differ][:n], columns=names)
    return rows, list(label[differ][:n])


@pytest.mark.slow
def test_data_commit_retrains_reruns_update_the_pr_deploy_publishes_all_and_rollback(
    hub: Hub, tmp_path: Path
) -> None:
    """A data commit retrains, releases, pushes and opens a pull request; a second run while it
    is open (and a re-run of the same run id) updates that pull request, never a second one
    (finding 5). Merged, retraining recomputes nothing (finding 10); deploy publishes every
    released bundle, the older one too (finding 8); and a live release worse than the previous
    one on labelled production rows makes the monitor propose a rollback, released."""
    first = release_on_main(hub)
    add_feedback(hub)

    run = hub.github.run("retrain.yml", Event("push", run_id=7)).expect()
    stages = run.ran()
    assert "ingest" not in stages and "validate" not in stages  # not data-dependent
    assert {"prepare", "evaluate", "package", "deploy@local"} <= set(stages)
    released = record(run.workspace)
    assert released["release"].startswith("r0002-") and released["parent"] == first
    (pr,) = hub.github.gh["prs"]
    assert pr["headRefName"] == "bot/retrain" and pr["state"] == "OPEN"
    assert released["release"] in pr["body"], "the body says what it releases"
    assert "released by this PR" in pr["body"] and "CI [" in pr["body"]
    assert "bot/retrain" in hub.github.branches()
    pushed = dvc("status", "--cloud", cwd=run.workspace).stdout
    assert "new:" not in pushed and "deleted:" not in pushed  # everything is in the remote
    assert "retrain workflow" in run.summary and released["release"] in run.summary

    # the next run, with the pull request still open: the same branch, the same pull request
    again = hub.github.run("retrain.yml", Event("push", run_id=8)).expect()
    (pr,) = hub.github.gh["prs"]
    assert pr["edits"] == 1 and "run 8" in pr["body"]
    # re-running the same run id (a re-run of a failed job) does not fail at `git push`
    hub.github.run("retrain.yml", Event("push", run_id=8, attempt=2)).expect()
    assert len(hub.github.gh["prs"]) == 1
    assert again.step("Open or update the pull request").log.startswith("updated pull request")

    # merged: main carries the release; retraining on it recomputes nothing (outputs come
    # from the remote), so no spurious pull request
    hub.merge("bot/retrain")
    calm = hub.github.run("retrain.yml", Event("push", run_id=9)).expect()
    assert calm.ran() == [], calm.log
    assert "nothing changed: no pull request" in calm.log
    assert record(calm.workspace) == released

    # deploy from a cold cache to an empty serving remote: both released bundles
    hub.github.secrets["DVC_SERVING_REMOTE_URL"] = str(hub.github.serving)
    deploy = hub.github.run("deploy.yml", Event("push", run_id=10)).expect()
    assert "published 2 released bundle(s) to the 'serving' remote" in deploy.log, deploy.log
    machine = tmp_path / "serving-machine"
    hub.git("clone", "-q", str(hub.github.origin), str(machine), cwd=tmp_path)
    hub.dvc_cmd("remote", "add", "--local", "serving", str(hub.github.serving), cwd=machine)
    for pointer in sorted((machine / "bundles").glob("*.dvc")):  # the rollback target too
        hub.dvc_cmd("pull", "--quiet", "-r", "serving", str(pointer), cwd=machine)

    # the live release is worse than the previous one on labelled production rows: rollback
    rows, labels = disagreements(hub, first, released["release"], 200)
    hub.github.secrets["PREDICTION_LOGS_URL"] = str(hub.github.base / "shipped-logs")
    traffic(hub, len(rows), start="2026-06-01T08:00:00", seed=5, rows=rows, labels=labels)
    back = hub.github.run("monitor.yml", Event("schedule", run_id=11)).expect()
    assert back.step("decision").outputs["action"] == "rollback", back.log
    (pr,) = [p for p in hub.github.gh["prs"] if p["state"] == "OPEN"]
    assert pr["title"].startswith("Maintenance: rollback (")
    assert "previous release better than the live one" in pr["body"]
    pinned = json.loads(branch_file(hub, "bot/monitor", "deploy/local.json"))
    assert pinned["release"].startswith("r0003-") and pinned["pinned"] == first


@pytest.mark.slow  # as test_monitor_stages.py's threshold change
def test_config_only_change_reruns_only_monitor_and_maintain(project: Path) -> None:
    conf = project / "conf/maintain/default.yaml"
    conf.write_text(conf.read_text().replace("cooldown_days: 7", "cooldown_days: 2"))
    mlops("compose", cwd=project)
    assert ran_stages(dvc("repro", cwd=project).stdout) == ["maintain"]
    conf = project / "conf/monitor/default.yaml"
    conf.write_text(conf.read_text().replace("  drift_share: 0.5 ", "  drift_share: 0.9 ", 1))
    mlops("compose", cwd=project)
    assert ran_stages(dvc("repro", cwd=project).stdout) == ["monitor", "maintain"]


def ran_stages(log: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


@pytest.mark.slow
def test_pull_requests_same_repo_twice_then_a_failing_push_and_from_a_fork(hub: Hub) -> None:
    """One comment per pull request, updated in place on every push, also when a push fails
    `compose --check` (finding 9); a fork's pull request, no release on main: the whole
    report in the job summary and an artifact, no comment, no secret."""
    hub.git("checkout", "-q", "-b", "tune")
    conf = hub.dev / "conf/monitor/default.yaml"
    conf.write_text(conf.read_text().replace("  drift_share: 0.5 ", "  drift_share: 0.9 ", 1))
    mlops("compose", cwd=hub.dev)
    hub.commit_all("monitor: a looser dataset-drift rule")
    hub.push_branch("tune")
    first = hub.github.run(
        "pr.yml",
        Event("pull_request", head="tune", number=5, run_id=21),
    )
    first.expect()
    assert first.ran() == ["monitor", "maintain"], first.log
    body = comment(hub, 5)["body"]
    assert body.startswith("<!-- gitops-mlops:pr-report -->")
    assert "| `monitor.drift.drift_share` | 0.5 | 0.9 |" in body
    assert "Re-ran (their dvc.lock entries changed): `maintain`, `monitor`" in body
    report = json.loads((first.workspace / "reports/monitor/report.json").read_text())
    assert report["simulated"]["windows"], "the demo's simulated windows were monitored"
    assert "BREACH" not in body, "simulated windows never make a comment say BREACH"
    assert first.summary.strip(), "the job summary holds the report too"

    # a second push: the same comment, updated
    maintain = hub.dev / "conf/maintain/default.yaml"
    maintain.write_text(maintain.read_text().replace("cooldown_days: 7", "cooldown_days: 2"))
    mlops("compose", cwd=hub.dev)
    hub.commit_all("maintain: a shorter cooldown")
    hub.push_branch("tune")
    second = hub.github.run("pr.yml", Event("pull_request", head="tune", number=5, run_id=22))
    second.expect()
    updated = comment(hub, 5)
    assert updated.get("edits") == 1 and "cooldown_days" in updated["body"]

    # a third push forgets `mlops compose`: the job fails, and the comment says why
    maintain.write_text(maintain.read_text().replace("cooldown_days: 2", "cooldown_days: 3"))
    hub.commit_all("maintain: cooldown 3 (params.yaml not recomposed)")
    hub.push_branch("tune")
    stale = hub.github.run("pr.yml", Event("pull_request", head="tune", number=5, run_id=23))
    stale.expect("failure")
    assert stale.step("compose").outcome == "failure"
    assert any("mlops compose --check failed" in e for e in stale.errors()), stale.log
    failed = comment(hub, 5)
    assert failed.get("edits") == 2
    assert "### ⛔ Not reproduced" in failed["body"] and "params.yaml" in failed["body"]
    assert "cooldown_days" not in failed["body"].split("```")[0], "no stale numbers"
    assert len(hub.github.gh["comments"]) == 1

    # a fork's pull request (main has no release): everything reproducible from scratch
    hub.git("checkout", "-q", "main")
    hub.git("checkout", "-q", "-b", "fork-tune")
    conf.write_text(conf.read_text().replace("  drift_share: 0.5 ", "  drift_share: 0.8 ", 1))
    mlops("compose", cwd=hub.dev)
    hub.commit_all("fork: drift share 0.8")
    hub.push_branch("fork-tune", fork=True)
    calls = len(hub.github.gh["calls"])
    fork = hub.github.run(
        "pr.yml", Event("pull_request", head="fork-tune", number=6, fork=True, run_id=24)
    )
    fork.expect()
    assert fork.step("remote").outcome == "skipped"
    assert "<!-- gitops-mlops:pr-report -->" in fork.summary
    assert "drift_share" in fork.summary
    assert (
        (fork.artifacts["impact-report"]).read_text() == (fork.workspace / "impact.md").read_text()
    )
    assert len(hub.github.gh["calls"]) == calls, "a fork's run calls no GitHub API"
    assert fork.step("Deployment gates").outcome == "success"


@pytest.mark.slow
def test_fork_pr_with_a_release_deploy_to_an_empty_serving_remote_and_sync(
    hub: Hub, tmp_path: Path
) -> None:
    """Finding 1: with a release on main, a fork's `dvc repro` needed the released bundle and
    failed ("missing data 'source'") with no summary and no artifact. Finding 8: deploy
    published only what its cache held. Finding 2: a malformed serving config fails loudly."""
    released = release_on_main(hub)
    hub.git("checkout", "-q", "-b", "fork-change")
    conf = hub.dev / "conf/monitor/default.yaml"
    conf.write_text(conf.read_text().replace("  drift_share: 0.5 ", "  drift_share: 0.8 ", 1))
    mlops("compose", cwd=hub.dev)
    hub.commit_all("fork: drift share 0.8")
    hub.push_branch("fork-change", fork=True)
    fork = hub.github.run(
        "pr.yml", Event("pull_request", head="fork-change", number=8, fork=True, run_id=31)
    )
    fork.expect()
    blocked = fork.step("scope").outputs["blocked"].split()
    assert {"deploy@local", "monitor", "maintain"} <= set(blocked), fork.log
    assert "prepare" in fork.step("scope").outputs["runnable"].split()
    assert f"bundles/{released.split('-')[1]}" in fork.step("scope").outputs["unavailable"]
    assert "Not reproduced, for want of the DVC remote" in fork.summary
    assert "deploy@local" in fork.summary
    assert "impact-report" in fork.artifacts
    assert "deployment gates not checked" in fork.step("Deployment gates").log

    # Finding 10: a runner on another CPU, and the remote lacks the champion's training
    # output: recomputing it would give other bytes, a new bundle and a spurious release
    hub.git("checkout", "-q", "main")
    lock = yaml.safe_load((hub.dev / "dvc.lock").read_text())
    outs = {out["path"]: out for out in lock["stages"]["train"]["outs"]}
    digest = outs["models/candidates"]["md5"]
    (hub.github.remote / "files/md5" / digest[:2] / digest[2:]).unlink()
    spurious = hub.github.run("retrain.yml", Event("push", run_id=30), cpu="Sandybridge")
    spurious.expect("failure")
    (error,) = spurious.errors()
    assert "train: models/candidates" in error
    assert "dvc push" in error
    assert spurious.ran() == [] and hub.github.gh["prs"] == []
    hub.dvc_cmd("push", "--quiet")  # the maintainer pushes what main records

    # deploy.yml on main, to an empty serving remote, from a runner with a cold cache
    serving = hub.github.serving
    hub.github.secrets["DVC_SERVING_REMOTE_URL"] = str(serving)
    deploy = hub.github.run("deploy.yml", Event("push", run_id=32)).expect()
    assert "published 1 released bundle(s) to the 'serving' remote" in deploy.log
    assert f"`local`: {released}" in deploy.summary

    # a serving machine: its own checkout, the serving remote, `mlops sync`
    machine = tmp_path / "serving-machine"
    hub.git("clone", "-q", str(hub.github.origin), str(machine), cwd=tmp_path)
    hub.dvc_cmd("remote", "add", "--local", "serving", str(serving), cwd=machine)
    synced = mlops("sync", "--target", "batch", "--dvc-remote", "serving", cwd=machine)
    assert "batch: no service" in synced.stdout, synced.stdout + synced.stderr
    assert (machine / record(machine, "batch")["bundle"]["path"]).is_dir()

    # the serving remote's config is malformed: the run fails at that step, named
    hub.github.secrets["DVC_SERVING_REMOTE_CONFIG"] = '[remote "storage"]\npassword = hunter2\n'
    broken = hub.github.run("deploy.yml", Event("push", run_id=33))
    broken.expect("failure")
    assert broken.step("serving").outcome == "failure"
    (error,) = broken.errors()
    assert "DVC remote 'serving': DVC_REMOTE_CONFIG line 1" in error
    assert "hunter2" not in broken.log


def branch_file(hub: Hub, branch: str, path: str) -> str:
    return hub.git("show", f"{branch}:{path}", cwd=hub.github.origin)


@pytest.mark.slow
def test_scheduled_monitoring_for_each_decision(hub: Hub) -> None:
    """monitor.yml on a schedule, fed by the serving side's `mlops logs ship` (finding 4):
    none, alert (and its issue closed by a person: not raised again), retrain (one pull request
    carrying the data, the retrained lock, the gate evidence and the release, described from
    the decision that caused it: finding 7). Windows, history and the alert's ledger entry are
    committed in every case (finding 6); one bot/monitor pull request, updated (finding 5)."""
    release_on_main(hub)
    hub.github.secrets["PREDICTION_LOGS_URL"] = str(hub.github.base / "shipped-logs")

    # none: one clean window
    traffic(hub, 100, start="2026-05-01T08:00:00", seed=1)
    calm = hub.github.run("monitor.yml", Event("schedule", run_id=41)).expect()
    assert calm.step("decision").outputs["action"] == "none", calm.log
    (pr,) = hub.github.gh["prs"]
    assert pr["headRefName"] == "bot/monitor"
    assert pr["title"] == "Monitoring: new windows and history"
    pointers = hub.git(
        "ls-tree", "--name-only", "bot/monitor", "data/production/", cwd=hub.github.origin
    ).split()
    months = [p for p in pointers if p.endswith(".dvc")]
    assert months == ["data/production/2026-05.dvc"], pointers  # one pointer for the month
    history = branch_file(hub, "bot/monitor", "reports/monitor/history.csv")
    assert "20260501T08" in history
    hub.merge("bot/monitor")
    assert dvc("status", "--cloud", cwd=hub.dev).stdout.strip().endswith("in sync."), (
        "the window's data is in the remote"
    )

    # alert: a column goes missing
    traffic(hub, 100, start="2026-05-02T08:00:00", seed=2, null="mean_radius")
    alert = hub.github.run("monitor.yml", Event("schedule", run_id=42)).expect()
    assert alert.step("decision").outputs["action"] == "alert", alert.log
    decision_id = alert.step("decision").outputs["id"]
    (issue,) = hub.github.gh["issues"]
    assert issue["title"] == f"Monitoring alert ({decision_id})"
    prs = [p for p in hub.github.gh["prs"] if p["state"] == "OPEN"]
    assert len(prs) == 1 and decision_id in prs[0]["title"]
    ledger = json.loads(branch_file(hub, "bot/monitor", "maintain/ledger.json"))
    assert [e["decision_id"] for e in ledger["entries"]] == [decision_id]

    # a person closes the issue; the next run (the pull request not merged yet) does not
    # raise it again, and updates the one pull request
    hub.github.set_gh(lambda s: s["issues"][0].update(state="CLOSED"))
    again = hub.github.run("monitor.yml", Event("schedule", run_id=43)).expect()
    assert again.step("decision").outputs["id"] == decision_id
    assert len(hub.github.gh["issues"]) == 1
    assert "already reports this" in again.log
    assert len([p for p in hub.github.gh["prs"] if p["state"] == "OPEN"]) == 1
    hub.merge("bot/monitor")
    quiet = hub.github.run("monitor.yml", Event("schedule", run_id=44)).expect()
    assert quiet.step("decision").outputs["action"] == "none", "the alert was applied"
    assert len(hub.github.gh["issues"]) == 1

    # retrain: three drifted windows in a row, labelled
    traffic(hub, 300, start="2026-05-03T08:00:00", seed=3, scale=1.5)
    retrain = hub.github.run("monitor.yml", Event("schedule", run_id=45)).expect()
    assert retrain.step("decision").outputs["action"] == "retrain", retrain.log
    decision_id = retrain.step("decision").outputs["id"]
    (pr,) = [p for p in hub.github.gh["prs"] if p["state"] == "OPEN"]
    assert pr["title"] == f"Maintenance: retrain ({decision_id})"
    assert "dataset drift in the last 3 judged window(s)" in pr["body"]
    assert "suppressed by the cooldown" not in pr["body"].split("### Maintenance")[1]
    files = hub.git("diff", "--name-only", "main", "bot/monitor", cwd=hub.github.origin).split()
    assert f"data/feedback/breast_cancer/{decision_id}.parquet.dvc" in files
    assert "dvc.lock" in files and "maintain/ledger.json" in files
    gates = pr["body"].split("### Deployment gates")[1].split("###")[0]
    if "deploy/local.json" in files:  # released: the row shows the interval that let it through
        assert "released by this PR" in gates and "CI [" in gates
    else:
        assert "is blocked:" in gates, "the body says why the gates block the release"
