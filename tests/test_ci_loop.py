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

from tests.actions import Event, Hub
from tests.conftest import BIN, dvc, mlops

pytestmark = [pytest.mark.integration]


@pytest.fixture
def hub(project: Path, tmp_path: Path) -> Hub:
    return Hub(project, tmp_path / "github", BIN / "dvc")


def add_feedback(hub: Hub, name: str = "new-labels", rows: int = 60) -> None:
    """New labelled data lands on main: a feedback file, tracked by DVC and pushed."""
    pool = pd.read_parquet(hub.dev / "data/prepared/pool.parquet")
    pool.head(rows).to_parquet(hub.dev / f"data/feedback/{name}.parquet", index=False)
    dvc("add", "--quiet", f"data/feedback/{name}.parquet", cwd=hub.dev)
    hub.commit_all("new labelled data")
    hub.dvc_cmd("push", "--quiet")
    hub.git("push", "-q", "origin", "main")


def record(path: Path, target: str = "local") -> dict:
    return json.loads((path / f"deploy/{target}.json").read_text())


@pytest.mark.slow
def test_data_commit_retrains_and_reruns_update_the_one_pull_request(hub: Hub) -> None:
    """A data commit retrains, releases, pushes and opens a pull request; a second run while it
    is open (and a re-run of the same run id) updates that pull request, never a second one."""
    add_feedback(hub)
    assert record(hub.dev)["release"] is None

    run = hub.github.run("retrain.yml", Event("push", run_id=7))
    assert run.conclusion == "success", run
    stages = run.ran()
    assert "ingest" not in stages and "validate" not in stages  # not data-dependent
    assert {"prepare", "evaluate", "package", "deploy@local"} <= set(stages)
    released = record(run.workspace)
    assert released["release"].startswith("r0001-")
    (pr,) = hub.github.gh["prs"]
    assert pr["headRefName"] == "bot/retrain" and pr["state"] == "OPEN"
    assert released["release"] in pr["body"], "the body says what it releases"
    assert "bot/retrain" in hub.github.branches()
    pushed = dvc("status", "--cloud", cwd=run.workspace).stdout
    assert "new:" not in pushed and "deleted:" not in pushed  # everything is in the remote
    assert "retrain" in run.summary.lower() and released["release"] in run.summary

    # the next run, with the pull request still open: the same branch, the same pull request
    again = hub.github.run("retrain.yml", Event("push", run_id=8))
    assert again.conclusion == "success", again
    (pr,) = hub.github.gh["prs"]
    assert pr["edits"] == 1 and "run 8" in pr["body"]
    # re-running the same run id (a re-run of a failed job) does not fail at `git push`
    rerun = hub.github.run("retrain.yml", Event("push", run_id=8, attempt=2))
    assert rerun.conclusion == "success", rerun
    assert len(hub.github.gh["prs"]) == 1

    # merged: main carries the release; retraining on it changes nothing (outputs come from
    # the remote, nothing is recomputed), so no spurious pull request
    hub.merge("bot/retrain")
    calm = hub.github.run("retrain.yml", Event("push", run_id=9))
    assert calm.conclusion == "success", calm
    assert calm.ran() == [], calm.log
    assert "nothing changed: no pull request" in calm.log
    assert record(calm.workspace) == released


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
